package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry/server"
)

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
			srv, err := server.New(root)
			if err != nil {
				return err
			}
			defer srv.Close()
			if grace <= 0 {
				grace = -1 // GCOptions: negative keeps none, zero would mean the default
			}
			res, err := srv.GC(cmd.Context(), server.GCOptions{DryRun: dryRun, GracePeriod: grace})
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, b := range res.Removed {
				fmt.Fprintf(a.Out, "%s %s@%s (%d bytes)\n", verb, b.Repo, b.Digest, b.Size)
			}
			for _, l := range res.Leftovers {
				fmt.Fprintf(a.Out, "%s leftover %s\n", verb, l)
			}
			fmt.Fprintf(a.Out, "%s %d blobs and %d leftovers in %d repositories, %d bytes freed\n",
				verb, len(res.Removed), len(res.Leftovers), res.Repositories, res.BytesFreed)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "the registry root given to prebake serve")
	f.BoolVar(&dryRun, "dry-run", false, "only print what would be removed")
	f.DurationVar(&grace, "grace", server.DefaultGracePeriod, "keep unreferenced blobs younger than this; 0 keeps none (only when nothing pushes)")
	_ = cmd.MarkFlagRequired("root")
	return cmd
}
