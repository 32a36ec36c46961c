package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

func newInspectCmd(a *app) *cobra.Command {
	var (
		asJSON   bool
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an image's platforms, components, versions and layer digests",
		Long: `Inspect reads an image or index from the local store, an OCI layout or a
registry and lists, per platform, each component's layer with its version,
digest and compressed size.`,
		Example: `  prebake inspect quickstart-node:1.36.4
  prebake inspect oci:out:1.36.4 --json
  prebake inspect 127.0.0.1:5000/nodes@sha256:… --insecure`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			sum, err := registry.Inspect(cmd.Context(), ref, registry.Options{Insecure: insecure})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, sum)
			}
			fmt.Fprintf(a.Out, "%s\ndigest: %s\n", sum.Reference, sum.Digest)
			for _, k := range []string{"org.opencontainers.image.title", "org.opencontainers.image.version", recipes.AnnotationKubernetesVersion, "org.opencontainers.image.created", recipes.AnnotationRecipeDigest} {
				if v, ok := sum.Annotations[k]; ok {
					fmt.Fprintf(a.Out, "%s: %s\n", k, v)
				}
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			for _, p := range sum.Platforms {
				fmt.Fprintf(tw, "\n%s\t%s\n", p.Platform, p.Digest)
				fmt.Fprintf(tw, "  COMPONENT\tVERSION\tDIGEST\tSIZE\n")
				for _, l := range p.Layers {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", l.Component, l.Version, l.Digest, progress.Bytes(l.Size))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry")
	return cmd
}

func newDiffCmd(a *app) *cobra.Command {
	var (
		asJSON   bool
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "diff REF1 REF2",
		Short: "Show which components changed between two images",
		Long: `Diff compares two images platform by platform and lists the components
whose layers differ (with old and new versions), were added or were removed.
Unchanged layers are shared between the images and never re-uploaded.`,
		Example: `  prebake diff quickstart-node:1.36.4 quickstart-node:1.36.5`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := registry.Options{Insecure: insecure}
			var sums [2]*registry.Summary
			for i, arg := range args {
				ref, err := registry.ParseReference(arg)
				if err != nil {
					return err
				}
				if sums[i], err = registry.Inspect(cmd.Context(), ref, o); err != nil {
					return err
				}
			}
			changes := registry.Diff(sums[0], sums[1])
			if asJSON {
				return writeJSON(a, changes)
			}
			if len(changes) == 0 {
				fmt.Fprintln(a.Out, "no component changed")
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PLATFORM\tCOMPONENT\tCHANGE\tFROM\tTO")
			for _, c := range changes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Platform, c.Component, c.Change, c.From, c.To)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry")
	return cmd
}
