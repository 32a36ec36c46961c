// Package pipeline is prebake's main job as one library call, the one that
// `prebake build` and the Packer builder both make: resolve a recipe (a file
// or a catalog recipe's name), build it, write it to the store or a layout,
// push it to a registry, and sign and attest it there.
//
// Every step is another package's (recipes, builder, registry, signing);
// pipeline orders them and owns the rules that tie them together: how a
// recipe argument is read, where the output goes and which tag it gets.
// It reads no environment variable and prints nothing: callers pass
// SOURCE_DATE_EPOCH, key passwords and a progress sink.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// RecipeOptions say which recipe to resolve and how.
type RecipeOptions struct {
	// Recipe is the path of a recipe file, or the name of a catalog recipe
	// (kubernetes-node, …) when no file of that name exists.
	Recipe string
	// Set overrides recipe variables. For a catalog recipe, the versions
	// that go with the Kubernetes version come from the catalog's matrix.
	Set map[string]string
	// Platforms restricts the build; empty means the recipe's.
	Platforms []string
	// LockFile holds source checksums; empty means RECIPE.lock.yaml next to
	// a recipe file when present, or a catalog recipe's own lock.
	LockFile string
	// Locked refuses any source URL that is not in the lock.
	Locked bool
	// SourceDateEpoch overrides the recipe's epoch (the caller's
	// $SOURCE_DATE_EPOCH); nil keeps the recipe's.
	SourceDateEpoch *int64
	// Images are pre-pulled in addition to the recipe's own, each by digest
	// (prebake build --pre-pull REF@DIGEST).
	Images []recipes.Image
}

// IsCatalogName reports whether arg names a catalog recipe rather than an
// existing file (a directory of that name, as in recipes/catalog, does not
// count).
func IsCatalogName(arg string) bool {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		return false
	}
	return catalog.Has(arg)
}

// Resolve loads and resolves the recipe o names.
func Resolve(o RecipeOptions) (*recipes.Resolved, error) {
	ro := recipes.ResolveOptions{Set: o.Set, Platforms: o.Platforms, Locked: o.Locked, SourceDateEpoch: o.SourceDateEpoch, Images: o.Images}
	if IsCatalogName(o.Recipe) {
		e, err := catalog.Get(o.Recipe)
		if err != nil {
			return nil, err
		}
		set, err := e.Variables(o.Set)
		if err != nil {
			return nil, err
		}
		ro.Set, ro.Lock = set, e.Lock
		if o.LockFile != "" {
			if ro.Lock, err = recipes.LoadLock(o.LockFile, false); err != nil {
				return nil, err
			}
		}
		return e.Recipe.Resolve(ro)
	}
	r, err := recipes.Load(o.Recipe)
	if err != nil {
		return nil, err
	}
	lockPath, optional := o.LockFile, false
	if lockPath == "" {
		lockPath, optional = recipes.LockPath(o.Recipe), true
	}
	if ro.Lock, err = recipes.LoadLock(lockPath, optional); err != nil {
		return nil, err
	}
	if o.Locked && ro.Lock == nil {
		return nil, fmt.Errorf("%w: none at %s", ErrNoLockFile, lockPath)
	}
	return r.Resolve(ro)
}

// Destinations are where Run writes the image.
type Destinations struct {
	// Output is a layout or the store.
	Output registry.Reference
	// Push is a registry repository, or nil.
	Push *registry.Reference
}

// ParseDestinations applies the one set of rules for a build's output and
// push destination:
//   - output "" is the store, NAME:VERSION; otherwise oci:DIR[:TAG] or
//     store:NAME[:TAG], whose tag defaults to the recipe's version;
//   - push "" pushes nothing; otherwise HOST/REPO[:TAG], whose tag defaults
//     to the recipe's version;
//   - neither may name a digest (the digest is the build's).
func ParseDestinations(res *recipes.Resolved, output, push string) (Destinations, error) {
	var d Destinations
	given := output
	if output == "" {
		output = "store:" + res.Name
	}
	out, err := registry.ParseReference(output)
	switch {
	case err != nil:
		return d, &DestinationError{Value: given, Err: err}
	case out.Digest != "":
		return d, &DestinationError{Value: given, Err: ErrOutputDigest}
	case out.Transport == registry.TransportRemote:
		return d, &DestinationError{Value: given, Err: ErrOutputRemote}
	}
	if !out.TagGiven {
		out = out.WithTag(res.Version)
	}
	d.Output = out
	if push != "" {
		p, err := registry.ParseReference(push)
		switch {
		case err != nil:
			return d, &DestinationError{Push: true, Value: push, Err: err}
		case p.Digest != "":
			return d, &DestinationError{Push: true, Value: push, Err: ErrOutputDigest}
		case p.Transport != registry.TransportRemote:
			return d, &DestinationError{Push: true, Value: push, Err: ErrPushLocal}
		}
		if !p.TagGiven {
			p = p.WithTag(res.Version)
		}
		d.Push = &p
	}
	return d, nil
}

// Options configure Run.
type Options struct {
	// Fetcher downloads sources; nil means one with prebake's default cache.
	Fetcher *fetch.Fetcher
	// CacheDir is the layer cache; empty means the fetcher's.
	CacheDir    string
	Compression builder.Compression
	// Jobs bounds parallel downloads, layer builds and uploads; 0 means the
	// number of CPUs (builds) or the registry default (uploads).
	Jobs     int
	Revision string
	// Output and Push are where the image goes (ParseDestinations).
	Output, Push string
	// Insecure allows plain HTTP to the registry.
	Insecure bool
	// SignKey, when set, signs the pushed image (and each platform image)
	// and attests its SBOM and provenance there. It needs Push.
	SignKey string
	// Password decrypts SignKey.
	Password signing.PassFunc
	Progress progress.Func
	// RegistryMirrors pull pre-pulled images from other registries
	// (builder.Options.RegistryMirrors; Fetch.RegistryMirrors parses them).
	RegistryMirrors map[string]string
	// LayerCache shares layers beyond the local cache (RegistryCache).
	LayerCache builder.LayerCache
	// Offline pulls images only from RegistryMirrors (builder.Options.Offline).
	Offline bool
}

// Result is what Run did; its JSON is `prebake build --json`'s output.
type Result struct {
	Digest       string `json:"digest"`
	Reference    string `json:"reference"`
	Pushed       string `json:"pushed,omitempty"`
	Name         string `json:"name"`
	Version      string `json:"version"`
	RecipeDigest string `json:"recipeDigest"`
	SBOM         string `json:"sbom"`
	CycloneDX    string `json:"cyclonedx,omitempty"`
	Signatures   int    `json:"signatures,omitempty"`
	Attestations int    `json:"attestations,omitempty"`
	// Uploaded is the blob bytes the push sent (blobs the registry had are
	// not sent again).
	Uploaded  int64                    `json:"uploaded,omitempty"`
	Platforms []builder.PlatformResult `json:"platforms"`
}

// Check reports what Run would refuse in o before anything is built.
func Check(res *recipes.Resolved, o Options) (Destinations, error) {
	d, err := ParseDestinations(res, o.Output, o.Push)
	if err != nil {
		return d, err
	}
	if o.SignKey != "" && d.Push == nil {
		return d, ErrSignWithoutPush
	}
	return d, nil
}

// Run builds res and writes, pushes, signs and attests the image as o says.
func Run(ctx context.Context, res *recipes.Resolved, o Options) (*Result, error) {
	dst, err := Check(res, o)
	if err != nil {
		return nil, err
	}
	built, err := builder.Build(ctx, res, builder.Options{
		RegistryMirrors: o.RegistryMirrors,
		Offline:         o.Offline,
		Fetcher:         o.Fetcher,
		CacheDir:        o.CacheDir,
		Compression:     o.Compression,
		Jobs:            o.Jobs,
		Revision:        o.Revision,
		Progress:        o.Progress,
		LayerCache:      o.LayerCache,
	})
	if err != nil {
		return nil, err
	}
	ropts := registry.Options{Insecure: o.Insecure, Jobs: o.Jobs, Progress: o.Progress}
	sbom := []registry.Artifact{built.SBOM, built.CycloneDX}
	desc, err := registry.Write(ctx, dst.Output, built.Index, sbom, ropts)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", dst.Output, err)
	}
	r := &Result{
		Digest: desc.Digest.String(), Reference: dst.Output.String(), Name: res.Name, Version: res.Version,
		RecipeDigest: res.Digest, Platforms: built.Platforms,
	}
	if d, err := built.SBOM.Digest(); err == nil {
		r.SBOM = d.String()
	}
	if d, err := built.CycloneDX.Digest(); err == nil {
		r.CycloneDX = d.String()
	}
	if dst.Push == nil {
		return r, nil
	}
	cr, err := registry.Push(ctx, *dst.Push, built.Index, sbom, ropts)
	if err != nil {
		return nil, fmt.Errorf("pushing %s: %w", dst.Push, err)
	}
	r.Uploaded = cr.Uploaded
	pushed := dst.Push.WithDigest(r.Digest)
	r.Pushed = pushed.String()
	if o.SignKey == "" {
		return r, nil
	}
	sr, err := signing.SignAndAttest(ctx, pushed, signing.SignAndAttestOptions{
		KeyOptions: signing.KeyOptions{Key: o.SignKey, Password: o.Password},
		Registry:   ropts,
	})
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", r.Pushed, err)
	}
	r.Signatures, r.Attestations = len(sr.Signed), len(sr.Attested)
	return r, nil
}

// Fetch configures downloading sources: what `prebake build --cache-dir
// --mirror --offline` and the Packer builder's cache_dir, mirrors and offline
// set.
type Fetch struct {
	// CacheDir is the download and layer cache; empty means prebake's
	// default ($XDG_CACHE_HOME/prebake).
	CacheDir string
	// Mirrors rewrite source URLs, each "FROM=TO" with URL prefixes; a
	// mirror whose FROM has no scheme names registries (registry.k8s.io=
	// 127.0.0.1:5000) and is for pre-pulled images (RegistryMirrors).
	Mirrors []string
	// Offline uses only the cache.
	Offline bool
	// AllowFileSources reads file:// source URLs that no mirror rewrote.
	AllowFileSources bool
	// StallTimeout and Timeout bound a download (fetch.WithStallTimeout,
	// fetch.WithTimeout); zero keeps fetch's defaults.
	StallTimeout, Timeout time.Duration
}

// isRegistryMirror tells a registry mirror (registry.k8s.io=127.0.0.1:5000)
// from a URL prefix mirror (https://dl.k8s.io/=file:///srv/mirror/).
func isRegistryMirror(s string) bool {
	from, _, _ := strings.Cut(s, "=")
	return !strings.Contains(from, "://")
}

// Fetcher returns a fetcher configured by f and opts.
func (f Fetch) Fetcher(opts ...fetch.Option) (*fetch.Fetcher, error) {
	ms := make([]fetch.Mirror, 0, len(f.Mirrors))
	for _, s := range f.Mirrors {
		if isRegistryMirror(s) {
			continue
		}
		m, err := fetch.ParseMirror(s)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	opts = append(opts, fetch.WithMirrors(ms...), fetch.WithOffline(f.Offline), fetch.WithFileSources(f.AllowFileSources))
	if f.StallTimeout > 0 {
		opts = append(opts, fetch.WithStallTimeout(f.StallTimeout))
	}
	if f.Timeout > 0 {
		opts = append(opts, fetch.WithTimeout(f.Timeout))
	}
	if f.CacheDir != "" {
		opts = append(opts, fetch.WithCacheDir(f.CacheDir))
	}
	return fetch.New(opts...)
}

// Configure sets o's Fetcher (made with opts), RegistryMirrors and Offline
// from f: how `prebake build` and the Packer builder turn their download
// options into Run's.
func (f Fetch) Configure(o *Options, opts ...fetch.Option) error {
	fetcher, err := f.Fetcher(opts...)
	if err != nil {
		return err
	}
	rm, err := f.RegistryMirrors()
	if err != nil {
		return err
	}
	o.Fetcher, o.RegistryMirrors, o.Offline = fetcher, rm, f.Offline
	return nil
}

// Check reports every mirror of f that Fetcher or RegistryMirrors would
// refuse, without making anything (for validating options up front).
func (f Fetch) Check() error {
	var errs []error
	for _, s := range f.Mirrors {
		var err error
		if isRegistryMirror(s) {
			_, err = Fetch{Mirrors: []string{s}}.RegistryMirrors()
		} else {
			_, err = fetch.ParseMirror(s)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RegistryMirrors are the Mirrors that name registries: registry -> the
// registry (and optional repository prefix) to pull its images from.
func (f Fetch) RegistryMirrors() (map[string]string, error) {
	ms := map[string]string{}
	for _, s := range f.Mirrors {
		if !isRegistryMirror(s) {
			continue
		}
		from, to, ok := strings.Cut(s, "=")
		if !ok || from == "" || to == "" || strings.Contains(from, "/") || strings.Contains(to, "://") {
			return nil, fmt.Errorf("mirror %q: want FROM=TO with URL prefixes (https://dl.k8s.io/=https://mirror/dl.k8s.io/) or registries (registry.k8s.io=mirror.example.com[/prefix])", s)
		}
		ms[from] = to
	}
	return ms, nil
}
