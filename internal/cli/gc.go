package cli

import (
	"time"

	"github.com/spf13/cobra"
)

// DefaultGCGrace is gc's --grace default: registry/server's
// DefaultGracePeriod (internal/servecmd's test keeps them equal).
const DefaultGCGrace = time.Hour

func newGCCmd(a *app) *cobra.Command {
	var (
		root   string
		dryRun bool
		grace  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gc --root DIR [--dry-run]",
		Short: "Remove unreferenced blobs from a prebake serve root",
		Long: `gc removes the blobs of a "prebake serve" root that no tag, untagged
manifest or referrer reaches any more, and the leftovers of interrupted
uploads, then prints what it removed and how many bytes it freed.

It is safe to run while servers use the root: each repository is collected
under the same lock that manifest pushes take, and blobs younger than
--grace are kept because a push in progress uploads its blobs before the
manifest that references them.`,
		Example: `  # what would go
  prebake gc --root /var/lib/prebake/registry --dry-run

  # collect, keeping anything touched in the last 10 minutes
  prebake gc --root /var/lib/prebake/registry --grace 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverCmds.GC == nil {
				return execServer(cmd)
			}
			return serverCmds.GC(cmd.Context(), GCConfig{Root: root, DryRun: dryRun, Grace: grace}, a.Streams)
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "the registry root given to prebake serve")
	f.BoolVar(&dryRun, "dry-run", false, "only print what would be removed")
	f.DurationVar(&grace, "grace", DefaultGCGrace, "keep unreferenced blobs younger than this; 0 keeps none (only when nothing pushes)")
	_ = cmd.MarkFlagRequired("root")
	return cmd
}
