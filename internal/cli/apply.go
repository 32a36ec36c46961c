package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/apply"
	"github.com/prebake/prebake/registry"
)

func newApplyCmd(a *app) *cobra.Command {
	var (
		rf               registryFlags
		o                apply.Options
		rollback, asJSON bool
		verbose          bool
	)
	cmd := &cobra.Command{
		Use:   "apply REF@DIGEST --verify-key PUB [--root DIR] | apply --rollback",
		Short: "Switch a root filesystem to a node image by digest: per-component upgrades, rollback, crash-safe",
		Long: `Apply verifies the image REF names (signature with --verify-key, and
revocation) and moves the root filesystem (--root, default /) to it.

The first apply writes every file of the image's platform (--platform,
default linux/<this machine>). Later ones move only what changed: a file
whose content, type, mode, owner and link target are those already recorded
is not touched, so a Kubernetes patch release rewrites the kubernetes
component's files, removes those it no longer ships and leaves the other
components alone. Each file is written next to its path and renamed over
it; whiteouts remove paths; owners, modes (setuid included), symlinks and
hard links are applied as the layers say. Files of the root the image
replaces or removes are backed up and restored once no image claims them.

State lives in DIR/var/lib/prebake: applied.json (image digest, components,
every file's digest), applied.previous.json, a copy of both images (store/,
so --rollback and crash recovery need no network) and the backups
(objects/). Before the root is touched a journal is written; if apply is
killed, the next apply (or --rollback) completes the interrupted one first.

--rollback returns to the previous record (the two records swap).
--dry-run lists what would change. The OS packages the image declares
(osPackages) are checked against the root's dpkg database: apply fails
naming the missing ones, or installs them with apt-get (in a chroot for a
--root other than /) with --install-os-packages.

After the files, on the running system (--root /): systemctl daemon-reload,
the image's sysctl.d files (sysctl -p), its modules-load.d modules
(modprobe), and its pre-pulled images imported into a running containerd
(ctr -n k8s.io images import). Each step is idempotent and skipped with a
line saying why when the root is not / or the tool is absent.

Unsigned images are refused unless --no-verify (which still refuses a
revoked digest). Tags are refused: a machine gets exactly the tested digest.`,
		Example: `  # switch this machine to a node image
  prebake apply registry.example.com/nodes/k8s@sha256:… --verify-key cosign.pub

  # what an upgrade would change, then do it, on a mounted root
  prebake apply registry.example.com/nodes/k8s@sha256:… --verify-key cosign.pub --root /mnt/node --dry-run
  prebake apply registry.example.com/nodes/k8s@sha256:… --verify-key cosign.pub --root /mnt/node

  # back to what was applied before
  prebake apply --rollback --root /mnt/node`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Registry = rf.options()
			if verbose || !a.quiet {
				o.Log = a.Err
			}
			var (
				res *apply.Result
				err error
			)
			switch {
			case rollback && len(args) > 0:
				return fmt.Errorf("--rollback takes no image reference")
			case rollback:
				res, err = apply.Rollback(cmd.Context(), o)
			case len(args) == 0:
				return fmt.Errorf("an image reference REF@sha256:… (or --rollback) is required")
			default:
				ref, perr := registry.ParseReference(args[0])
				if perr != nil {
					return perr
				}
				res, err = apply.Apply(cmd.Context(), ref, o)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, res)
			}
			printApply(a.Out, res)
			return nil
		},
	}
	rf.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&o.Root, "root", "/", "root filesystem to change")
	f.StringVar(&o.VerifyKey, "verify-key", "", "public key the image's signature must verify with: PEM file, env://VAR or KMS URI")
	f.BoolVar(&o.NoVerify, "no-verify", false, "apply without checking the signature (revoked digests are still refused)")
	f.StringVar(&o.Platform, "platform", "", "platform of an index to apply, os/arch[/variant] (default linux/<this machine>)")
	f.BoolVar(&o.DryRun, "dry-run", false, "list the changes without making them")
	f.BoolVar(&rollback, "rollback", false, "return to the previous record")
	f.BoolVar(&o.InstallOSPackages, "install-os-packages", false, "install the image's missing osPackages with apt-get")
	f.BoolVar(&o.SkipOSPackagesCheck, "skip-os-packages-check", false, "do not check the image's osPackages against the root")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the after-apply steps and package manager output even with -q")
	return cmd
}

func printApply(w io.Writer, res *apply.Result) {
	verb := "applied"
	if res.DryRun {
		verb = "would apply"
	}
	if res.Record != nil {
		fmt.Fprintf(w, "%s %s (image %s)\n", verb, res.Record.Ref, res.Record.Image)
	}
	if res.Recovered {
		fmt.Fprintln(w, "  completed an interrupted apply first")
	}
	c := res.Changes
	if len(c.Components) > 0 {
		fmt.Fprintf(w, "  components changed: %s\n", strings.Join(c.Components, ", "))
	}
	fmt.Fprintf(w, "  %d added, %d changed, %d removed, %d restored, %d unchanged\n", len(c.Added), len(c.Changed), len(c.Removed), len(c.Restored), c.Unchanged)
	if res.DryRun {
		for _, l := range []struct {
			sign  string
			paths []string
		}{{"+", c.Added}, {"~", c.Changed}, {"-", c.Removed}, {"<", c.Restored}} {
			for _, p := range l.paths {
				fmt.Fprintf(w, "  %s /%s\n", l.sign, p)
			}
		}
	}
	if len(res.Installed) > 0 {
		what := "installed"
		if res.DryRun {
			what = "would install"
		}
		fmt.Fprintf(w, "  %s OS packages: %s\n", what, strings.Join(res.Installed, ", "))
	}
}
