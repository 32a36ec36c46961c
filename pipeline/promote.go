package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/prebake/prebake/registry"
)

// PromoteOptions configure PromoteMatrix and PromoteSet.
type PromoteOptions struct {
	// Channel is the channel's name; each image is promoted to the channel
	// CHANNEL-VERSION of its repository (nightly-1.36.4), since a channel is
	// one tag.
	Channel string
	// Registry carries credentials and the transport; By who promotes.
	Registry registry.Options
	By       string
	// VerifyKey, when set, requires a valid cosign signature by this key on
	// every image of the set before any channel moves (PromoteSet).
	VerifyKey string
	// AllowRevoked promotes revoked digests anyway.
	AllowRevoked bool
}

// PromotionReport is what PromoteMatrix or PromoteSet did, image by image:
// its JSON is in `prebake build --matrix --promote --json` and `prebake
// promote --from --json`, Markdown renders it. LoadPromotionSet reads it
// back, so a promoted set can be promoted further (nightly, then stable) or
// rolled back (RollbackSet).
type PromotionReport struct {
	Channel string          `json:"channel"`
	Images  []PromotedImage `json:"images"`
}

// PromotedImage is one image's promotion.
type PromotedImage struct {
	Version string `json:"version"`
	// Reference is the image as pushed, REPO@DIGEST.
	Reference string `json:"reference,omitempty"`
	// Channel is the tag promoted (CHANNEL-VERSION); Previous the digest it
	// named before ("" the first time).
	Channel  string `json:"channel"`
	Digest   string `json:"digest"`
	Previous string `json:"previous,omitempty"`
	// Signatures is how many manifests the build signed, or how many
	// signatures verified with the key (Verified).
	Signatures int  `json:"signatures"`
	Verified   bool `json:"verified,omitempty"`
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
	var set []PromotedImage
	for _, img := range r.Images {
		if img.Result != nil && img.Pushed != "" {
			set = append(set, candidate(img.Result))
		}
	}
	o.VerifyKey = ""
	return PromoteSet(ctx, set, o)
}

// candidate is what a build result says of the image it pushed.
func candidate(r *Result) PromotedImage {
	p := PromotedImage{Version: r.Version, Reference: r.Pushed, Digest: r.Digest, Signatures: r.Signatures, SBOM: r.SBOM, CycloneDX: r.CycloneDX}
	for _, pl := range r.Platforms {
		var size int64
		for _, l := range pl.Layers {
			size += l.Size
		}
		p.Platforms = append(p.Platforms, PromotedPlatform{Platform: pl.Platform, Digest: pl.Digest, Size: size})
	}
	return p
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
		switch {
		case p.Verified:
			signed = fmt.Sprintf("verified (%d signatures)", p.Signatures)
		case p.Signatures > 0:
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
