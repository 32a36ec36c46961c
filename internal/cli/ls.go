package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
)

func newLsCmd(a *app) *cobra.Command {
	var (
		rf     registryFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ls REPO",
		Short: "List the versions in a repository with their Kubernetes version, age and digest",
		Long: `Ls lists the tags of REPO - a registry repository, a store name or an OCI
layout - newest first, with the Kubernetes version and creation time from the
image annotations (dev.prebake.kubernetes.version,
org.opencontainers.image.created) and the digest. Channel tags (see prebake
promote) appear next to the versions they point at; revoked digests are marked.
Referrer fallback tags (sha256-…) and cosign's .sig/.att tags are left out.`,
		Example: `  prebake ls registry.example.com/nodes/kubernetes-node
  prebake ls store:kubernetes-node --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			vs, err := registry.List(cmd.Context(), repo, rf.options())
			if err != nil {
				return err
			}
			if asJSON {
				if vs == nil {
					vs = []registry.Version{}
				}
				return writeJSON(a, vs)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TAG\tKUBERNETES\tCREATED\tDIGEST")
			for _, v := range vs {
				k := v.Kubernetes
				if k == "" {
					k = "-"
				}
				created := "-"
				if !v.Created.IsZero() {
					created = v.Created.UTC().Format(time.RFC3339)
				}
				d := v.Digest
				if v.Revoked {
					d += " (revoked)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Tag, k, created, d)
			}
			return tw.Flush()
		},
	}
	rf.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
