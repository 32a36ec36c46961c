package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// imageSummary is what inspect prints and diff compares.
type imageSummary struct {
	Reference   string            `json:"reference"`
	Digest      string            `json:"digest"`
	MediaType   string            `json:"mediaType"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platforms   []platformSummary `json:"platforms"`
}

type platformSummary struct {
	Platform string         `json:"platform"`
	Digest   string         `json:"digest"`
	Layers   []layerSummary `json:"layers"`
}

type layerSummary struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
}

func summarize(ctx context.Context, s string, o registry.Options) (*imageSummary, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return nil, err
	}
	art, desc, err := registry.Get(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	sum := &imageSummary{Reference: ref.String(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	addImage := func(platform string, img v1.Image) error {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if platform == "" {
			cfg, err := img.ConfigFile()
			if err == nil {
				platform = cfg.OS + "/" + cfg.Architecture
			}
			sum.Annotations = m.Annotations
		}
		ps := platformSummary{Platform: platform, Digest: d.String()}
		for i, l := range m.Layers {
			name := l.Annotations[recipes.AnnotationComponent]
			if name == "" {
				name = fmt.Sprintf("layer %d", i)
			}
			ps.Layers = append(ps.Layers, layerSummary{Component: name, Version: l.Annotations[recipes.AnnotationComponentVersion],
				Digest: l.Digest.String(), Size: l.Size, MediaType: string(l.MediaType)})
		}
		sum.Platforms = append(sum.Platforms, ps)
		return nil
	}
	switch v := art.(type) {
	case v1.ImageIndex:
		im, err := v.IndexManifest()
		if err != nil {
			return nil, err
		}
		sum.Annotations = im.Annotations
		for _, d := range im.Manifests {
			if !d.MediaType.IsImage() {
				continue
			}
			img, err := v.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			p := ""
			if d.Platform != nil {
				p = d.Platform.OS + "/" + d.Platform.Architecture
			}
			if err := addImage(p, img); err != nil {
				return nil, err
			}
		}
	case v1.Image:
		if err := addImage("", v); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

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
			sum, err := summarize(cmd.Context(), args[0], registry.Options{Insecure: insecure})
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
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", l.Component, l.Version, l.Digest, humanBytes(l.Size))
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
			x, err := summarize(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			y, err := summarize(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			changes := diffSummaries(x, y)
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

type componentChange struct {
	Platform  string `json:"platform"`
	Component string `json:"component"`
	Change    string `json:"change"` // changed, added, removed
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

func diffSummaries(x, y *imageSummary) []componentChange {
	var out []componentChange
	plats := map[string]*platformSummary{}
	for i := range x.Platforms {
		plats[x.Platforms[i].Platform] = &x.Platforms[i]
	}
	seen := map[string]bool{}
	for _, py := range y.Platforms {
		seen[py.Platform] = true
		px := plats[py.Platform]
		if px == nil {
			out = append(out, componentChange{Platform: py.Platform, Component: "*", Change: "added"})
			continue
		}
		old := map[string]layerSummary{}
		for _, l := range px.Layers {
			old[l.Component] = l
		}
		for _, l := range py.Layers {
			o, ok := old[l.Component]
			delete(old, l.Component)
			switch {
			case !ok:
				out = append(out, componentChange{py.Platform, l.Component, "added", "", l.Version})
			case o.Digest != l.Digest:
				out = append(out, componentChange{py.Platform, l.Component, "changed", o.Version + " " + o.Digest[:19], l.Version + " " + l.Digest[:19]})
			}
		}
		for _, l := range px.Layers {
			if _, ok := old[l.Component]; ok {
				out = append(out, componentChange{py.Platform, l.Component, "removed", l.Version, ""})
			}
		}
	}
	for _, px := range x.Platforms {
		if !seen[px.Platform] {
			out = append(out, componentChange{Platform: px.Platform, Component: "*", Change: "removed"})
		}
	}
	return out
}
