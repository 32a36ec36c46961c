package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry/reference"
)

// Layout is an OCI image layout directory that prebake writes durably: blobs
// become visible under their digest only once they are complete and synced
// (flushed in the background while the operation runs, see Sync),
// index.json is replaced atomically and last, and its changes are
// serialised across processes with a lock file, so an interrupted write
// leaves the layout valid and without the partial image.
type Layout struct {
	dir     string
	mode    syncMode
	pending pendingBlobs
}

// Artifact is what a layout or registry holds at a manifest: a v1.Image or a
// v1.ImageIndex.
type Artifact interface {
	MediaType() (types.MediaType, error)
	RawManifest() ([]byte, error)
	Digest() (v1.Hash, error)
}

// AnnotationRefName names an image in a layout's index.json.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// OpenLayout opens the layout at dir, creating an empty one if dir does not
// hold one yet.
func OpenLayout(dir string) (*Layout, error) { return openLayout(dir, durable) }

func openLayout(dir string, mode syncMode) (*Layout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("creating layout %s: %w", dir, err)
	}
	l := &Layout{dir: dir, mode: mode}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); errors.Is(err, fs.ErrNotExist) {
		if err := l.writeFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		empty := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
		if err := l.writeIndexJSON(&empty); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Dir is the layout's directory.
func (l *Layout) Dir() string { return l.dir }

// PutOptions tune Layout.Put.
type PutOptions struct {
	// Jobs is how many blobs are written at once; 0 means 4.
	Jobs int
	// Progress receives "write" events per blob; nil is silent.
	Progress progress.Func
}

// Put writes root (an image or index) with all its blobs, and the referrers
// (SBOMs, signatures) with theirs, then points refName at root in index.json
// in one atomic step. An empty refName adds root untagged. The blobs are
// durable before index.json changes (see Sync); a failure leaves none of
// them behind.
func (l *Layout) Put(ctx context.Context, refName string, root Artifact, referrers []Artifact, o PutOptions) (_ v1.Descriptor, err error) {
	mem, err := newMemory(root, referrers, false)
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	defer func() {
		if err != nil {
			g.Wait()
			l.Discard()
		}
	}()
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	g.SetLimit(jobs)
	for _, h := range mem.blobOrder {
		b := mem.blobs[h]
		p := o.Progress
		if b.config {
			p = nil
		}
		g.Go(func() error { return l.writeBlob(gctx, h, b.size, b.open, p) })
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	// Manifests last, children before parents, so every manifest on disk is complete.
	for _, h := range mem.manifestOrder {
		raw := mem.manifests[h]
		if err := l.writeBlob(ctx, h, int64(len(raw)), func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(raw)), nil
		}, nil); err != nil {
			return v1.Descriptor{}, err
		}
	}
	rootDesc, err := DescriptorOf(root)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var refDescs []v1.Descriptor
	for _, r := range referrers {
		d, err := DescriptorOf(r)
		if err != nil {
			return v1.Descriptor{}, err
		}
		refDescs = append(refDescs, d)
	}
	err = l.updateIndex(func(im *v1.IndexManifest) {
		keep := im.Manifests[:0]
		for _, d := range im.Manifests {
			if refName != "" && d.Annotations[AnnotationRefName] == refName {
				continue
			}
			keep = append(keep, d)
		}
		im.Manifests = keep
		tagged := rootDesc
		if refName != "" {
			tagged.Annotations = map[string]string{AnnotationRefName: refName}
		}
		im.Manifests = append(im.Manifests, tagged)
		for _, d := range refDescs {
			if !hasUntagged(im.Manifests, d.Digest) {
				im.Manifests = append(im.Manifests, d)
			}
		}
	})
	return rootDesc, err
}

func hasUntagged(ds []v1.Descriptor, h v1.Hash) bool {
	for _, d := range ds {
		if d.Digest == h && d.Annotations[AnnotationRefName] == "" {
			return true
		}
	}
	return false
}

func DescriptorOf(a Artifact) (v1.Descriptor, error) {
	raw, err := a.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := a.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := a.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}
	var probe struct {
		ArtifactType string `json:"artifactType"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.ArtifactType != "" {
		d.ArtifactType = probe.ArtifactType
	}
	return d, nil
}

// HasBlob reports whether the layout holds blob h with the given size
// (counting blobs this operation wrote and has not synced yet).
func (l *Layout) HasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Stat(l.path(h))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

func (l *Layout) blobPath(h v1.Hash) string {
	return filepath.Join(l.dir, "blobs", h.Algorithm, h.Hex)
}

// writeBlob streams open() into a pending temp file of blob h (see Sync),
// verifying digest and size; an existing blob of the right size is kept. A
// source that is a file (a build's layer cache) is linked, not copied.
func (l *Layout) writeBlob(ctx context.Context, h v1.Hash, size int64, open func() (io.ReadCloser, error), p progress.Func) error {
	if l.HasBlob(h, size) {
		p.Report(progress.Event{Op: "write", Name: h.String(), Done: size, Total: size, Finished: true, Skipped: true})
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", h, err)
	}
	defer rc.Close()
	if f, ok := rc.(*os.File); ok {
		err := l.linkBlob(h, size, f)
		var de *DigestError
		if errors.As(err, &de) {
			return de
		}
		if err == nil {
			p.Report(progress.Event{Op: "write", Name: h.String(), Done: size, Total: size, Finished: true})
			return nil
		}
		// Another device, or a file system without links: copy.
	}
	var n int64
	err = l.writeTemp(h, func(w io.Writer) error {
		hasher := sha256.New()
		var err error
		n, err = io.Copy(io.MultiWriter(w, hasher), ctxReader{ctx, p.Reader(rc, "write", h.String(), size)})
		if err != nil {
			return fmt.Errorf("writing blob %s: %w", h, err)
		}
		if got := hex.EncodeToString(hasher.Sum(nil)); got != h.Hex || (size >= 0 && n != size) {
			return &DigestError{What: "blob", Expected: h.String(), Actual: "sha256:" + got, ExpectedSize: size, ActualSize: n}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.Report(progress.Event{Op: "write", Name: h.String(), Done: n, Total: size, Finished: true})
	return nil
}

// writeTemp writes blob h to its pending temp file (see Layout.Sync)
// through write, which also judges what it wrote: when write fails the
// file is removed, else it gets its mode and becomes pending.
func (l *Layout) writeTemp(h v1.Hash, write func(w io.Writer) error) error {
	f, err := l.createTemp(h)
	if err != nil {
		return err
	}
	wb := &writeback{f: f}
	err = write(wb)
	if werr := wb.wait(); err == nil && werr != nil {
		err = fmt.Errorf("syncing blob %s: %w", h, werr)
	}
	if err == nil {
		if err = f.Chmod(0o644); err != nil {
			err = fmt.Errorf("writing blob %s: %w", h, err)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	l.addPending(h, f)
	return nil
}

// ReadIndex returns the layout's index.json.
func (l *Layout) ReadIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", l.dir, err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(l.dir, "index.json"), err)
	}
	return &im, nil
}

// updateIndex applies fn to index.json under an exclusive lock shared with
// other prebake processes, and replaces the file atomically.
func (l *Layout) updateIndex(fn func(*v1.IndexManifest)) error {
	if err := l.Sync(); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(l.dir, ".prebake.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	im, err := l.ReadIndex()
	if err != nil {
		return err
	}
	fn(im)
	return l.writeIndexJSON(im)
}

// Untag removes refName from index.json (the blobs stay until gc).
func (l *Layout) Untag(refName string) error {
	return l.updateIndex(func(im *v1.IndexManifest) {
		keep := im.Manifests[:0]
		for _, d := range im.Manifests {
			if d.Annotations[AnnotationRefName] != refName {
				keep = append(keep, d)
			}
		}
		im.Manifests = keep
	})
}

func (l *Layout) writeIndexJSON(im *v1.IndexManifest) error {
	if im.Manifests == nil {
		im.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return l.writeFile(filepath.Join(l.dir, "index.json"), append(b, '\n'))
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ContextReader is r failing with ctx's error once ctx is done.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// ChildOf opens the manifest d of index idx as an image or a nested index.
func ChildOf(idx v1.ImageIndex, d v1.Descriptor) (Artifact, error) {
	if d.MediaType.IsIndex() {
		return idx.ImageIndex(d.Digest)
	}
	return idx.Image(d.Digest)
}

// OpenExisting opens the layout at dir for reading; ErrNotFound when dir
// holds none.
func OpenExisting(dir string) (*Layout, error) {
	if _, err := os.Stat(dir + "/index.json"); err != nil {
		return nil, fmt.Errorf("opening layout %s: %w", dir, ErrNotFound)
	}
	return &Layout{dir: dir}, nil
}

// Resolve finds the descriptor ref names in the layout: by digest (top-level
// entry or any blob present), by ref name, or the only image when neither is
// given.
func (l *Layout) Resolve(ref reference.Reference) (v1.Descriptor, error) {
	im, err := l.ReadIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if ref.Digest != "" {
		h, err := v1.NewHash(ref.Digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, d := range im.Manifests {
			if d.Digest == h {
				d.Annotations = nil
				return d, nil
			}
		}
		// A nested manifest (a platform image of an index).
		b, err := os.ReadFile(l.path(h))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		if err := json.Unmarshal(b, &probe); err != nil || probe.MediaType == "" {
			return v1.Descriptor{}, fmt.Errorf("%s: blob is not a manifest", ref)
		}
		return v1.Descriptor{MediaType: probe.MediaType, Digest: h, Size: int64(len(b))}, nil
	}
	want := ref.RefName()
	var only []v1.Descriptor
	for _, d := range im.Manifests {
		n := d.Annotations[AnnotationRefName]
		if want != "" && n == want {
			return d, nil
		}
		if n != "" {
			only = append(only, d)
		}
	}
	if want == "" && len(only) == 1 {
		return only[0], nil
	}
	if want == "" {
		return v1.Descriptor{}, fmt.Errorf("%s holds %d tagged images: name one with :TAG or @DIGEST", l.dir, len(only))
	}
	return v1.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
}

// Merge moves stage's blobs into dst (renames, then a directory fsync) and
// then merges stage's index.json entries into dst's in one atomic write.
func (dst *Layout) Merge(stage *Layout) error {
	src := filepath.Join(stage.dir, "blobs", "sha256")
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	to := filepath.Join(dst.dir, "blobs", "sha256")
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(to, e.Name())); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(to); err != nil {
		return err
	}
	im, err := stage.ReadIndex()
	if err != nil {
		return err
	}
	return dst.updateIndex(func(cur *v1.IndexManifest) {
		for _, d := range im.Manifests {
			n := d.Annotations[AnnotationRefName]
			keep := cur.Manifests[:0]
			dup := false
			for _, c := range cur.Manifests {
				cn := c.Annotations[AnnotationRefName]
				if n != "" && cn == n {
					continue
				}
				if n == "" && cn == "" && c.Digest == d.Digest {
					dup = true
				}
				keep = append(keep, c)
			}
			cur.Manifests = keep
			if !dup {
				cur.Manifests = append(cur.Manifests, d)
			}
		}
	})
}
