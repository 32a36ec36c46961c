package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/prebake/prebake/registry/reference"
)

// cachedLayer is a layer kept in a file, as the builder's layer cache keeps
// them: Compressed opens the file.
type cachedLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func (l *cachedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *cachedLayer) DiffID() (v1.Hash, error)            { return l.digest, nil }
func (l *cachedLayer) Size() (int64, error)                { return l.size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("compressed only")
}

func cacheFile(t *testing.T, dir string, content []byte) *cachedLayer {
	t.Helper()
	sum := sha256.Sum256(content)
	p := filepath.Join(dir, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return &cachedLayer{path: p, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, size: int64(len(content))}
}

// reflinks reports whether dir's file system clones files (then a layer is
// reflinked, a new inode sharing the blocks, rather than hard-linked).
func reflinks(t *testing.T, dir string) bool {
	a, err := os.CreateTemp(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.WriteString("x")
	b, err := os.CreateTemp(dir, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}

// A layer from the build's cache is written into the layout once: linked
// (or reflinked), not copied, and still checked against its digest.
func TestPutLinksCachedLayers(t *testing.T) {
	top := t.TempDir()
	cache := filepath.Join(top, "cache")
	os.Mkdir(cache, 0o755)
	l1 := cacheFile(t, cache, []byte("layer one"))
	img, err := mutate.AppendLayers(empty.Image, l1)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := OpenLayout(filepath.Join(top, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lay.Put(t.Context(), "v1", img, nil, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	src, _ := os.Stat(l1.path)
	dst, err := os.Stat(lay.blobPath(l1.digest))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(src, dst) && !reflinks(t, top) {
		t.Errorf("the cached layer was copied into the layout, not linked")
	}
	// Nothing pending or temporary is left.
	ents, _ := os.ReadDir(filepath.Join(top, "oci", "blobs", "sha256"))
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Errorf("left %s", e.Name())
		}
	}

	// A cache file whose content no longer matches its digest fails the
	// write, and the layout keeps nothing of it.
	l2 := cacheFile(t, cache, []byte("layer two"))
	if err := os.WriteFile(l2.path, []byte("layer 2!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	img2, err := mutate.AppendLayers(empty.Image, l2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lay.Put(t.Context(), "v2", img2, nil, PutOptions{})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("corrupt cache file: err = %v, want ErrDigestMismatch", err)
	}
	if lay.HasBlob(l2.digest, -1) {
		t.Error("the corrupt layer is in the layout")
	}
	ents, _ = os.ReadDir(filepath.Join(top, "oci", "blobs", "sha256"))
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Errorf("a failed write left %s", e.Name())
		}
	}
	if _, err := lay.Resolve(mustParse(t, fmt.Sprintf("oci:%s:v2", lay.Dir()))); !errors.Is(err, ErrNotFound) {
		t.Errorf("v2 after a failed write: %v", err)
	}
}

func mustParse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A blob is renamed to its digest only after its data was flushed, and a
// flush that fails fails the write: no blob under its digest, no tag, no
// temp file left.
func TestBlobsRenamedOnlyAfterTheirFlush(t *testing.T) {
	top := t.TempDir()
	big := make([]byte, 5<<20) // incompressible: flushed in the background while written
	rand.NewChaCha8([32]byte{1}).Read(big)
	layer := static(big)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := OpenLayout(filepath.Join(top, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	orig := fdatasync
	t.Cleanup(func() { fdatasync = orig })
	var mu sync.Mutex
	flushes := 0
	fdatasync = func(f *os.File) error {
		mu.Lock()
		flushes++
		mu.Unlock()
		// The file being flushed is still a temp file: nothing in
		// blobs/sha256 is named by a digest that is not durable.
		if !strings.HasPrefix(filepath.Base(f.Name()), ".") {
			t.Errorf("flushing %s, which is already under its digest", f.Name())
		}
		return orig(f)
	}
	if _, err := lay.Put(t.Context(), "v1", img, nil, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// 5 MiB: at least two flushes while written, one at the end; plus
	// config and manifest.
	if flushes < 4 {
		t.Errorf("%d flushes for a 5 MiB layer, its config and manifest; want >= 4", flushes)
	}

	// A failing flush fails the Put and leaves nothing of it.
	fdatasync = func(*os.File) error { return unix.EIO }
	img2, err := mutate.AppendLayers(empty.Image, static([]byte("another layer")))
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := img2.Digest()
	_, err = lay.Put(t.Context(), "v2", img2, nil, PutOptions{})
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("Put with a failing flush: err = %v, want EIO", err)
	}
	if lay.HasBlob(d2, -1) {
		t.Error("the manifest whose flush failed is in the layout")
	}
	ents, _ := os.ReadDir(filepath.Join(top, "oci", "blobs", "sha256"))
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Errorf("a failed write left %s", e.Name())
		}
	}
	if _, err := lay.Resolve(mustParse(t, fmt.Sprintf("oci:%s:v2", lay.Dir()))); !errors.Is(err, ErrNotFound) {
		t.Errorf("v2 after a failed flush: %v", err)
	}
}

// static is an uncompressed layer of fixed bytes.
func static(b []byte) v1.Layer {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		panic(err)
	}
	return l
}

// A stage renames its blobs before their flushes end (it is invisible
// until renamed into place), so SyncStage is where a failed flush shows.
func TestSyncStageWaitsForFlushes(t *testing.T) {
	orig := fdatasync
	t.Cleanup(func() { fdatasync = orig })
	img, err := mutate.AppendLayers(empty.Image, static([]byte("staged layer")))
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []bool{false, true} {
		st, err := OpenStage(filepath.Join(t.TempDir(), "stage"))
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var running sync.WaitGroup
		fdatasync = func(f *os.File) error {
			running.Add(1)
			defer running.Done()
			<-release // every flush still running when Put returns
			if fail {
				return unix.EIO
			}
			return nil
		}
		if _, err := st.Put(t.Context(), "v1", img, nil, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- st.SyncStage() }()
		select {
		case err := <-done:
			t.Fatalf("SyncStage returned (%v) while flushes were running", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		err = <-done
		if fail && !errors.Is(err, unix.EIO) {
			t.Errorf("SyncStage with failed flushes: %v, want EIO", err)
		}
		if !fail && err != nil {
			t.Errorf("SyncStage: %v", err)
		}
		running.Wait()
	}
}
