package builder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
)

// Where a layer of a build came from (LayerResult.From).
const (
	FromBuild    = "build"    // built here, now
	FromCache    = "cache"    // the local layer cache
	FromRegistry = "registry" // Options.LayerCache, a shared cache
)

// A LayerCache shares built layers between machines: before building a layer
// the builder asks it for the layer's input key, after building it offers the
// layer. pipeline.RegistryCache keeps them in an OCI registry.
type LayerCache interface {
	// Get returns the entry stored under key and its compressed bytes, or
	// ok false when the cache has none.
	Get(ctx context.Context, key string) (e CacheEntry, blob io.ReadCloser, ok bool, err error)
	// Put stores the layer whose compressed bytes are in the file blob.
	Put(ctx context.Context, key string, e CacheEntry, blob string) error
}

// CacheEntry describes one cached layer.
type CacheEntry struct {
	Digest    string          `json:"digest"`
	DiffID    string          `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
	// Files are the non-directory paths the layer installs.
	Files []string `json:"files"`
}

// keyLocks serialises the work on one layer key within the process, so that
// concurrent builds (a matrix) build a layer they share once: the first
// builds it, the others then find it in the cache.
var keyLocks sync.Map // key -> *sync.Mutex

func lockKey(key string) func() {
	m, _ := keyLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// fromLayerCache copies the layer stored under key in b.o.LayerCache into the
// local layer cache, verifying its digest and size.
func (b *build) fromLayerCache(ctx context.Context, key, index, name string) (cachedLayer, bool, error) {
	e, rc, ok, err := b.o.LayerCache.Get(ctx, key)
	if err != nil || !ok {
		return cachedLayer{}, false, err
	}
	defer rc.Close()
	blobs := filepath.Join(b.cacheDir, "layers", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return cachedLayer{}, false, err
	}
	f, err := os.CreateTemp(blobs, ".tmp-*")
	if err != nil {
		return cachedLayer{}, false, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), b.o.Progress.Reader(rc, "cache", name, e.Size))
	if err != nil {
		return cachedLayer{}, false, fmt.Errorf("layer cache %s: %w", key, err)
	}
	if got := "sha256:" + hexSum(h); got != e.Digest || n != e.Size {
		return cachedLayer{}, false, fmt.Errorf("layer cache %s: %w: want %s (%d bytes), got %s (%d bytes)", key, ErrCacheDigest, e.Digest, e.Size, got, n)
	}
	if err := f.Sync(); err != nil {
		return cachedLayer{}, false, err
	}
	if err := f.Close(); err != nil {
		return cachedLayer{}, false, err
	}
	cl := cachedLayer(e)
	if err := os.Rename(f.Name(), b.layerPath(cl.Digest)); err != nil {
		return cachedLayer{}, false, err
	}
	if err := b.writeIndex(index, cl); err != nil {
		return cachedLayer{}, false, err
	}
	b.o.Progress.Report(progress.Event{Op: "cache", Name: name, Done: n, Total: n, Finished: true})
	return cl, true, nil
}

func (b *build) writeIndex(index string, cl cachedLayer) error {
	raw, err := json.Marshal(cl)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(index), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(index, raw, 0o644)
}

func (cl cachedLayer) entry() CacheEntry {
	return CacheEntry(cl)
}
