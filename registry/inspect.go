package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/recipes"
)

// Summary is an image or index as `prebake inspect` shows it and Diff
// compares: per platform, each component's layer.
type Summary struct {
	Reference   string            `json:"reference"`
	Digest      string            `json:"digest"`
	MediaType   string            `json:"mediaType"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platforms   []PlatformSummary `json:"platforms"`
}

// PlatformSummary is one platform's image of a Summary.
type PlatformSummary struct {
	Platform string         `json:"platform"`
	Digest   string         `json:"digest"`
	Layers   []LayerSummary `json:"layers"`
}

// LayerSummary is one layer: the component it holds (from its
// annotations) and its digest.
type LayerSummary struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
}

// Inspect reads ref and summarizes it.
func Inspect(ctx context.Context, ref Reference, o Options) (*Summary, error) {
	art, desc, err := Get(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Reference: ref.String(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
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
		ps := PlatformSummary{Platform: platform, Digest: d.String()}
		for i, l := range m.Layers {
			name := l.Annotations[recipes.AnnotationComponent]
			if name == "" {
				name = fmt.Sprintf("layer %d", i)
			}
			ps.Layers = append(ps.Layers, LayerSummary{Component: name, Version: l.Annotations[recipes.AnnotationComponentVersion],
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

// ComponentChange is one difference Diff finds.
type ComponentChange struct {
	Platform  string `json:"platform"`
	Component string `json:"component"`
	Change    string `json:"change"` // changed, added, removed
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// Diff lists, platform by platform, the components whose layers differ
// between x and y, were added or were removed.
func Diff(x, y *Summary) []ComponentChange {
	var out []ComponentChange
	plats := map[string]*PlatformSummary{}
	for i := range x.Platforms {
		plats[x.Platforms[i].Platform] = &x.Platforms[i]
	}
	seen := map[string]bool{}
	for _, py := range y.Platforms {
		seen[py.Platform] = true
		px := plats[py.Platform]
		if px == nil {
			out = append(out, ComponentChange{Platform: py.Platform, Component: "*", Change: "added"})
			continue
		}
		old := map[string]LayerSummary{}
		for _, l := range px.Layers {
			old[l.Component] = l
		}
		for _, l := range py.Layers {
			o, ok := old[l.Component]
			delete(old, l.Component)
			switch {
			case !ok:
				out = append(out, ComponentChange{py.Platform, l.Component, "added", "", l.Version})
			case o.Digest != l.Digest:
				out = append(out, ComponentChange{py.Platform, l.Component, "changed", o.Version + " " + o.Digest[:19], l.Version + " " + l.Digest[:19]})
			}
		}
		for _, l := range px.Layers {
			if _, ok := old[l.Component]; ok {
				out = append(out, ComponentChange{py.Platform, l.Component, "removed", l.Version, ""})
			}
		}
	}
	for _, px := range x.Platforms {
		if !seen[px.Platform] {
			out = append(out, ComponentChange{Platform: px.Platform, Component: "*", Change: "removed"})
		}
	}
	return out
}
