package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Referrers lists the manifests whose subject is the manifest ref names
// (SBOMs, signatures, channel records, revocations), optionally only those of
// artifactType. On a registry it uses the OCI 1.1 referrers API when the
// registry answers it, else the "sha256-<hex>" tag fallback index; in a layout
// or the store it scans index.json for manifests with that subject.
func Referrers(ctx context.Context, ref Reference, artifactType string, o Options) ([]v1.Descriptor, error) {
	e, err := openEndpoint(ctx, ref, o, false)
	if err != nil {
		return nil, err
	}
	d, err := e.resolve(ctx, ref.Tag, ref.Digest)
	if err != nil {
		return nil, err
	}
	return e.referrers(ctx, d, artifactType)
}

// fallbackTag is the OCI 1.1 referrers tag schema: sha256-<hex>.
func fallbackTag(h v1.Hash) string { return h.Algorithm + "-" + h.Hex }

// isFallbackTag reports whether tag is a referrers fallback tag or a cosign
// legacy tag (sha256-<hex>[.sig|.att|.sbom]), which listings hide.
func isFallbackTag(tag string) bool {
	if !strings.HasPrefix(tag, "sha256-") || len(tag) < 7+64 {
		return false
	}
	rest := tag[7+64:]
	return rest == "" || rest == ".sig" || rest == ".att" || rest == ".sbom"
}

// referrersAPI reports (once per endpoint) whether the registry serves the
// referrers API: a GET of /v2/<name>/referrers/<digest> answering 200.
func (e *remoteEndpoint) referrersAPI(ctx context.Context, subject v1.Hash) (bool, []v1.Descriptor, error) {
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

func (e *remoteEndpoint) referrers(ctx context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	ok, ds, err := e.referrersAPI(ctx, subject.Digest)
	if err != nil {
		return nil, err
	}
	if !ok {
		ds, _, err = e.readFallback(ctx, subject.Digest)
		if err != nil {
			return nil, err
		}
	}
	return filterArtifactType(ds, artifactType), nil
}

// readFallback reads the tag fallback index of subject; a missing tag is an
// empty list.
func (e *remoteEndpoint) readFallback(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, bool, error) {
	_, raw, err := e.c.getManifest(ctx, fallbackTag(subject), nil)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, false, fmt.Errorf("referrers index %s:%s: %w", e, fallbackTag(subject), err)
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
func (e *remoteEndpoint) addReferrers(ctx context.Context, subject v1.Descriptor, ds []v1.Descriptor) error {
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
	return fmt.Errorf("referrers index %s:%s did not settle after %d attempts", e, fallbackTag(subject.Digest), fallbackAttempts)
}

func (e *remoteEndpoint) writeFallback(ctx context.Context, subject v1.Hash, ds []v1.Descriptor) error {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds}
	raw, err := json.Marshal(im)
	if err != nil {
		return err
	}
	d := manifestDescriptor(raw, types.OCIImageIndex)
	if _, err := e.c.putManifest(ctx, fallbackTag(subject), d, raw); err != nil {
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

// referrers lists the manifests in index.json (tagged or not) whose subject
// is subject. The whole index is scanned once and kept until index.json
// changes, so a copy that asks for every manifest's referrers reads each
// manifest once.
func (e *layoutEndpoint) referrers(_ context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fi, err := os.Stat(filepath.Join(e.l.dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", e.l.dir, err)
	}
	stamp := fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		stamp += fmt.Sprint(" ", st.Ino) // index.json is replaced by rename: a new inode
	}
	if stamp != e.stamp || e.refs == nil {
		if err := e.scanReferrers(); err != nil {
			return nil, err
		}
		e.stamp = stamp
	}
	if err := e.bad[subject.Digest]; err != nil {
		return nil, err
	}
	return filterArtifactType(e.refs[subject.Digest], artifactType), nil
}

func (e *layoutEndpoint) scanReferrers() error {
	im, err := e.l.ReadIndex()
	if err != nil {
		return err
	}
	e.refs, e.bad = map[v1.Hash][]v1.Descriptor{}, map[v1.Hash]error{}
	seen := map[v1.Hash]bool{}
	for _, d := range im.Manifests {
		if seen[d.Digest] || !(d.MediaType.IsImage() || d.MediaType.IsIndex()) {
			continue
		}
		seen[d.Digest] = true
		raw, err := e.readBlob(d.Digest, d.Size)
		if err != nil {
			continue // listed but absent: not ours to judge here
		}
		var probe struct {
			Subject *v1.Descriptor `json:"subject"`
		}
		if json.Unmarshal(raw, &probe) != nil || probe.Subject == nil {
			continue
		}
		s := probe.Subject.Digest
		md := manifestDescriptor(raw, d.MediaType)
		if md.Digest != d.Digest {
			e.bad[s] = &DigestError{What: "manifest", Source: e.l.blobPath(d.Digest), Expected: d.Digest.String(), Actual: md.Digest.String(), ExpectedSize: d.Size, ActualSize: md.Size}
			continue
		}
		m, err := parseManifest(md, raw)
		if err != nil {
			e.bad[s] = err
			continue
		}
		e.refs[s] = append(e.refs[s], referrerDescriptor(md, m))
	}
	return nil
}

// addReferrers lists ds untagged in index.json, which is what makes a layout
// referrer discoverable.
func (e *layoutEndpoint) addReferrers(_ context.Context, _ v1.Descriptor, ds []v1.Descriptor) error {
	if len(ds) == 0 {
		return nil
	}
	return e.l.updateIndex(func(im *v1.IndexManifest) {
		for _, d := range ds {
			if !hasUntagged(im.Manifests, d.Digest) {
				im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: d.ArtifactType})
			}
		}
	})
}
