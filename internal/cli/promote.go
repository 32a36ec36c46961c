package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func newPromoteCmd(a *app) *cobra.Command {
	var (
		rf           registryFlags
		channel      string
		verifyKey    string
		noVerify     bool
		allowRevoked bool
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "promote REF@DIGEST --channel NAME (--verify-key PUB | --no-verify)",
		Short: "Point a channel tag at a tested, signed digest and record the move",
		Long: `Promote points the tag NAME (the channel, e.g. production) of REF's repository
at DIGEST. Before the tag moves, the assignment - channel, digest, previous
digest, who ($PREBAKE_ACTOR, else user@host) and when - is recorded as an OCI
artifact (artifact type ` + registry.ArtifactTypeChannel + `), so
"prebake channel history" and "prebake channel rollback" work on any OCI
registry.

The digest must carry a valid cosign signature by --verify-key (checked
offline, see "prebake verify"); --no-verify skips that check explicitly.
Revoked digests are refused unless --allow-revoked.`,
		Example: `  prebake promote registry.example.com/nodes/k8s@sha256:… --channel production --verify-key cosign.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			if channel == "" {
				return fmt.Errorf("--channel is required")
			}
			if ref.Digest == "" {
				return fmt.Errorf("promoting %s: %w: name the image as REF@sha256:…", ref, registry.ErrDigestRequired)
			}
			if verifyKey == "" && !noVerify {
				return fmt.Errorf("promoting %s: give --verify-key PUB to require a signature, or --no-verify", ref)
			}
			o := rf.options()
			if verifyKey != "" {
				if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Key: verifyKey, SkipBlobs: true, AllowRevoked: allowRevoked, Registry: o}); err != nil {
					return err
				}
			}
			as, err := registry.Promote(ctx, ref, channel, registry.PromoteOptions{Options: o, By: actor(), AllowRevoked: allowRevoked})
			if err != nil {
				return err
			}
			return printAssignment(a, as, asJSON)
		},
	}
	rf.register(cmd, false)
	cmd.Flags().StringVar(&channel, "channel", "", "channel (tag) to point at the digest, e.g. production")
	cmd.Flags().StringVar(&verifyKey, "verify-key", "", "require a valid cosign signature by this public key (PEM file, env://VAR or KMS URI)")
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "promote without checking a signature")
	cmd.Flags().BoolVar(&allowRevoked, "allow-revoked", false, "promote a revoked digest anyway")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the assignment as JSON")
	return cmd
}

// actor is who a promotion, rollback or revocation is recorded as:
// $PREBAKE_ACTOR, else "" (the registry package's user@host).
func actor() string { return os.Getenv("PREBAKE_ACTOR") }

func printAssignment(a *app, as registry.Assignment, asJSON bool) error {
	if asJSON {
		return writeJSON(a, as)
	}
	prev := as.Previous
	if prev == "" {
		prev = "(none)"
	}
	_, err := fmt.Fprintf(a.Out, "%s: %s -> %s (%s by %s, record %s)\n", as.Channel, prev, as.Digest, as.Action, as.By, as.Record)
	return err
}
