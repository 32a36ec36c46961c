package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/apply"
)

func newStatusCmd(a *app) *cobra.Command {
	var (
		root   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [--root DIR]",
		Short: "Show the node image applied on a root filesystem (prebake apply)",
		Long: `Status reads DIR/var/lib/prebake (default /): the image applied, its
components and their versions, the previous image (what apply --rollback
returns to), and an apply a crash interrupted (which the next apply
completes).`,
		Example: `  prebake status
  prebake status --root /mnt/node --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := apply.ReadStatus(root)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, st)
			}
			if st.Applied == nil {
				fmt.Fprintf(a.Out, "nothing applied on %s\n", root)
			} else {
				r := st.Applied
				fmt.Fprintf(a.Out, "applied:  %s\n", r.Ref)
				fmt.Fprintf(a.Out, "  image:      %s (%s)\n", r.Image, r.Platform)
				if r.KubernetesVersion != "" {
					fmt.Fprintf(a.Out, "  kubernetes: %s\n", r.KubernetesVersion)
				}
				verified := "yes"
				if !r.Verified {
					verified = "no (--no-verify)"
				}
				fmt.Fprintf(a.Out, "  verified:   %s\n", verified)
				for _, c := range r.Components {
					fmt.Fprintf(a.Out, "  component:  %s %s (%d paths, layer %.19s)\n", c.Name, c.Version, len(c.Files), c.Layer)
				}
			}
			if st.Previous != nil {
				fmt.Fprintf(a.Out, "previous: %s\n", st.Previous.Ref)
			}
			if i := st.Interrupted; i != nil {
				fmt.Fprintf(a.Out, "interrupted: %s to %s (the next prebake apply completes it)\n", i.Op, i.To)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "root filesystem to read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}
