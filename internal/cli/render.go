package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/render"
)

type renderFlags struct {
	rf            registryFlags
	image         string
	kubernetes    string
	joinUnit      string
	initUnit      string
	init          bool
	agent         bool
	platform      string
	format        string
	gzip          bool
	output        string
	maxSize       string
	allowUnsafeCA bool
	bootstrapURL  string
	bootstrapDir  string
	bootstrapTTL  time.Duration
}

func newRenderCmd(a *app) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "render NODE.yaml... [--image REF@DIGEST | --kubernetes X.Y.Z] [--format cloud-config|mime|ignition] [--gzip] [-o FILE|DIR]",
		Short: "Render the per-node cloud-init user-data (or Ignition config) that joins a node",
		Long: `Render turns node specs (apiVersion prebake.dev/v1alpha1, kind NodeConfig,
or NodeConfigList for a fleet) into the user-data a VM booting a prebake image
needs: the kubeadm JoinConfiguration, the credentials, and the join itself.
Nothing is installed or downloaded at boot - the image already has it.

The Kubernetes version picks the JoinConfiguration's API version (kubeadm
v1beta3 up to 1.30, v1beta4 from 1.31). It comes from the image's
dev.prebake.kubernetes.version annotation (--image REF@DIGEST, or the spec's
image field) or from --kubernetes. When the image declares prebake's join
unit (dev.prebake.join-unit), the cloud-init formats only write files and the
unit joins as soon as /run/prebake/kubeadm-join.yaml appears; otherwise a
runcmd script joins. When the image bakes prebake-agent (dev.prebake.agent),
the cloud-init formats also carry the agent's block (YAML comments): the agent
joins early in boot and cloud-init stands down; without the agent, cloud-init
joins from the same document (docs/agent.md). Either way /run/cluster-api/bootstrap-success.complete is
written when the join succeeds.

With --init the spec is the first control plane's: the output runs kubeadm
init with an InitConfiguration and a ClusterConfiguration (same API versions)
instead of joining. It needs no bootstrap token or CA pin (a token given is
created by the init, so that joins rendered with it work); cluster.caKeyFile
with caCertFile makes it use that CA (written 0600 under /etc/kubernetes/pki,
so render the joins' pins before it boots), and node.certificateKey uploads
the control-plane certificates for control-plane joins. When the image declares
an init unit (dev.prebake.init-unit) only files are written and the unit runs
kubeadm init as soon as /run/prebake/kubeadm-init.yaml appears; otherwise a
runcmd script does. cloud-config and mime only. Such user-data holds the CA
key: deliver it with --bootstrap-url (docs/cluster.md).

Formats: cloud-config (default), mime (multipart: the cloud-config plus the
join script), ignition (spec 3.3.0, for Flatcar). --gzip compresses
deterministically. The same input always gives the same bytes.

The spec is checked strictly; every problem is reported with file:line:column
and nothing is written unless every node renders. The size of each document
is printed to stderr; --max-size aws|openstack|gce|BYTES fails when one is
too large (aws: 16384 bytes; openstack: 65535 after base64; gce: 262144).

One node writes to stdout or -o FILE. Several (a NodeConfigList, or several
files) need -o DIR and get DIR/NODE.yaml (.mime, .ign; .gz with --gzip).
Rendered files are written 0600: they hold the bootstrap token.

With --bootstrap-url URL --bootstrap-dir DIR the secrets stay out of the
instance metadata: the full document is stored in DIR behind a one-time token
that expires after --bootstrap-ttl, and the rendered user-data only fetches
URL/TOKEN (cloud-init #include; Ignition config.replace). Serve DIR with
'prebake serve --bootstrap-dir DIR' and pass its /bootstrap URL.`,
		Example: `  # a worker of the quickstart image, Kubernetes version from the image
  prebake render node.yaml --image registry.example.com/nodes/k8s@sha256:… -o user-data.yaml

  # without a registry: say the version
  prebake render node.yaml --kubernetes 1.36.4

  # a fleet, gzipped, checked against the AWS user-data limit
  prebake render fleet.yaml --kubernetes 1.36.4 --gzip --max-size aws -o out/

  # the first control plane, with a CA of your own (its joins' pins known in advance)
  prebake render cp-1.yaml --init --image registry.example.com/nodes/k8s-cp@sha256:… -o cp-1.yaml

  # Flatcar
  prebake render node.yaml --kubernetes 1.36.4 --format ignition -o node.ign

  # keep the token out of instance metadata
  prebake render node.yaml --kubernetes 1.36.4 \
    --bootstrap-url https://prebake.example.com:5000/bootstrap --bootstrap-dir /var/lib/prebake/bootstrap`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRender(cmd, a, &f, args)
		},
	}
	fl := cmd.Flags()
	f.rf.register(cmd, false)
	fl.StringVar(&f.image, "image", "", "the image the nodes boot, REF@sha256:…; its annotations give the Kubernetes version and join unit (overrides the spec's image)")
	fl.StringVar(&f.kubernetes, "kubernetes", "", "Kubernetes version X.Y.Z, instead of reading it from the image")
	fl.StringVar(&f.joinUnit, "join-unit", "", "with --kubernetes: the image's join unit (e.g. prebake-join.path); empty joins through runcmd")
	fl.BoolVar(&f.init, "init", false, "render the first control plane: kubeadm init (InitConfiguration + ClusterConfiguration) instead of a join")
	fl.StringVar(&f.initUnit, "init-unit", "", "with --init and --kubernetes: the image's init unit (e.g. prebake-init.path); empty runs kubeadm init through runcmd")
	fl.BoolVar(&f.agent, "agent", false, "with --kubernetes: add the prebake-agent block (the image bakes prebake-agent; with an image, read from its dev.prebake.agent annotation)")
	fl.StringVar(&f.platform, "platform", "", "os/arch of the image to read annotations from when --image is an index (default: its first image)")
	fl.StringVar(&f.format, "format", string(cloudinit.FormatCloudConfig), "output format: cloud-config, mime or ignition")
	fl.BoolVar(&f.gzip, "gzip", false, "gzip the output (deterministic: no name, mtime 0)")
	fl.StringVarP(&f.output, "output", "o", "", "output file (one node) or directory (several); default stdout")
	fl.StringVar(&f.maxSize, "max-size", "", "fail when a document is over a size limit: aws, openstack, gce or BYTES")
	fl.BoolVar(&f.allowUnsafeCA, "allow-unsafe-skip-ca-verification", false, "permit cluster.unsafeSkipCAVerification (joins without pinning the cluster CA)")
	fl.StringVar(&f.bootstrapURL, "bootstrap-url", "", "render user-data that only fetches the real document from this prebake serve /bootstrap URL")
	fl.StringVar(&f.bootstrapDir, "bootstrap-dir", "", "with --bootstrap-url: the directory prebake serve --bootstrap-dir reads")
	fl.DurationVar(&f.bootstrapTTL, "bootstrap-ttl", time.Hour, "with --bootstrap-url: how long each one-time token stays valid")
	return cmd
}

func runRender(cmd *cobra.Command, a *app, f *renderFlags, args []string) error {
	format, err := cloudinit.ParseFormat(f.format)
	if err != nil {
		return err
	}
	var limit cloudinit.SizeLimit
	if f.maxSize != "" {
		if limit, err = cloudinit.ParseSizeLimit(f.maxSize); err != nil {
			return err
		}
	}
	if f.image != "" && f.kubernetes != "" {
		return fmt.Errorf("give --image or --kubernetes, not both")
	}
	if f.agent && f.kubernetes == "" {
		return fmt.Errorf("--agent goes with --kubernetes (with an image, the agent is read from its annotations)")
	}
	if f.joinUnit != "" && f.kubernetes == "" {
		return fmt.Errorf("--join-unit goes with --kubernetes (with an image, the join unit is read from its annotations)")
	}
	if f.initUnit != "" && (!f.init || f.kubernetes == "") {
		return fmt.Errorf("--init-unit goes with --init and --kubernetes (with an image, the init unit is read from its annotations)")
	}
	if f.init && f.agent {
		return fmt.Errorf("--agent joins; --init initializes the first control plane (give one)")
	}
	if (f.bootstrapURL == "") != (f.bootstrapDir == "") {
		return fmt.Errorf("--bootstrap-url and --bootstrap-dir go together")
	}
	docs, err := render.Run(cmd.Context(), args, render.Options{
		Kubernetes: f.kubernetes, JoinUnit: f.joinUnit, InitUnit: f.initUnit, Agent: f.agent,
		Image: f.image, Platform: f.platform, Registry: f.rf.options(),
		Init: f.init, Format: format, Gzip: f.gzip, MaxSize: limit, AllowUnsafeSkipCAVerification: f.allowUnsafeCA,
		BootstrapURL: f.bootstrapURL, BootstrapDir: f.bootstrapDir, BootstrapTTL: f.bootstrapTTL,
		Output: f.output,
		Warn:   func(w string) { fmt.Fprintf(a.Err, "warning: %s\n", w) },
	})
	var sz *cloudinit.SizeError
	switch {
	case err == nil:
	case errors.Is(err, render.ErrNoKubernetesVersion):
		return fmt.Errorf("%w (pass --image REF@DIGEST or --kubernetes X.Y.Z, or set image in the spec)", err)
	case errors.Is(err, render.ErrOutputDirRequired):
		return fmt.Errorf("%w: give -o DIR", err)
	case errors.Is(err, render.ErrInitOneNode):
		return fmt.Errorf("--init: %w", err)
	case errors.As(err, &sz) && !f.gzip && f.bootstrapURL == "":
		return fmt.Errorf("%w (try --gzip)", err)
	default:
		return err
	}
	what := string(format)
	if f.gzip {
		what += ", gzip"
	}
	if f.bootstrapURL != "" {
		what += ", fetches its document once from " + f.bootstrapURL
	}
	lim := ""
	if limit.Bytes > 0 {
		lim = fmt.Sprintf(" (limit %d)", limit.Bytes)
		if limit.Name != "" {
			lim = fmt.Sprintf(" (%s limit %d)", limit.Name, limit.Bytes)
		}
	}
	if f.output == "" {
		if !a.quiet {
			fmt.Fprintf(a.Err, "%s: %d bytes %s%s\n", docs[0].Node, docs[0].Size, what, lim)
		}
		_, err := a.Out.Write(docs[0].Data)
		return err
	}
	if !a.quiet {
		for _, d := range docs {
			fmt.Fprintf(a.Err, "%s: %d bytes %s%s\n", d.Node, d.Size, what, lim)
		}
	}
	return nil
}
