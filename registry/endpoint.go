package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
)

// endpoint is one place graphs live — a registry repository, an OCI layout,
// a name in the local store, or images held in memory — seen through the few
// operations Copy, Pull and the referrer, channel and revocation code need.
// Every read verifies digest and size.
type endpoint interface {
	String() string
	// resolve turns a tag (or digest) into a descriptor.
	resolve(ctx context.Context, tag, digest string) (v1.Descriptor, error)
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
	hasBlob(ctx context.Context, d v1.Descriptor) (bool, error)
	// putBlob stores blob d from open(); mountFrom names a repository of the
	// same registry to mount from instead (remote only, best effort).
	putBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), mountFrom string) (mounted bool, err error)
	// putManifest stores a manifest by digest; referrers are indexed with
	// addReferrers afterwards.
	putManifest(ctx context.Context, d v1.Descriptor, raw []byte) error
	// tag points tag at d; for layouts an empty tag adds d untagged to
	// index.json so that it is reachable.
	tag(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error
	tags(ctx context.Context) ([]string, error)
	referrers(ctx context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error)
	addReferrers(ctx context.Context, subject v1.Descriptor, ds []v1.Descriptor) error
}

// openEndpoint opens ref's place for reading, or for writing too when push
// is set. mountFrom lists repositories the write may mount blobs from.
func openEndpoint(ctx context.Context, ref Reference, o Options, push bool, mountFrom ...Reference) (endpoint, error) {
	switch ref.Transport {
	case TransportLayout, TransportStore:
		var l *Layout
		var err error
		if push {
			l, err = OpenLayout(ref.LayoutDir())
		} else {
			l, err = openExisting(ref.LayoutDir())
		}
		if err != nil {
			return nil, err
		}
		e := &layoutEndpoint{l: l, display: "oci:" + ref.Dir}
		if ref.Transport == TransportStore {
			e.prefix = ref.Name + ":"
			e.display = "store:" + ref.Name
		}
		return e, nil
	case TransportRemote:
		scope := transport.PullScope
		if push {
			scope = transport.PushScope
		}
		var extra []name.Repository
		for _, m := range mountFrom {
			if m.Transport != TransportRemote {
				continue
			}
			if r, err := name.NewRepository(m.Name, o.nameOptions()...); err == nil {
				extra = append(extra, r)
			}
		}
		c, err := newRepoClient(ctx, ref, scope, o, extra...)
		if err != nil {
			return nil, err
		}
		return &remoteEndpoint{c: c, o: o}, nil
	}
	return nil, fmt.Errorf("reference %s: unknown transport %q", ref, ref.Transport)
}

// ---- registries ----

type remoteEndpoint struct {
	c *repoClient
	o Options

	mu     sync.Mutex
	hasAPI *bool // referrers API detected (nil: not probed yet)
}

func (e *remoteEndpoint) String() string { return e.c.repo.Name() }

func (e *remoteEndpoint) resolve(ctx context.Context, tag, digest string) (v1.Descriptor, error) {
	ref := digest
	if ref == "" {
		ref = tag
	}
	if ref == "" {
		ref = "latest"
	}
	if digest != "" {
		d, ok, err := e.c.headManifest(ctx, digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if !ok {
			return v1.Descriptor{}, fmt.Errorf("%s@%s: %w", e, digest, ErrNotFound)
		}
		if d.Digest.String() != digest {
			return v1.Descriptor{}, &DigestError{What: "manifest", Source: e.c.url("manifests", digest), Expected: digest, Actual: d.Digest.String(), ExpectedSize: d.Size, ActualSize: d.Size}
		}
		return d, nil
	}
	// By tag: fetch the body so the digest is computed here, not trusted.
	d, _, err := e.c.getManifest(ctx, ref, nil)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return v1.Descriptor{}, fmt.Errorf("%s:%s: %w", e, ref, ErrNotFound)
		}
		return v1.Descriptor{}, err
	}
	return d, nil
}

func (e *remoteEndpoint) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	_, raw, err := e.c.getManifest(ctx, d.Digest.String(), &d)
	return raw, err
}

func (e *remoteEndpoint) blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	return e.c.getBlob(ctx, d)
}

func (e *remoteEndpoint) hasBlob(ctx context.Context, d v1.Descriptor) (bool, error) {
	return e.c.headBlob(ctx, d)
}

func (e *remoteEndpoint) putBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), mountFrom string) (bool, error) {
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

func (e *remoteEndpoint) putManifest(ctx context.Context, d v1.Descriptor, raw []byte) error {
	_, err := e.c.putManifest(ctx, d.Digest.String(), d, raw)
	return err
}

func (e *remoteEndpoint) tag(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error {
	if tag == "" {
		return nil
	}
	_, err := e.c.putManifest(ctx, tag, d, raw)
	return err
}

func (e *remoteEndpoint) tags(ctx context.Context) ([]string, error) { return e.c.tags(ctx) }

// ---- layouts and the store ----

type layoutEndpoint struct {
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

func (e *layoutEndpoint) String() string { return e.display }

func (e *layoutEndpoint) resolve(_ context.Context, tag, digest string) (v1.Descriptor, error) {
	ref := Reference{Transport: TransportLayout, Dir: e.l.dir, Tag: tag, Digest: digest}
	if e.prefix != "" {
		ref.Transport, ref.Name = TransportStore, strings.TrimSuffix(e.prefix, ":")
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
		d = manifestDescriptor(raw, d.MediaType)
	}
	return d, nil
}

func (e *layoutEndpoint) readBlob(h v1.Hash, size int64) ([]byte, error) {
	f, err := os.Open(e.l.blobPath(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: blob %s: %w", e, h, ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxManifestSize+1))
}

func (e *layoutEndpoint) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	raw, err := e.readBlob(d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxManifestSize {
		return nil, fmt.Errorf("manifest %s in %s is larger than %d bytes", d.Digest, e, maxManifestSize)
	}
	if err := checkDigest("manifest", e.l.blobPath(d.Digest), d, manifestDescriptor(raw, "")); err != nil {
		return nil, err
	}
	return raw, nil
}

func (e *layoutEndpoint) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(e.l.blobPath(d.Digest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: blob %s: %w", e, d.Digest, ErrNotFound)
		}
		return nil, err
	}
	return newVerifier(f, d, "blob", e.l.blobPath(d.Digest)), nil
}

// rawBlob opens a blob without hashing it, for a destination that checks
// what it receives (see rawBlobSource).
func (e *layoutEndpoint) rawBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(e.l.blobPath(d.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: blob %s: %w", e, d.Digest, ErrNotFound)
	}
	return f, err
}

func (e *layoutEndpoint) hasBlob(_ context.Context, d v1.Descriptor) (bool, error) {
	return e.l.HasBlob(d.Digest, d.Size), nil
}

func (e *layoutEndpoint) putBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), _ string) (bool, error) {
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

// rawBlobSource is a local source (a layout, the store, memory) that can
// stream a blob without hashing it. Copy uses it when the destination checks
// every blob it receives anyway: a registry verifies the digest of each
// upload, and a layout hashes what it writes unless the reader already did —
// so a local blob is hashed once, not twice.
type rawBlobSource interface {
	rawBlob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
}

// verifiedReader is a reader that checks the digest itself (see verifier),
// so the layout need not hash the bytes a second time.
type verifiedReader interface {
	io.Reader
	verifiedOK() bool
}

// writeback writes to f and starts the kernel's writeback every 8 MiB, so
// that the fsync before the rename finds little left to flush.
type writeback struct {
	f       *os.File
	off     int64
	flushed int64
}

func (w *writeback) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.off += int64(n)
	if w.off-w.flushed >= 8<<20 {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.off-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.off
	}
	return n, err
}

func selfVerifying(r io.Reader) bool {
	switch v := r.(type) {
	case *verifier:
		return true
	case readCloser:
		_, ok := v.Closer.(*verifier)
		return ok
	}
	return false
}

// writeVerified streams r, which checks d's digest and size itself, to the
// blob's temp file with large buffers, then fsync, rename, directory fsync.
func (e *layoutEndpoint) writeVerified(ctx context.Context, d v1.Descriptor, r io.ReadCloser) error {
	f, err := atomicfile.Create(e.l.blobPath(d.Digest))
	if err != nil {
		return fmt.Errorf("writing blob %s: %w", d.Digest, err)
	}
	defer f.Abort()
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(&writeback{f: f.File}, ctxReader{ctx, r}, buf)
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
	return f.Commit(0o644)
}

func (e *layoutEndpoint) putManifest(ctx context.Context, d v1.Descriptor, raw []byte) error {
	return e.l.writeBlob(ctx, d.Digest, int64(len(raw)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, nil)
}

func (e *layoutEndpoint) tag(_ context.Context, d v1.Descriptor, _ []byte, tag string) error {
	entry := v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: d.ArtifactType}
	refName := ""
	if tag != "" {
		refName = e.prefix + tag
		entry.Annotations = map[string]string{refNameAnnotation: refName}
	}
	return e.l.updateIndex(func(im *v1.IndexManifest) {
		keep := im.Manifests[:0]
		for _, m := range im.Manifests {
			n := m.Annotations[refNameAnnotation]
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

func (e *layoutEndpoint) tags(context.Context) ([]string, error) {
	im, err := e.l.ReadIndex()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range im.Manifests {
		n := m.Annotations[refNameAnnotation]
		if n == "" || !strings.HasPrefix(n, e.prefix) {
			continue
		}
		out = append(out, strings.TrimPrefix(n, e.prefix))
	}
	return out, nil
}

// ---- images held in memory (registry.Write) ----

// memEndpoint serves an image or index and its referrers from
// go-containerregistry values, streaming layers as they are stored
// (layer.Compressed), never recompressing.
type memEndpoint struct {
	root      v1.Descriptor
	manifests map[v1.Hash][]byte
	blobs     map[v1.Hash]func() (io.ReadCloser, error)
	subjects  map[v1.Hash][]v1.Descriptor // subject digest → referrers
}

func newMemEndpoint(root Artifact, referrers []Artifact) (*memEndpoint, error) {
	e := &memEndpoint{
		manifests: map[v1.Hash][]byte{},
		blobs:     map[v1.Hash]func() (io.ReadCloser, error){},
		subjects:  map[v1.Hash][]v1.Descriptor{},
	}
	d, err := e.add(root)
	if err != nil {
		return nil, err
	}
	e.root = d
	for _, r := range referrers {
		rd, err := e.add(r)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Subject     *v1.Descriptor    `json:"subject"`
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(e.manifests[rd.Digest], &probe); err != nil || probe.Subject == nil {
			return nil, fmt.Errorf("referrer %s has no subject", rd.Digest)
		}
		rd.Annotations = probe.Annotations
		e.subjects[probe.Subject.Digest] = append(e.subjects[probe.Subject.Digest], rd)
	}
	return e, nil
}

func (e *memEndpoint) add(a Artifact) (v1.Descriptor, error) {
	raw, err := a.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := a.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := manifestDescriptor(raw, mt)
	if _, ok := e.manifests[d.Digest]; ok {
		return d, nil
	}
	e.manifests[d.Digest] = raw
	switch v := a.(type) {
	case v1.ImageIndex:
		im, err := v.IndexManifest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, c := range im.Manifests {
			child, err := childOf(v, c)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading %s of index %s: %w", c.Digest, d.Digest, err)
			}
			if _, err := e.add(child); err != nil {
				return v1.Descriptor{}, err
			}
		}
	case v1.Image:
		m, err := v.Manifest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		cfg, err := v.RawConfigFile()
		if err != nil {
			return v1.Descriptor{}, err
		}
		e.blobs[m.Config.Digest] = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }
		for _, l := range m.Layers {
			layer, err := v.LayerByDigest(l.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading layer %s: %w", l.Digest, err)
			}
			e.blobs[l.Digest] = layer.Compressed
		}
	default:
		return v1.Descriptor{}, fmt.Errorf("unsupported artifact %T", a)
	}
	return d, nil
}

func (e *memEndpoint) String() string { return "memory" }

func (e *memEndpoint) resolve(_ context.Context, _, digest string) (v1.Descriptor, error) {
	if digest != "" && digest != e.root.Digest.String() {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", digest, ErrNotFound)
	}
	return e.root, nil
}

func (e *memEndpoint) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	raw, ok := e.manifests[d.Digest]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, ErrNotFound)
	}
	return raw, nil
}

func (e *memEndpoint) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	open, ok := e.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	return newVerifier(rc, d, "blob", "memory"), nil
}

func (e *memEndpoint) rawBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	open, ok := e.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
	}
	return open()
}

func (e *memEndpoint) referrers(_ context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	return filterArtifactType(e.subjects[subject.Digest], artifactType), nil
}

var errReadOnly = errors.New("read-only source")

func (e *memEndpoint) hasBlob(context.Context, v1.Descriptor) (bool, error) {
	return false, errReadOnly
}
func (e *memEndpoint) putBlob(context.Context, v1.Descriptor, func() (io.ReadCloser, error), string) (bool, error) {
	return false, errReadOnly
}
func (e *memEndpoint) putManifest(context.Context, v1.Descriptor, []byte) error { return errReadOnly }
func (e *memEndpoint) tag(context.Context, v1.Descriptor, []byte, string) error {
	return errReadOnly
}
func (e *memEndpoint) tags(context.Context) ([]string, error) { return nil, nil }
func (e *memEndpoint) addReferrers(context.Context, v1.Descriptor, []v1.Descriptor) error {
	return errReadOnly
}

func filterArtifactType(ds []v1.Descriptor, artifactType string) []v1.Descriptor {
	if artifactType == "" {
		return ds
	}
	var out []v1.Descriptor
	for _, d := range ds {
		if d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}

// parsedManifest is what the graph walk needs from any manifest.
type parsedManifest struct {
	MediaType    types.MediaType   `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Layers       []v1.Descriptor   `json:"layers"`
	Manifests    []v1.Descriptor   `json:"manifests"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func parseManifest(d v1.Descriptor, raw []byte) (*parsedManifest, error) {
	var m parsedManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.MediaType == "" {
		m.MediaType = d.MediaType
	}
	switch {
	case m.MediaType.IsIndex(), m.MediaType.IsImage():
	case m.MediaType == types.DockerManifestSchema1, m.MediaType == types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("manifest %s: Docker schema 1 is not supported", d.Digest)
	case m.Manifests != nil:
		m.MediaType = types.OCIImageIndex
	case m.Config != nil:
		m.MediaType = types.OCIManifestSchema1
	default:
		return nil, fmt.Errorf("manifest %s: unknown media type %q", d.Digest, m.MediaType)
	}
	return &m, nil
}

// referrerDescriptor is how d appears in a referrers list: artifact type
// (or the config media type) and the manifest's annotations.
func referrerDescriptor(d v1.Descriptor, m *parsedManifest) v1.Descriptor {
	out := v1.Descriptor{MediaType: m.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if out.ArtifactType == "" && m.Config != nil {
		out.ArtifactType = string(m.Config.MediaType)
	}
	return out
}

// reportSkip reports a blob that needed no transfer.
func reportSkip(p progress.Func, op string, d v1.Descriptor) {
	p.Report(progress.Event{Op: op, Name: d.Digest.String(), Done: d.Size, Total: d.Size, Finished: true, Skipped: true})
}
