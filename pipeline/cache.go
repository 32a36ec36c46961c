package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry"
)

// Layer cache artifacts: one per layer input key, tagged with the key, whose
// one blob is the compressed layer and whose annotation is the builder's
// cache entry (digest, diffID, size, media type, files).
const (
	CacheArtifactType   = "application/vnd.prebake.layer-cache.v1+json"
	cacheAnnotation     = "dev.prebake.layer-cache.entry"
	cacheKeyAnnotation  = "dev.prebake.layer-cache.key"
	cacheFormatRevision = "1"
)

// RegistryCacheOptions configure a RegistryCache.
type RegistryCacheOptions struct {
	Insecure bool
	// Progress receives the cache's uploads.
	Progress progress.Func
}

// RegistryCache is a builder.LayerCache in a repository of any OCI registry
// (or a layout): the layer built from inputs KEY is the artifact tagged KEY,
// so runners that share nothing but the registry build each layer once.
type RegistryCache struct {
	repo registry.Reference
	o    registry.Options
}

// NewRegistryCache opens the cache at repo (REGISTRY/REPO, or oci:DIR).
func NewRegistryCache(repo string, o RegistryCacheOptions) (*RegistryCache, error) {
	ref, err := registry.ParseReference(repo)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" || ref.TagGiven {
		return nil, fmt.Errorf("%q: %w", repo, ErrCacheRef)
	}
	return &RegistryCache{repo: ref, o: registry.Options{Insecure: o.Insecure, Progress: o.Progress}}, nil
}

func (c *RegistryCache) ref(key string) registry.Reference {
	return c.repo.WithTag("l" + cacheFormatRevision + "-" + key)
}

// Get implements builder.LayerCache.
func (c *RegistryCache) Get(ctx context.Context, key string) (builder.CacheEntry, io.ReadCloser, bool, error) {
	var e builder.CacheEntry
	a, _, err := registry.Get(ctx, c.ref(key), c.o)
	if registry.IsNotFound(err) {
		return e, nil, false, nil
	}
	if err != nil {
		return e, nil, false, err
	}
	img, ok := a.(v1.Image)
	if !ok {
		return e, nil, false, fmt.Errorf("%s: not a layer cache artifact", c.ref(key))
	}
	raw, err := img.RawManifest()
	if err != nil {
		return e, nil, false, err
	}
	var m struct {
		v1.Manifest
		ArtifactType string `json:"artifactType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return e, nil, false, err
	}
	if err := json.Unmarshal([]byte(m.Annotations[cacheAnnotation]), &e); err != nil || m.ArtifactType != CacheArtifactType || len(m.Layers) != 1 {
		return e, nil, false, fmt.Errorf("%s: not a layer cache artifact", c.ref(key))
	}
	if m.Layers[0].Digest.String() != e.Digest || m.Layers[0].Size != e.Size {
		return e, nil, false, fmt.Errorf("%s: %w: entry names %s, the artifact holds %s", c.ref(key), builder.ErrCacheDigest, e.Digest, m.Layers[0].Digest)
	}
	l, err := img.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		return e, nil, false, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return e, nil, false, err
	}
	return e, rc, true, nil
}

// Put implements builder.LayerCache.
func (c *RegistryCache) Put(ctx context.Context, key string, e builder.CacheEntry, blob string) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	art, err := registry.FileArtifact(CacheArtifactType, []registry.File{{Path: blob, MediaType: e.MediaType}},
		map[string]string{cacheAnnotation: string(raw), cacheKeyAnnotation: key})
	if err != nil {
		return err
	}
	if _, err := registry.Write(ctx, c.ref(key), art, nil, c.o); err != nil {
		return fmt.Errorf("pushing layer %s to the cache: %w", e.Digest, err)
	}
	return nil
}
