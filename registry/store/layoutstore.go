package store

import (
	"bytes"
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
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/reference"
)

// LayoutStore is the Store of an OCI layout, or of one name in the local
// store (a layout whose images are tagged NAME:TAG).
type LayoutStore struct {
	l       *Layout
	prefix  string // "NAME:" in the store, "" for oci: layouts
	display string

	// Referrers by subject, from one scan of index.json; rescanned when
	// index.json changes (stamp is its mtime and size).
	mu    sync.Mutex
	stamp string
	refs  map[v1.Hash][]v1.Descriptor
	bad   map[v1.Hash]error
}

// Open opens the place a layout or store reference names, creating the
// layout when create is set (a destination), else failing with ErrNotFound
// when there is none.
func Open(ref reference.Reference, create bool) (*LayoutStore, error) {
	var l *Layout
	var err error
	if create {
		l, err = OpenLayout(Dir(ref))
	} else {
		l, err = OpenExisting(Dir(ref))
	}
	if err != nil {
		return nil, err
	}
	name := ""
	if ref.Transport == reference.TransportStore {
		name = ref.Name
	}
	return l.Store(name, ""), nil
}

// Store is the Store of the layout (name empty) or of store name NAME in
// it; display names it in messages (default oci:DIR or store:NAME).
func (l *Layout) Store(name, display string) *LayoutStore {
	e := &LayoutStore{l: l, display: "oci:" + l.dir}
	if name != "" {
		e.prefix = name + ":"
		e.display = "store:" + name
	}
	if display != "" {
		e.display = display
	}
	return e
}

// Discard removes what the store wrote since index.json last changed (see
// Layout.Discard); a failed copy calls it.
func (e *LayoutStore) Discard() { e.l.Discard() }

// Layout is the layout the store reads and writes.
func (e *LayoutStore) Layout() *Layout { return e.l }

// String names the store: oci:DIR or store:NAME.
func (e *LayoutStore) String() string { return e.display }

func (e *LayoutStore) Resolve(_ context.Context, tag, digest string) (v1.Descriptor, error) {
	ref := reference.Reference{Transport: reference.TransportLayout, Dir: e.l.dir, Tag: tag, Digest: digest}
	if e.prefix != "" {
		ref.Transport, ref.Name = reference.TransportStore, strings.TrimSuffix(e.prefix, ":")
		if tag == "" && digest == "" {
			ref.Tag = "latest"
		}
	}
	d, err := e.l.Resolve(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d.Annotations = nil
	if d.MediaType == "" || d.Size == 0 {
		raw, err := e.readBlob(d.Digest, -1)
		if err != nil {
			return v1.Descriptor{}, err
		}
		d = DescribeManifest(raw, d.MediaType)
	}
	return d, nil
}

func (e *LayoutStore) readBlob(h v1.Hash, size int64) ([]byte, error) {
	f, err := os.Open(e.l.path(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: blob %s: %w", e, h, ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
}

func (e *LayoutStore) Manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	raw, err := e.readBlob(d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s in %s is larger than %d bytes", d.Digest, e, MaxManifestSize)
	}
	if err := CheckDigest("manifest", e.l.blobPath(d.Digest), d, DescribeManifest(raw, "")); err != nil {
		return nil, err
	}
	return raw, nil
}

func (e *LayoutStore) Blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(e.l.path(d.Digest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: blob %s: %w", e, d.Digest, ErrNotFound)
		}
		return nil, err
	}
	return NewVerifier(f, d, "blob", e.l.blobPath(d.Digest)), nil
}

// rawBlob opens a blob without hashing it, for a destination that checks
// what it receives (see RawBlobSource).
func (e *LayoutStore) RawBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(e.l.path(d.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: blob %s: %w", e, d.Digest, ErrNotFound)
	}
	return f, err
}

func (e *LayoutStore) HasBlob(_ context.Context, d v1.Descriptor) (bool, error) {
	return e.l.HasBlob(d.Digest, d.Size), nil
}

func (e *LayoutStore) PutBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), _ string) (bool, error) {
	if e.l.HasBlob(d.Digest, d.Size) {
		return false, nil
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if !selfVerifying(rc) || d.Size < 0 {
		return false, e.l.writeBlob(ctx, d.Digest, d.Size, func() (io.ReadCloser, error) { return rc, nil }, nil)
	}
	return false, e.writeVerified(ctx, d, rc)
}

// RawBlobSource is a local source (a layout, the store, memory) that can
// stream a blob without hashing it. Copy uses it when the destination checks
// every blob it receives anyway: a registry verifies the digest of each
// upload, and a layout hashes what it writes unless the reader already did —
// so a local blob is hashed once, not twice.
type RawBlobSource interface {
	RawBlob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
}

// verifiedReader is a reader that checks the digest itself (see verifier),
// so the layout need not hash the bytes a second time.
type verifiedReader interface {
	io.Reader
	verifiedOK() bool
}

func selfVerifying(r io.Reader) bool {
	switch v := r.(type) {
	case *verifier:
		return true
	case ReadCloser:
		_, ok := v.Closer.(*verifier)
		return ok
	}
	return false
}

// copyBuffers are writeVerified's buffers, reused across blobs: larger than
// a socket read returns, and not allocated per blob (a short pull's first
// garbage collection came from them).
var copyBuffers = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// writeVerified streams r, which checks d's digest and size itself, to the
// blob's pending temp file (see Layout.Sync).
func (e *LayoutStore) writeVerified(ctx context.Context, d v1.Descriptor, r io.ReadCloser) error {
	return e.l.writeTemp(d.Digest, func(w io.Writer) error {
		buf := copyBuffers.Get().(*[256 << 10]byte)
		defer copyBuffers.Put(buf)
		n, err := io.CopyBuffer(w, ctxReader{ctx, r}, buf[:])
		if err != nil {
			var de *DigestError
			if errors.As(err, &de) {
				return de
			}
			return fmt.Errorf("writing blob %s: %w", d.Digest, err)
		}
		if n != d.Size || !r.(verifiedReader).verifiedOK() {
			return &DigestError{What: "blob", Expected: d.Digest.String(), Actual: "(unverified)", ExpectedSize: d.Size, ActualSize: n}
		}
		return nil
	})
}

func (e *LayoutStore) PutManifest(ctx context.Context, d v1.Descriptor, raw []byte) error {
	return e.l.writeBlob(ctx, d.Digest, int64(len(raw)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, nil)
}

func (e *LayoutStore) Tag(_ context.Context, d v1.Descriptor, _ []byte, tag string) error {
	entry := v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: d.ArtifactType}
	refName := ""
	if tag != "" {
		refName = e.prefix + tag
		entry.Annotations = map[string]string{AnnotationRefName: refName}
	}
	return e.l.updateIndex(func(im *v1.IndexManifest) {
		keep := im.Manifests[:0]
		for _, m := range im.Manifests {
			n := m.Annotations[AnnotationRefName]
			if refName != "" && n == refName {
				continue
			}
			if refName == "" && n == "" && m.Digest == d.Digest {
				return // already reachable
			}
			keep = append(keep, m)
		}
		im.Manifests = append(keep, entry)
	})
}

func (e *LayoutStore) Tags(context.Context) ([]string, error) {
	im, err := e.l.ReadIndex()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range im.Manifests {
		n := m.Annotations[AnnotationRefName]
		if n == "" || !strings.HasPrefix(n, e.prefix) {
			continue
		}
		out = append(out, strings.TrimPrefix(n, e.prefix))
	}
	return out, nil
}

// referrers lists the manifests in index.json (tagged or not) whose subject
// is subject. The whole index is scanned once and kept until index.json
// changes, so a copy that asks for every manifest's referrers reads each
// manifest once.
func (e *LayoutStore) Referrers(_ context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
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
	return FilterArtifactType(e.refs[subject.Digest], artifactType), nil
}

func (e *LayoutStore) scanReferrers() error {
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
		md := DescribeManifest(raw, d.MediaType)
		if md.Digest != d.Digest {
			e.bad[s] = &DigestError{What: "manifest", Source: e.l.blobPath(d.Digest), Expected: d.Digest.String(), Actual: md.Digest.String(), ExpectedSize: d.Size, ActualSize: md.Size}
			continue
		}
		m, err := ParseManifest(md, raw)
		if err != nil {
			e.bad[s] = err
			continue
		}
		e.refs[s] = append(e.refs[s], ReferrerDescriptor(md, m))
	}
	return nil
}

// addReferrers lists ds untagged in index.json, which is what makes a layout
// referrer discoverable.
func (e *LayoutStore) AddReferrers(_ context.Context, _ v1.Descriptor, ds []v1.Descriptor) error {
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
