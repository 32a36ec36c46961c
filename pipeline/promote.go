package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/prebake/prebake/registry"
)

// PromoteOptions configure PromoteMatrix.
type PromoteOptions struct {
	// Channel is the channel's name; each image is promoted to the channel
	// CHANNEL-VERSION of its repository (nightly-1.36.4), since a channel is
	// one tag.
	Channel string
	// Registry carries credentials and the transport; By who promotes.
	Registry registry.Options
	By       string
}

// PromotionReport is what PromoteMatrix did, image by image: its JSON is in
// `prebake build --matrix --promote --json`, Markdown renders it.
type PromotionReport struct {
	Channel string          `json:"channel"`
	Images  []PromotedImage `json:"images"`
}

// PromotedImage is one image's promotion.
type PromotedImage struct {
	Version string `json:"version"`
	// Channel is the tag promoted (CHANNEL-VERSION); Previous the digest it
	// named before ("" the first time).
	Channel    string `json:"channel"`
	Digest     string `json:"digest"`
	Previous   string `json:"previous,omitempty"`
	Signatures int    `json:"signatures"`
	// SBOM and CycloneDX are the digests of the image's SBOM referrers
	// (package URLs and CPEs of every component, docs/nightly.md).
	SBOM      string             `json:"sbom,omitempty"`
	CycloneDX string             `json:"cyclonedx,omitempty"`
	Platforms []PromotedPlatform `json:"platforms"`
	// Changes are the components whose layers differ from Previous.
	Changes []registry.ComponentChange `json:"changes,omitempty"`
	Error   string                     `json:"error,omitempty"`
}

// PromotedPlatform is one platform image: its digest and compressed size.
type PromotedPlatform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
}

// PromoteMatrix promotes every pushed image of r to its channel
// (registry.Promote: recorded, with history and rollback), noting what the
// channel named before and which layers changed since. Images that failed or
// were not pushed are left out; an image whose promotion fails is reported
// with its error and the others go on.
func PromoteMatrix(ctx context.Context, r *MatrixResult, o PromoteOptions) (*PromotionReport, error) {
	rep := &PromotionReport{Channel: o.Channel}
	failed := 0
	for _, img := range r.Images {
		if img.Result == nil || img.Pushed == "" {
			continue
		}
		pushed, err := registry.ParseReference(img.Pushed)
		if err != nil {
			return nil, err
		}
		p := PromotedImage{Version: img.Version, Channel: o.Channel + "-" + img.Version, Digest: img.Digest, Signatures: img.Signatures, SBOM: img.SBOM, CycloneDX: img.Result.CycloneDX}
		for _, pl := range img.Platforms {
			var size int64
			for _, l := range pl.Layers {
				size += l.Size
			}
			p.Platforms = append(p.Platforms, PromotedPlatform{Platform: pl.Platform, Digest: pl.Digest, Size: size})
		}
		repo := pushed.WithTag(p.Channel)
		if prev, err := registry.Inspect(ctx, repo, o.Registry); err == nil {
			p.Previous = prev.Digest
			if now, err := registry.Inspect(ctx, pushed, o.Registry); err == nil {
				p.Changes = registry.Diff(prev, now)
			}
		}
		if _, err := registry.Promote(ctx, pushed, p.Channel, registry.PromoteOptions{Options: o.Registry, By: o.By}); err != nil {
			p.Error = err.Error()
			failed++
		}
		rep.Images = append(rep.Images, p)
	}
	if failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d promotions", ErrPromoteFailed, failed, len(rep.Images))
	}
	return rep, nil
}

// Markdown renders the report: one row per image, then the changed layers.
func (r *PromotionReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Promotion to %s\n\n", r.Channel)
	b.WriteString("| version | channel | digest | previous | signed | platforms (compressed size) | changed components | SBOM (SPDX, CycloneDX) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, p := range r.Images {
		prev, signed := p.Previous, "no"
		if prev == "" {
			prev = "(first)"
		}
		if p.Signatures > 0 {
			signed = fmt.Sprintf("yes (%d manifests)", p.Signatures)
		}
		var plats []string
		for _, pl := range p.Platforms {
			plats = append(plats, fmt.Sprintf("%s %.1f MiB", pl.Platform, float64(pl.Size)/(1<<20)))
		}
		changed := "none"
		switch {
		case p.Error != "":
			changed = "FAILED: " + p.Error
		case p.Previous == "":
			changed = "all (first promotion)"
		case len(p.Changes) > 0:
			var cs []string
			for _, c := range p.Changes {
				cs = append(cs, c.Component+" "+c.Platform+" "+c.Change)
			}
			changed = strings.Join(cs, ", ")
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | `%s` | %s | %s | %s | `%s`, `%s` |\n", p.Version, p.Channel, p.Digest, prev, signed, strings.Join(plats, ", "), changed, p.SBOM, p.CycloneDX)
	}
	return b.String()
}
