package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/signing"
)

// Errors of saved promotion sets.
var (
	// ErrPromoteSet: a saved result names no pushed image, or two images
	// that would take the same channel.
	ErrPromoteSet = errors.New("bad promotion set")
	// ErrChannelMoved: a channel of a promoted set no longer names the
	// digest the set put there, so rolling it back would undo another
	// promotion.
	ErrChannelMoved = errors.New("the channel moved since this promotion")
)

// LoadPromotionSet reads the images to promote from saved results: the
// --json output of `prebake build` (one image) or of a matrix build (every
// pushed image; failed ones are left out), or a promotion report (its
// images, to promote a promoted set further: nightly, then stable). A
// directory stands for every build result (*.json) in it; promotion reports
// there are skipped, so a report written next to the results is not read
// back. Images named twice (by reference) count once.
func LoadPromotionSet(paths []string) ([]PromotedImage, error) {
	var set []PromotedImage
	seen := map[string]bool{}
	add := func(imgs []PromotedImage) {
		for _, p := range imgs {
			if !seen[p.Reference] {
				seen[p.Reference] = true
				set = append(set, p)
			}
		}
	}
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			imgs, _, err := loadSaved(path)
			if err != nil {
				return nil, err
			}
			add(imgs)
			continue
		}
		files, err := filepath.Glob(filepath.Join(path, "*.json"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			imgs, report, err := loadSaved(f)
			if err != nil {
				return nil, err
			}
			if !report {
				add(imgs)
			}
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%v: %w: no pushed image", paths, ErrPromoteSet)
	}
	return set, nil
}

// loadSaved reads one saved result; report says it was a promotion report.
func loadSaved(file string) (imgs []PromotedImage, report bool, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, false, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, false, fmt.Errorf("%s: %w", file, jsonPosition(b, err))
	}
	strict := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("%s: %w", file, jsonPosition(b, err))
		}
		return nil
	}
	_, hasChannel := top["channel"]
	_, hasImages := top["images"]
	_, hasDigest := top["digest"]
	switch {
	case hasChannel && hasImages:
		var r PromotionReport
		if err := strict(&r); err != nil {
			return nil, true, err
		}
		for i, p := range r.Images {
			if p.Error != "" {
				continue
			}
			if p.Reference == "" {
				return nil, true, fmt.Errorf("%s: images[%d] (%s): %w: no reference", file, i, p.Version, ErrPromoteSet)
			}
			imgs = append(imgs, p)
		}
		return imgs, true, nil
	case hasImages:
		var r MatrixResult
		if err := strict(&r); err != nil {
			return nil, false, err
		}
		for _, img := range r.Images {
			if img.Result != nil && img.Error == "" && img.Pushed != "" {
				imgs = append(imgs, candidate(img.Result))
			}
		}
		return imgs, false, nil
	case hasDigest:
		var r Result
		if err := strict(&r); err != nil {
			return nil, false, err
		}
		if r.Pushed == "" {
			return nil, false, fmt.Errorf("%s: %w: the image %s was not pushed (build with --push)", file, ErrPromoteSet, r.Digest)
		}
		return []PromotedImage{candidate(&r)}, false, nil
	}
	return nil, false, fmt.Errorf("%s: %w: not a build result (prebake build --json) or a promotion report", file, ErrPromoteSet)
}

// jsonPosition adds the line and column of a JSON syntax or type error.
func jsonPosition(b []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err
	}
	line, col := 1, 1
	for _, c := range b[:min(int(off), len(b))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// PromoteSet promotes every image of set to CHANNEL-VERSION of its
// repository in one call: first it checks the whole set (each image
// resolves to its digest, is signed by o.VerifyKey when given, and no two
// images take the same channel) and moves no channel if any check fails;
// then it promotes each image (registry.Promote: recorded, with history and
// rollback), noting what the channel named before and which components'
// layers changed since. Sizes and platforms are read from the registry. An
// image whose promotion fails is reported with its error and the others go
// on; the error then wraps ErrPromoteFailed.
func PromoteSet(ctx context.Context, set []PromotedImage, o PromoteOptions) (*PromotionReport, error) {
	rep := &PromotionReport{Channel: o.Channel}
	var vopts signing.VerifyOptions
	if o.VerifyKey != "" {
		v, err := signing.LoadVerifier(ctx, o.VerifyKey)
		if err != nil {
			return nil, err
		}
		vopts = signing.VerifyOptions{Verifier: v, SkipBlobs: true, AllowRevoked: o.AllowRevoked, Registry: o.Registry}
	}
	refs := make([]registry.Reference, len(set))
	taken := map[string]string{}
	failed := 0
	for i, c := range set {
		p := c
		p.Channel, p.Previous, p.Changes, p.Error, p.Verified = o.Channel+"-"+c.Version, "", nil, "", false
		err := func() error {
			if err := records.CheckChannel(p.Channel); err != nil {
				return err
			}
			ref, err := registry.ParseReference(p.Reference)
			if err != nil {
				return err
			}
			if ref.Digest == "" || ref.Digest != p.Digest {
				return fmt.Errorf("%s: %w: want REPO@%s", p.Reference, registry.ErrDigestRequired, p.Digest)
			}
			refs[i] = ref
			repoTag := ref.WithTag(p.Channel)
			if other, ok := taken[repoTag.String()]; ok && other != p.Digest {
				return fmt.Errorf("%w: %s and %s both go to %s", ErrPromoteSet, other, p.Digest, repoTag)
			}
			taken[repoTag.String()] = p.Digest
			now, err := registry.Inspect(ctx, ref, o.Registry)
			if err != nil {
				return err
			}
			p.Platforms = nil
			for _, pl := range now.Platforms {
				var size int64
				for _, l := range pl.Layers {
					size += l.Size
				}
				p.Platforms = append(p.Platforms, PromotedPlatform{Platform: pl.Platform, Digest: pl.Digest, Size: size})
			}
			if o.VerifyKey != "" {
				vr, err := signing.Verify(ctx, ref, vopts)
				if err != nil {
					return err
				}
				p.Verified, p.Signatures = true, vr.Signatures
			}
			if prev, err := registry.Inspect(ctx, repoTag, o.Registry); err == nil {
				p.Previous = prev.Digest
				p.Changes = registry.Diff(prev, now)
			}
			return nil
		}()
		if err != nil {
			p.Error = err.Error()
			failed++
		}
		rep.Images = append(rep.Images, p)
	}
	if failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d images failed their checks; no channel moved", ErrPromoteFailed, failed, len(set))
	}
	for i := range rep.Images {
		p := &rep.Images[i]
		if p.Previous == p.Digest {
			continue // already there: no record of a move that is none
		}
		if _, err := registry.Promote(ctx, refs[i], p.Channel, registry.PromoteOptions{Options: o.Registry, By: o.By, AllowRevoked: o.AllowRevoked}); err != nil {
			p.Error = err.Error()
			failed++
		}
	}
	if failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d promotions", ErrPromoteFailed, failed, len(rep.Images))
	}
	return rep, nil
}

// RollbackSet undoes a promotion PromoteSet reported: every channel it moved
// goes back to the digest it named before (registry.Rollback, recorded like
// a promotion); channels the set created stay. A channel that no longer names the digest the set put there
// is refused (ErrChannelMoved) before any channel moves, since rolling it
// back would undo a later promotion.
func RollbackSet(ctx context.Context, rep *PromotionReport, o PromoteOptions) ([]registry.Assignment, error) {
	type move struct {
		repo    registry.Reference
		channel string
	}
	var moves []move
	for _, p := range rep.Images {
		if p.Error != "" || p.Previous == p.Digest || p.Previous == "" {
			continue // not moved, or created: nothing to go back to
		}
		ref, err := registry.ParseReference(p.Reference)
		if err != nil {
			return nil, err
		}
		cur, err := registry.Inspect(ctx, ref.WithTag(p.Channel), o.Registry)
		if err != nil {
			return nil, fmt.Errorf("rolling back %s: %w", p.Channel, err)
		}
		if cur.Digest != p.Digest {
			return nil, fmt.Errorf("rolling back %s: %w: it names %s, the set put %s there", ref.WithTag(p.Channel), ErrChannelMoved, cur.Digest, p.Digest)
		}
		moves = append(moves, move{ref, p.Channel})
	}
	var out []registry.Assignment
	for _, m := range moves {
		as, err := registry.Rollback(ctx, m.repo, m.channel, registry.PromoteOptions{Options: o.Registry, By: o.By, AllowRevoked: o.AllowRevoked})
		if err != nil {
			return out, fmt.Errorf("rolling back %s: %w", m.channel, err)
		}
		out = append(out, as)
	}
	return out, nil
}

// LoadPromotionReport reads a promotion report (PromotionReport's JSON).
func LoadPromotionReport(file string) (*PromotionReport, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var r PromotionReport
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, jsonPosition(b, err))
	}
	if r.Channel == "" {
		return nil, fmt.Errorf("%s: %w: not a promotion report (no channel)", file, ErrPromoteSet)
	}
	return &r, nil
}
