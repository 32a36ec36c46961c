package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/builder/archive"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
)

// Options configure Build. The zero value builds gzip layers with a default
// fetcher and cache.
type Options struct {
	// Fetcher downloads sources; nil means fetch.New() (the default cache,
	// online, no mirrors).
	Fetcher *fetch.Fetcher
	// CacheDir holds compressed layers keyed by their inputs; empty means the
	// fetcher's cache directory.
	CacheDir string
	// Compression of layers; empty means Gzip.
	Compression Compression
	// GzipLevel for gzip layers; 0 means gzip.DefaultCompression (6).
	GzipLevel int
	// Jobs bounds parallel downloads and layer builds; 0 means the number of CPUs.
	Jobs int
	// Limits for archive extraction; zero values are archive's defaults.
	Limits archive.Limits
	// Revision is the source revision recorded in org.opencontainers.image.revision;
	// empty leaves it out.
	Revision string
	// Progress receives download and compression events; nil is silent.
	Progress progress.Func
	// RegistryMirrors pull pre-pulled images from another registry: a key is
	// the registry an image reference names (registry.k8s.io), its value the
	// registry (and optional repository prefix) to pull from instead
	// (127.0.0.1:5000 or mirror.example.com/k8s). Digests are unchanged, so
	// a mirror cannot substitute content. Nil pulls from the named registry.
	RegistryMirrors map[string]string
	// LayerCache, when set, is asked for every layer the local cache lacks
	// before it is built, and given every layer built (cache.go).
	LayerCache LayerCache
	// Offline (prebake build --offline) pulls pre-pulled images only from
	// RegistryMirrors (a local mirror): an image whose registry has no
	// mirror fails, naming it, instead of reaching the registry it names.
	// Images already in a cached layer need no pull at all.
	Offline bool
}

// Result is a built image: the index over the platform images, and the SBOM
// artifact whose subject is the index.
type Result struct {
	Index v1.ImageIndex
	SBOM  v1.Image
	// CycloneDX is the same SBOM as CycloneDX 1.5, also a referrer of Index.
	CycloneDX v1.Image
	Resolved  *recipes.Resolved
	Platforms []PlatformResult
}

// PlatformResult describes one platform's image.
type PlatformResult struct {
	Platform string        `json:"platform"`
	Digest   string        `json:"digest"`
	Layers   []LayerResult `json:"layers"`
	Image    v1.Image      `json:"-"`
	Desc     v1.Descriptor `json:"-"`
}

// LayerResult describes one component's layer.
type LayerResult struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	Size      int64  `json:"size"`
	Cached    bool   `json:"cached"`
	// From is where the layer came from: FromBuild, FromCache or
	// FromRegistry (cache.go).
	From string `json:"from"`
}

type build struct {
	o        Options
	res      *recipes.Resolved
	cacheDir string
	fetcher  *fetch.Fetcher
	sources  map[string]string // sha256 -> cached file
}

// Build builds res. The same resolved recipe (same variables, lock and
// epoch) gives the same index digest on any machine.
func Build(ctx context.Context, res *recipes.Resolved, o Options) (*Result, error) {
	if o.Compression == "" {
		o.Compression = Gzip
	}
	if _, err := o.Compression.mediaType(); err != nil {
		return nil, err
	}
	if o.GzipLevel == 0 {
		o.GzipLevel = gzip.DefaultCompression
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	b := &build{o: o, res: res, fetcher: o.Fetcher}
	if b.fetcher == nil {
		f, err := fetch.New(fetch.WithProgress(o.Progress))
		if err != nil {
			return nil, err
		}
		b.fetcher = f
	}
	b.cacheDir = o.CacheDir
	if b.cacheDir == "" {
		b.cacheDir = b.fetcher.CacheDir()
	}
	// Layers: every (platform, component) in parallel, each cached by its
	// inputs. First the caches (local, then o.LayerCache); then the sources
	// of the layers no cache has are downloaded, and those layers built.
	type slot struct {
		layer cachedLayer
		from  string
		ok    bool
	}
	slots := make([][]slot, len(res.Builds))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for pi, pb := range res.Builds {
		slots[pi] = make([]slot, len(pb.Components))
		for ci, c := range pb.Components {
			g.Go(func() error {
				l, from, ok, err := b.lookup(gctx, c, pb.Platform())
				if err != nil {
					return fmt.Errorf("component %s (%s): %w", c.Name, pb.Platform(), err)
				}
				slots[pi][ci] = slot{l, from, ok}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := b.fetchAll(ctx, func(pi, ci int) bool { return !slots[pi][ci].ok }); err != nil {
		return nil, err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for pi, pb := range res.Builds {
		for ci, c := range pb.Components {
			if slots[pi][ci].ok {
				continue
			}
			g.Go(func() error {
				l, from, err := b.layer(gctx, c, pb.Platform())
				if err != nil {
					return fmt.Errorf("component %s (%s): %w", c.Name, pb.Platform(), err)
				}
				slots[pi][ci] = slot{l, from, true}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	result := &Result{Resolved: res}
	images := map[v1.Hash]v1.Image{}
	var descs []v1.Descriptor
	for pi, pb := range res.Builds {
		owner := map[string]string{}
		var layers []cachedLayer
		pr := PlatformResult{Platform: pb.Platform()}
		for ci, c := range pb.Components {
			l := slots[pi][ci].layer
			for _, f := range l.Files {
				if prev, ok := owner[f]; ok {
					return nil, fmt.Errorf("%s: %s is installed by both component %s and component %s", pb.Platform(), f, prev, c.Name)
				}
				owner[f] = c.Name
			}
			layers = append(layers, l)
			pr.Layers = append(pr.Layers, LayerResult{Component: c.Name, Version: c.Version, Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, Cached: slots[pi][ci].from != FromBuild, From: slots[pi][ci].from})
		}
		img, desc, err := b.image(pb, layers)
		if err != nil {
			return nil, err
		}
		pr.Image, pr.Desc, pr.Digest = img, desc, desc.Digest.String()
		images[desc.Digest] = img
		descs = append(descs, desc)
		result.Platforms = append(result.Platforms, pr)
	}
	idxManifest, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     descs,
		Annotations:   b.annotations(),
	})
	if err != nil {
		return nil, err
	}
	idx := &rawIndex{manifest: idxManifest, images: images}
	result.Index = idx
	sbom, err := b.sbom(idx)
	if err != nil {
		return nil, err
	}
	result.SBOM = sbom
	if result.CycloneDX, err = b.cyclonedx(idx); err != nil {
		return nil, err
	}
	return result, nil
}

// fetchAll downloads the sources of the components need says need them.
func (b *build) fetchAll(ctx context.Context, need func(pi, ci int) bool) error {
	var reqs []fetch.Request
	seen := map[string]bool{}
	for pi, pb := range b.res.Builds {
		for ci, c := range pb.Components {
			if !need(pi, ci) {
				continue
			}
			for _, s := range c.Sources {
				if !seen[s.SHA256] {
					seen[s.SHA256] = true
					reqs = append(reqs, fetch.Request{URL: s.URL, SHA256: s.SHA256, Size: s.Size})
				}
			}
		}
	}
	paths, err := b.fetcher.FetchAll(ctx, reqs, b.o.Jobs)
	if err != nil {
		return err
	}
	b.sources = map[string]string{}
	for i, r := range reqs {
		b.sources[r.SHA256] = paths[i]
	}
	return nil
}

var stageMu sync.Mutex // serialises creating the staging parent

// layer returns the component's layer from the local cache, else from
// o.LayerCache, else builds it (and offers it to o.LayerCache); it also says
// which (FromCache, FromRegistry, FromBuild).
func (b *build) layer(ctx context.Context, c recipes.ResolvedComponent, platform string) (cachedLayer, string, error) {
	key := layerKey(c, b.res.Epoch, b.o.Compression)
	defer lockKey(key)()
	name := c.Name + " " + platform
	index := filepath.Join(b.cacheDir, "layers", "keys", key+".json")
	if cl, from, ok, err := b.lookupLocked(ctx, key, index, name); err != nil || ok {
		return cl, from, err
	}
	stageMu.Lock()
	err := os.MkdirAll(filepath.Join(b.cacheDir, "tmp"), 0o755)
	stageMu.Unlock()
	if err != nil {
		return cachedLayer{}, "", err
	}
	root, err := os.MkdirTemp(filepath.Join(b.cacheDir, "tmp"), "stage-")
	if err != nil {
		return cachedLayer{}, "", err
	}
	defer os.RemoveAll(root)
	if err := os.Chmod(root, 0o755); err != nil {
		return cachedLayer{}, "", err
	}
	modes, err := b.stageComponent(ctx, c, root)
	if err != nil {
		return cachedLayer{}, "", err
	}
	if err := normaliseDirs(root); err != nil {
		return cachedLayer{}, "", err
	}
	cl, files, err := b.compressLayer(ctx, name, root, modes)
	if err != nil {
		return cachedLayer{}, "", err
	}
	cl.Files = files
	if err := b.writeIndex(index, cl); err != nil {
		return cachedLayer{}, "", err
	}
	if b.o.LayerCache != nil {
		if err := b.o.LayerCache.Put(ctx, key, cl.entry(), b.layerPath(cl.Digest)); err != nil {
			return cachedLayer{}, "", fmt.Errorf("layer cache: %w", err)
		}
	}
	return cl, FromBuild, nil
}

// lookup returns the component's layer from the local cache or
// o.LayerCache, ok false when neither has it.
func (b *build) lookup(ctx context.Context, c recipes.ResolvedComponent, platform string) (cachedLayer, string, bool, error) {
	key := layerKey(c, b.res.Epoch, b.o.Compression)
	defer lockKey(key)()
	index := filepath.Join(b.cacheDir, "layers", "keys", key+".json")
	return b.lookupLocked(ctx, key, index, c.Name+" "+platform)
}

// lookupLocked is lookup with the key's lock held.
func (b *build) lookupLocked(ctx context.Context, key, index, name string) (cachedLayer, string, bool, error) {
	if raw, err := os.ReadFile(index); err == nil {
		var cl cachedLayer
		if json.Unmarshal(raw, &cl) == nil && strings.HasPrefix(cl.Digest, "sha256:") {
			if fi, err := os.Stat(b.layerPath(cl.Digest)); err == nil && fi.Size() == cl.Size {
				b.o.Progress.Report(progress.Event{Op: "compress", Name: name, Done: cl.Size, Total: cl.Size, Finished: true, Skipped: true})
				return cl, FromCache, true, nil
			}
		}
	}
	if b.o.LayerCache != nil {
		cl, ok, err := b.fromLayerCache(ctx, key, index, name)
		return cl, FromRegistry, ok, err
	}
	return cachedLayer{}, "", false, nil
}

// normaliseDirs gives every directory mode 0755 unless an archive set it, so
// the umask never shows in a layer.
func normaliseDirs(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o700 != 0o700 || fi.Mode().Perm() == 0o700 {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
}

func (b *build) layerPath(digest string) string {
	return filepath.Join(b.cacheDir, "layers", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func (b *build) annotations() map[string]string {
	a := map[string]string{}
	for k, v := range b.res.Annotations {
		a[k] = v
	}
	a["org.opencontainers.image.title"] = b.res.Name
	a["org.opencontainers.image.version"] = b.res.Version
	a["org.opencontainers.image.created"] = time.Unix(b.res.Epoch, 0).UTC().Format(time.RFC3339)
	if b.res.Source != "" {
		a["org.opencontainers.image.source"] = b.res.Source
	}
	if b.res.Description != "" {
		a["org.opencontainers.image.description"] = b.res.Description
	}
	if b.o.Revision != "" {
		a["org.opencontainers.image.revision"] = b.o.Revision
	}
	if k, ok := b.res.Variables["kubernetes"]; ok {
		a[recipes.AnnotationKubernetesVersion] = k
	}
	if len(b.res.OSPackages) > 0 {
		a[recipes.AnnotationOSPackages] = strings.Join(b.res.OSPackages, ",")
	}
	a[recipes.AnnotationRecipe] = b.res.Name
	a[recipes.AnnotationRecipeDigest] = b.res.Digest
	return a
}

// image assembles one platform's config and manifest.
func (b *build) image(pb recipes.PlatformBuild, layers []cachedLayer) (v1.Image, v1.Descriptor, error) {
	created := v1.Time{Time: time.Unix(b.res.Epoch, 0).UTC()}
	cfg := v1.ConfigFile{
		Architecture: pb.Arch,
		OS:           pb.OS,
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Labels: map[string]string{"org.opencontainers.image.title": b.res.Name, "org.opencontainers.image.version": b.res.Version}},
	}
	if rc := b.res.Config; rc != nil {
		cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.Env = rc.Entrypoint, rc.Cmd, rc.Env
		cfg.Config.WorkingDir, cfg.Config.User = rc.WorkingDir, rc.User
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Annotations: b.annotations()}
	ls := map[v1.Hash]partial.CompressedLayer{}
	for i, l := range layers {
		c := pb.Components[i]
		diffID, err := v1.NewHash(l.DiffID)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		digest, err := v1.NewHash(l.Digest)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, v1.History{
			Created:   created,
			CreatedBy: fmt.Sprintf("prebake: component %s %s", c.Name, c.Version),
			Comment:   componentComment(c),
		})
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: l.MediaType, Size: l.Size, Digest: digest,
			Annotations: map[string]string{recipes.AnnotationComponent: c.Name, recipes.AnnotationComponentVersion: c.Version},
		})
		ls[digest] = &blobLayer{digest: digest, diffID: diffID, size: l.Size, mediaType: l.MediaType, path: b.layerPath(l.Digest)}
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawCfg)), Digest: digestOf(rawCfg)}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	img, err := partial.CompressedToImage(&rawImage{manifest: rawManifest, config: rawCfg, mediaType: types.OCIManifestSchema1, layers: ls})
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	desc := v1.Descriptor{
		MediaType: types.OCIManifestSchema1, Size: int64(len(rawManifest)), Digest: digestOf(rawManifest),
		Platform: &v1.Platform{OS: pb.OS, Architecture: pb.Arch},
	}
	return img, desc, nil
}

func componentComment(c recipes.ResolvedComponent) string {
	var names []string
	for _, s := range c.Sources {
		names = append(names, s.Name+" "+s.Version)
	}
	sort.Strings(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return fmt.Sprintf("%d files", len(c.Files))
	}
	return strings.Join(names, ", ")
}
