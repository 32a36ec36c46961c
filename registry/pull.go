package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/transfer"
	"github.com/prebake/prebake/registry/unpack"
)

// PullOptions configure Pull.
type PullOptions struct {
	Options
	// Platform picks the image of an index to unpack ("os/arch[/variant]");
	// empty means linux/<this machine's architecture>. Output to an OCI
	// layout keeps every platform.
	Platform string
	// RequireDigest refuses references by tag (for provisioners, which must
	// boot exactly what was tested).
	RequireDigest bool
	// AllowRevoked pulls digests that carry a revocation.
	AllowRevoked bool
	// Resolved, when set, is called once the reference is resolved to a
	// digest, before anything else is fetched.
	Resolved func(v1.Descriptor)
}

// PullResult reports what Pull fetched.
type PullResult struct {
	CopyResult
	// Image is the platform image unpacked (DIR output only).
	Image v1.Descriptor
	// Output is the directory written.
	Output string
}

// Pull fetches src and writes it to dst: "oci:DIR[:TAG]" stores the graph
// (every platform, with referrers) in an OCI layout; a plain DIR receives
// the platform's root filesystem (see Unpack). A tag is resolved to a digest
// exactly once; everything after is fetched by digest and checked while it
// streams. A revoked digest fails with ErrRevoked unless o.AllowRevoked.
// Nothing appears at dst unless the pull completes: content is staged in a
// temporary sibling and renamed into place.
func Pull(ctx context.Context, src Reference, dst string, o PullOptions) (PullResult, error) {
	if o.RequireDigest && src.Digest == "" {
		return PullResult{}, fmt.Errorf("pulling %s: %w: name the image as REF@sha256:…", src, ErrDigestRequired)
	}
	var out Reference
	toLayout := strings.HasPrefix(dst, "oci:")
	if toLayout {
		var err error
		if out, err = ParseReference(dst); err != nil {
			return PullResult{}, err
		}
		if err := checkLayoutTarget(out.Dir); err != nil {
			return PullResult{}, err
		}
	} else {
		if dst == "" {
			return PullResult{}, fmt.Errorf("pulling %s: no output directory", src)
		}
		if err := unpack.CheckEmpty(dst); err != nil {
			return PullResult{}, err
		}
	}
	inner, err := Open(ctx, src, o.Options, false)
	if err != nil {
		return PullResult{}, err
	}
	se := newPullSource(ctx, inner, toLayout)
	defer se.close()
	root, err := se.Resolve(ctx, src.Tag, src.Digest)
	if err != nil {
		return PullResult{}, err
	}
	if o.Resolved != nil {
		o.Resolved(root)
	}
	if !o.AllowRevoked {
		if err := records.CheckRevoked(ctx, se, src.WithDigest("").String(), root); err != nil {
			return PullResult{}, err
		}
	}
	copts := transfer.Options{Jobs: o.Jobs, Progress: o.Progress, Op: "download"}
	if toLayout {
		tag := out.Tag
		if tag == "" && out.Digest == "" {
			tag = src.Tag
		}
		res, err := pullLayout(ctx, se, root, out.Dir, tag, copts)
		return PullResult{CopyResult: res, Output: out.Dir}, err
	}
	img, err := pickPlatform(ctx, se, root, o.Platform)
	if err != nil {
		return PullResult{}, err
	}
	if img.Digest != root.Digest && !o.AllowRevoked {
		if err := records.CheckRevoked(ctx, se, src.WithDigest("").String(), img); err != nil {
			return PullResult{}, err
		}
	}
	dst = filepath.Clean(dst)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return PullResult{}, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".pull-*")
	if err != nil {
		return PullResult{}, err
	}
	defer os.RemoveAll(stage)
	l, err := store.OpenScratch(stage)
	if err != nil {
		return PullResult{}, err
	}
	copts.NoReferrers = true
	res, err := transfer.Copy(ctx, se, l.Store("", ""), img, "", copts)
	if err != nil {
		return PullResult{}, err
	}
	a, err := store.Load(ctx, l.Store("", ""), img)
	if err != nil {
		return PullResult{}, err
	}
	image, ok := a.(v1.Image)
	if !ok {
		return PullResult{}, fmt.Errorf("%s: %s is not an image", src, img.Digest)
	}
	if err := unpack.Unpack(ctx, image, dst, unpack.Options{Progress: o.Progress}); err != nil {
		return PullResult{}, err
	}
	return PullResult{CopyResult: res, Image: img, Output: dst}, nil
}

// checkLayoutTarget accepts a missing path, an empty directory or an OCI
// layout.
func checkLayoutTarget(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return nil
	}
	return unpack.CheckEmpty(dir)
}

// pickPlatform returns root when it is an image, else the image of the index
// matching platform.
func pickPlatform(ctx context.Context, e store.Store, root v1.Descriptor, platform string) (v1.Descriptor, error) {
	if !root.MediaType.IsIndex() {
		return root, nil
	}
	raw, err := e.Manifest(ctx, root)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return v1.Descriptor{}, fmt.Errorf("index %s: %w", root.Digest, err)
	}
	d, err := store.MatchPlatform(im.Manifests, platform)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", root.Digest, err)
	}
	if d.MediaType.IsIndex() {
		return pickPlatform(ctx, e, d, platform)
	}
	return d, nil
}

// pullLayout copies into a staging layout next to dir (store.OpenStage:
// blob data is flushed in the background while the download runs), makes
// the stage durable, then moves the result in: a rename when dir does not
// exist yet (and a sync of its parent), else blob by blob (each a rename)
// and one atomic index.json update. The stage is invisible until then, and
// thrown away on error.
func pullLayout(ctx context.Context, se store.Store, root v1.Descriptor, dir, tag string, o transfer.Options) (CopyResult, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return CopyResult{}, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".pull-*")
	if err != nil {
		return CopyResult{}, err
	}
	defer os.RemoveAll(stage)
	l, err := store.OpenStage(stage)
	if err != nil {
		return CopyResult{}, err
	}
	// An existing layout seeds the stage's "already have" checks.
	de := l.Store("", "oci:"+dir)
	var existing *store.Layout
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		if existing, err = store.OpenExisting(dir); err != nil {
			return CopyResult{}, err
		}
	}
	res, err := transfer.Copy(ctx, se, &seededLayout{LayoutStore: de, seed: existing}, root, tag, o)
	if err != nil {
		return res, err
	}
	if existing == nil {
		if err := os.Chmod(stage, 0o755); err != nil {
			return res, err
		}
	}
	if err := l.SyncStage(); err != nil {
		return res, err
	}
	if existing == nil {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("replacing empty %s: %w", dir, err)
		}
		if err := os.Rename(stage, dir); err != nil {
			return res, err
		}
		return res, atomicfile.SyncDir(filepath.Dir(dir))
	}
	return res, existing.Merge(l)
}

// seededLayout is a staging layout that also counts the blobs of an
// existing layout as present (they are not copied into the stage).
type seededLayout struct {
	*store.LayoutStore
	seed *store.Layout
}

func (s *seededLayout) HasBlob(ctx context.Context, d v1.Descriptor) (bool, error) {
	if s.seed != nil && s.seed.HasBlob(d.Digest, d.Size) {
		return true, nil
	}
	return s.LayoutStore.HasBlob(ctx, d)
}

// pullSource is the source of one Pull. The revocation check and the graph
// walk both list the root's referrers and read its records: each listing
// and manifest is fetched once. For a layout pull, which copies cosign's
// legacy tags too, the tag list is fetched while the rest is resolved.
type pullSource struct {
	store.Store

	mu        sync.Mutex
	referrers map[v1.Hash][]v1.Descriptor
	manifests map[v1.Hash][]byte

	cancel  context.CancelFunc
	tagsSet chan struct{} // closed when tags/tagsErr are set; nil: not prefetched
	tags    []string
	tagsErr error
}

func newPullSource(ctx context.Context, s store.Store, prefetchTags bool) *pullSource {
	p := &pullSource{Store: s, referrers: map[v1.Hash][]v1.Descriptor{}, manifests: map[v1.Hash][]byte{}, cancel: func() {}}
	if prefetchTags {
		ctx, p.cancel = context.WithCancel(ctx)
		p.tagsSet = make(chan struct{})
		go func() {
			defer close(p.tagsSet)
			p.tags, p.tagsErr = s.Tags(ctx)
		}()
	}
	return p
}

// close stops and waits for the prefetch.
func (p *pullSource) close() {
	p.cancel()
	if p.tagsSet != nil {
		<-p.tagsSet
	}
}

func (p *pullSource) Tags(ctx context.Context) ([]string, error) {
	if p.tagsSet == nil {
		return p.Store.Tags(ctx)
	}
	select {
	case <-p.tagsSet:
		return p.tags, p.tagsErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pullSource) Referrers(ctx context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	p.mu.Lock()
	ds, ok := p.referrers[subject.Digest]
	p.mu.Unlock()
	if !ok {
		var err error
		if ds, err = p.Store.Referrers(ctx, subject, ""); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.referrers[subject.Digest] = ds
		p.mu.Unlock()
	}
	return store.FilterArtifactType(ds, artifactType), nil
}

func (p *pullSource) Manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	p.mu.Lock()
	raw, ok := p.manifests[d.Digest]
	p.mu.Unlock()
	if ok && (d.Size <= 0 || int64(len(raw)) == d.Size) {
		return raw, nil
	}
	raw, err := p.Store.Manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.manifests[d.Digest] = raw
	p.mu.Unlock()
	return raw, nil
}

// RawBlob passes a local source's unverified stream through (see
// store.RawBlobSource); other sources stream verified.
func (p *pullSource) RawBlob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if raw, ok := p.Store.(store.RawBlobSource); ok {
		return raw.RawBlob(ctx, d)
	}
	return p.Store.Blob(ctx, d)
}
