package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
)

func newRevokeCmd(a *app) *cobra.Command {
	var (
		rf     registryFlags
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "revoke REF@DIGEST --reason TEXT",
		Short: "Mark an image digest as revoked so pulls and promotions refuse it",
		Long: `Revoke records that the image at REF@DIGEST must no longer be used: a small
OCI artifact (artifact type ` + registry.ArtifactTypeRevocation + `)
that refers to the digest and carries the reason, who revoked it
($PREBAKE_ACTOR, else user@host) and when. It works on any OCI registry
(through the referrers API or its tag fallback), in the store and in layouts,
and it travels with the image when it is copied.

From then on "prebake pull" and "prebake promote" of that digest fail unless
--allow-revoked is given, and "prebake ls" marks it.`,
		Example: `  prebake revoke registry.example.com/nodes/k8s@sha256:… --reason "CVE-2026-1234 in containerd 2.1.0"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return fmt.Errorf("--reason is required")
			}
			r, err := registry.Revoke(cmd.Context(), ref, registry.RevokeOptions{Options: rf.options(), Reason: reason, By: actor()})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, r)
			}
			fmt.Fprintf(a.Out, "revoked %s (record %s)\n", ref, r.Record)
			return nil
		},
	}
	rf.register(cmd, false)
	cmd.Flags().StringVar(&reason, "reason", "", "why the digest is revoked (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}
