package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/internal/version"
)

func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print prebake's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			if asJSON {
				return writeJSON(a, v)
			}
			_, err := fmt.Fprintf(a.Out, "prebake %s\ncommit: %s\ngo: %s\n", v.Version, v.Commit, v.GoVersion)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
