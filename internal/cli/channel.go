package cli

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/registry"
)

func newChannelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "channel",
		Short: "Show and roll back channel assignments (see prebake promote)",
		Long: `A channel is a tag (production, staging, …) that "prebake promote" moves from
digest to digest, recording every move as an OCI artifact next to the images.
These commands read that record back and undo moves.`,
	}
	cmd.AddCommand(newChannelHistoryCmd(a), newChannelRollbackCmd(a))
	return cmd
}

func newChannelHistoryCmd(a *app) *cobra.Command {
	var (
		rf     registryFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history REPO CHANNEL",
		Short: "List a channel's assignments, newest first",
		Long: `History lists every recorded move of CHANNEL in REPO, newest first: when, who,
the action (promote or rollback), the digest the channel was moved to and the
one it pointed at before.`,
		Example: `  prebake channel history registry.example.com/nodes/k8s production
  prebake channel history store:quickstart production --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			hist, err := registry.ChannelHistory(cmd.Context(), repo, args[1], rf.options())
			if err != nil {
				return err
			}
			return writeRows(a, asJSON, hist, "WHEN\tBY\tACTION\tDIGEST\tPREVIOUS", func(h registry.Assignment) string {
				return strings.Join([]string{h.At.UTC().Format(time.RFC3339), h.By, h.Action, h.Digest, orDash(h.Previous)}, "\t")
			})
		},
	}
	rf.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newChannelRollbackCmd(a *app) *cobra.Command {
	var (
		rf           registryFlags
		allowRevoked bool
		asJSON       bool
		from         string
	)
	cmd := &cobra.Command{
		Use:   "rollback (REPO CHANNEL | --from REPORT.json)",
		Short: "Point a channel back at the digest it had before its last promotion",
		Long: `Rollback undoes the promotion that put CHANNEL on its current digest: the
channel goes back to that promotion's previous digest, and the move is recorded
like a promotion. Run it again to go back one more promotion. A revoked target
is refused unless --allow-revoked.

--from undoes a whole set that "prebake promote --from" promoted, from its
--report-json: every channel it moved goes back (channels it created stay).
A channel that has moved since is refused before any channel moves.`,
		Example: `  prebake channel rollback registry.example.com/nodes/k8s production
  prebake channel rollback --from stable.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if from != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if from != "" {
				rep, err := pipeline.LoadPromotionReport(from)
				if err != nil {
					return err
				}
				moved, err := pipeline.RollbackSet(cmd.Context(), rep, pipeline.PromoteOptions{Registry: rf.options(), AllowRevoked: allowRevoked, By: actor()})
				if asJSON {
					if moved == nil {
						moved = []registry.Assignment{}
					}
					if werr := writeJSON(a, moved); werr != nil {
						return werr
					}
					return err
				}
				for _, as := range moved {
					if perr := printAssignment(a, as, false); perr != nil {
						return perr
					}
				}
				return err
			}
			repo, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			as, err := registry.Rollback(cmd.Context(), repo, args[1], registry.PromoteOptions{Options: rf.options(), By: actor(), AllowRevoked: allowRevoked})
			if err != nil {
				return err
			}
			return printAssignment(a, as, asJSON)
		},
	}
	rf.register(cmd, false)
	cmd.Flags().BoolVar(&allowRevoked, "allow-revoked", false, "roll back onto a revoked digest anyway")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the assignment as JSON")
	cmd.Flags().StringVar(&from, "from", "", "roll back every channel of this promotion report (prebake promote --from --report-json)")
	return cmd
}
