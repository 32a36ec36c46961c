package cli

import (
	"strings"
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
			return writeRows(a, asJSON, vs, "TAG\tKUBERNETES\tCREATED\tDIGEST", func(v registry.Version) string {
				created := ""
				if !v.Created.IsZero() {
					created = v.Created.UTC().Format(time.RFC3339)
				}
				d := v.Digest
				if v.Revoked {
					d += " (revoked)"
				}
				return strings.Join([]string{v.Tag, orDash(v.Kubernetes), orDash(created), d}, "\t")
			})
		},
	}
	rf.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
