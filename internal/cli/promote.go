package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/pipeline"
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
		from         []string
		report       string
		reportJSON   string
	)
	cmd := &cobra.Command{
		Use:   "promote (REF@DIGEST --channel NAME | --from RESULT [CHANNEL]) (--verify-key PUB | --no-verify)",
		Short: "Point a channel tag at a tested, signed digest and record the move",
		Long: `Promote points the tag NAME (the channel, e.g. production) of REF's repository
at DIGEST. Before the tag moves, the assignment - channel, digest, previous
digest, who ($PREBAKE_ACTOR, else user@host) and when - is recorded as an OCI
artifact (artifact type ` + registry.ArtifactTypeChannel + `), so
"prebake channel history" and "prebake channel rollback" work on any OCI
registry.

The digest must carry a valid cosign signature by --verify-key (checked
offline, see "prebake verify"); --no-verify skips that check explicitly.
Revoked digests are refused unless --allow-revoked.

--from promotes a whole saved set in one call: the --json output of "prebake
build" or of a matrix build (--json-file), or a promotion report
(--report-json, to promote a promoted set further: nightly, then stable);
a directory stands for every build result in it, and --from repeats (one
file per CI shard). Each image goes to the channel CHANNEL-VERSION of its
repository (nightly-1.36.4). Every image is checked first (its digest
resolves, its signature verifies); if any check fails no channel moves. The
report lists per image the version, channel, digest, the digest the channel
named before, the signature status, each platform's compressed size and the
components whose layers changed since the previous promotion: --report
writes it as Markdown, --report-json (and --json) as JSON. "prebake channel
rollback --from REPORT.json" undoes the whole set.`,
		Example: `  prebake promote registry.example.com/nodes/k8s@sha256:… --channel production --verify-key cosign.pub

  # every image of the nightly's shards, then the same set to stable
  prebake promote --from result-1.json --from result-2.json nightly --verify-key cosign.pub \
    --report nightly.md --report-json nightly.json
  prebake promote --from nightly.json stable --verify-key cosign.pub --report-json stable.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(from) > 0 {
				return cobra.RangeArgs(0, 1)(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(from) > 0 {
				if len(args) == 1 {
					if channel != "" && channel != args[0] {
						return fmt.Errorf("promote --from: the channel is %q or --channel %q, not both", args[0], channel)
					}
					channel = args[0]
				}
				if channel == "" {
					return fmt.Errorf("promote --from: name the channel (CHANNEL or --channel)")
				}
				if verifyKey == "" && !noVerify {
					return fmt.Errorf("promote --from: give --verify-key PUB to require signatures, or --no-verify")
				}
				set, err := pipeline.LoadPromotionSet(from)
				if err != nil {
					return err
				}
				rep, perr := pipeline.PromoteSet(ctx, set, pipeline.PromoteOptions{Channel: channel, Registry: rf.options(), VerifyKey: verifyKey, AllowRevoked: allowRevoked, By: actor()})
				if rep == nil {
					return perr
				}
				if err := writeReports(rep, report, reportJSON); err != nil {
					return err
				}
				if asJSON {
					if err := writeJSON(a, rep); err != nil {
						return err
					}
					return perr
				}
				for _, p := range rep.Images {
					switch {
					case p.Error != "":
						fmt.Fprintf(a.Out, "%s %s: FAILED: %s\n", p.Channel, p.Reference, p.Error)
					case p.Previous == p.Digest:
						fmt.Fprintf(a.Out, "%s: already %s\n", p.Channel, p.Digest)
					default:
						fmt.Fprintf(a.Out, "%s: %s -> %s (%d components changed)\n", p.Channel, orFirst(p.Previous), p.Digest, len(p.Changes))
					}
				}
				return perr
			}
			if report != "" || reportJSON != "" {
				return fmt.Errorf("--report and --report-json report a set: give --from RESULT")
			}
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
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the assignment (with --from: the report) as JSON")
	cmd.Flags().StringArrayVar(&from, "from", nil, "promote every image of this saved result: build --json output, a promotion report, or a directory of build results (repeatable)")
	cmd.Flags().StringVar(&report, "report", "", "with --from: write the promotion report as Markdown to this file")
	cmd.Flags().StringVar(&reportJSON, "report-json", "", "with --from: write the promotion report as JSON to this file (what --from and channel rollback --from read)")
	return cmd
}

// actor is who a promotion, rollback or revocation is recorded as:
// $PREBAKE_ACTOR, else "" (the registry package's user@host).
func actor() string { return os.Getenv("PREBAKE_ACTOR") }

// writeReports writes a promotion report as Markdown and JSON, where asked.
func writeReports(rep *pipeline.PromotionReport, md, js string) error {
	if md != "" {
		if err := atomicfile.WriteFile(md, []byte(rep.Markdown()), 0o644); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if js != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(js, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--report-json: %w", err)
		}
	}
	return nil
}

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
