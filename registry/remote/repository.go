package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry/store"
)

// Repository is the store.Store of one registry repository (see Open).
type Repository struct {
	c *repoClient

	mu     sync.Mutex
	hasAPI *bool // referrers API detected (nil: not probed yet)
	// fetched holds manifests Resolve read by digest, for the Manifest
	// call that follows (content-addressed: never stale).
	fetched map[v1.Hash][]byte
}

// String is the repository's name (host/repo).
func (e *Repository) String() string { return e.c.repo.Name() }

func (e *Repository) Resolve(ctx context.Context, tag, digest string) (v1.Descriptor, error) {
	ref := digest
	if ref == "" {
		ref = tag
	}
	if ref == "" {
		ref = "latest"
	}
	if digest != "" {
		// A GET, not a HEAD: the body is checked against the digest here
		// and kept for the Manifest call every caller makes next.
		h, err := v1.NewHash(digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s@%s: %w", e, digest, err)
		}
		d, raw, err := e.c.getManifest(ctx, digest, &v1.Descriptor{Digest: h})
		if errors.Is(err, store.ErrNotFound) {
			return v1.Descriptor{}, fmt.Errorf("%s@%s: %w", e, digest, store.ErrNotFound)
		}
		if err != nil {
			return v1.Descriptor{}, err
		}
		e.mu.Lock()
		if e.fetched == nil {
			e.fetched = map[v1.Hash][]byte{}
		}
		e.fetched[d.Digest] = raw
		e.mu.Unlock()
		return d, nil
	}
	// By tag: fetch the body so the digest is computed here, not trusted.
	d, _, err := e.c.getManifest(ctx, ref, nil)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return v1.Descriptor{}, fmt.Errorf("%s:%s: %w", e, ref, store.ErrNotFound)
		}
		return v1.Descriptor{}, err
	}
	return d, nil
}

func (e *Repository) Manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	e.mu.Lock()
	raw, ok := e.fetched[d.Digest]
	e.mu.Unlock()
	if ok && (d.Size <= 0 || int64(len(raw)) == d.Size) {
		return raw, nil
	}
	_, raw, err := e.c.getManifest(ctx, d.Digest.String(), &d)
	return raw, err
}

func (e *Repository) Blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	return e.c.getBlob(ctx, d)
}

func (e *Repository) HasBlob(ctx context.Context, d v1.Descriptor) (bool, error) {
	return e.c.headBlob(ctx, d)
}

// HasManifest reports, with one HEAD, whether tag names d or, with tag "",
// whether the repository holds d (see transfer.ManifestChecker). Any error
// counts as "no".
func (e *Repository) HasManifest(ctx context.Context, d v1.Descriptor, tag string) bool {
	ref := tag
	if ref == "" {
		ref = d.Digest.String()
	}
	got, ok, err := e.c.headManifest(ctx, ref)
	return err == nil && ok && got.Digest == d.Digest && (got.Size <= 0 || d.Size <= 0 || got.Size == d.Size)
}

func (e *Repository) PutBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), mountFrom string) (bool, error) {
	loc, mounted, err := e.c.startUpload(ctx, d, mountFrom)
	if err != nil {
		return false, err
	}
	if mounted {
		return true, nil
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return false, e.c.uploadBlob(ctx, loc, d, rc)
}

func (e *Repository) PutManifest(ctx context.Context, d v1.Descriptor, raw []byte) error {
	_, err := e.c.putManifest(ctx, d.Digest.String(), d, raw)
	return err
}

func (e *Repository) Tag(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error {
	if tag == "" {
		return nil
	}
	_, err := e.c.putManifest(ctx, tag, d, raw)
	return err
}

func (e *Repository) Tags(ctx context.Context) ([]string, error) { return e.c.tags(ctx) }

// referrersAPI reports (once per endpoint) whether the registry serves the
// referrers API: a GET of /v2/<name>/referrers/<digest> answering 200.
func (e *Repository) referrersAPI(ctx context.Context, subject v1.Hash) (bool, []v1.Descriptor, error) {
	e.mu.Lock()
	known := e.hasAPI
	e.mu.Unlock()
	if known != nil && !*known {
		return false, nil, nil
	}
	ds, ok, err := e.c.referrers(ctx, subject, "")
	if err != nil {
		return false, nil, err
	}
	e.mu.Lock()
	e.hasAPI = &ok
	e.mu.Unlock()
	return ok, ds, nil
}

func (e *Repository) Referrers(ctx context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	e.mu.Lock()
	probed := e.hasAPI != nil
	e.mu.Unlock()
	var (
		fallback    []v1.Descriptor
		fallbackErr error
		wg          sync.WaitGroup
	)
	if !probed {
		// The first listing asks the API and reads the tag fallback at
		// once, so that a registry without the API costs no extra round
		// trip (one with it, a tag GET answered 404).
		wg.Add(1)
		go func() {
			defer wg.Done()
			fallback, _, fallbackErr = e.readFallback(ctx, subject.Digest)
		}()
	}
	ok, ds, err := e.referrersAPI(ctx, subject.Digest)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if !ok {
		if probed {
			fallback, _, fallbackErr = e.readFallback(ctx, subject.Digest)
		}
		if fallbackErr != nil {
			return nil, fallbackErr
		}
		ds = fallback
	}
	return store.FilterArtifactType(ds, artifactType), nil
}

// readFallback reads the tag fallback index of subject; a missing tag is an
// empty list.
func (e *Repository) readFallback(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, bool, error) {
	_, raw, err := e.c.getManifest(ctx, store.FallbackTag(subject), nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, false, fmt.Errorf("referrers index %s:%s: %w", e, store.FallbackTag(subject), err)
	}
	return im.Manifests, true, nil
}

// Settling of the fallback index; see addReferrers.
var (
	fallbackMinSettle = 100 * time.Millisecond
	fallbackAttempts  = 30
)

// addReferrers records ds as referrers of subject. Registries with the
// referrers API index them on push; on the others prebake maintains the
// "sha256-<hex>" fallback index by read-modify-write. Registries offer no
// compare-and-swap on tags, so two clients adding at once can overwrite each
// other; prebake re-reads after every write (after a settle delay of at least
// twice its own read-to-write time) and merges its entries back in until two
// reads in a row contain them. An entry is lost only if another client's
// read-to-write window spans both of those reads, i.e. lasts longer than
// twice the settle delay.
func (e *Repository) AddReferrers(ctx context.Context, subject v1.Descriptor, ds []v1.Descriptor) error {
	if len(ds) == 0 {
		return nil
	}
	ok, _, err := e.referrersAPI(ctx, subject.Digest)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	settle := fallbackMinSettle
	confirmed := 0
	for attempt := range fallbackAttempts {
		start := time.Now()
		cur, _, err := e.readFallback(ctx, subject.Digest)
		if err != nil {
			return err
		}
		merged, changed := mergeDescriptors(cur, ds)
		if !changed {
			if attempt == 0 {
				return nil // already listed; nothing written that could be lost
			}
			confirmed++
			if confirmed == 2 {
				return nil
			}
		} else {
			confirmed = 0
			if err := e.writeFallback(ctx, subject.Digest, merged); err != nil {
				return err
			}
			if rmw := 2 * time.Since(start); rmw > settle {
				settle = rmw
			}
		}
		jitter := time.Duration(rand.Int64N(int64(settle)/2 + 1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settle + jitter):
		}
	}
	return fmt.Errorf("referrers index %s:%s did not settle after %d attempts", e, store.FallbackTag(subject.Digest), fallbackAttempts)
}

func (e *Repository) writeFallback(ctx context.Context, subject v1.Hash, ds []v1.Descriptor) error {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds}
	raw, err := json.Marshal(im)
	if err != nil {
		return err
	}
	d := store.DescribeManifest(raw, types.OCIImageIndex)
	if _, err := e.c.putManifest(ctx, store.FallbackTag(subject), d, raw); err != nil {
		return fmt.Errorf("updating referrers index: %w", err)
	}
	return nil
}

// mergeDescriptors adds the descriptors of add missing from cur (by digest),
// keeping cur's order; changed reports whether anything was added.
func mergeDescriptors(cur, add []v1.Descriptor) ([]v1.Descriptor, bool) {
	out := slices.Clone(cur)
	changed := false
	for _, d := range add {
		if !slices.ContainsFunc(out, func(c v1.Descriptor) bool { return c.Digest == d.Digest }) {
			out = append(out, d)
			changed = true
		}
	}
	return out, changed
}
