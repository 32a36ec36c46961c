package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/archive"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/recipes"
)

var update = flag.Bool("update", false, "rewrite golden files")

// quickstart resolves the quickstart recipe with set.
func quickstart(t testing.TB, set map[string]string) *recipes.Resolved {
	t.Helper()
	r, err := recipes.Load("../examples/quickstart/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := recipes.LoadLock(recipes.LockPath(r.File()), false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(recipes.ResolveOptions{Lock: lock, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// mirrorFetcher serves the stand-in files in testdata/mirror.
func mirrorFetcher(t testing.TB, cache string) *fetch.Fetcher {
	t.Helper()
	abs, err := filepath.Abs("../testdata/mirror")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fetch.New(fetch.WithCacheDir(cache), fetch.WithMirrors(
		fetch.Mirror{From: "https://dl.k8s.io/", To: "file://" + abs + "/dl.k8s.io/"},
		fetch.Mirror{From: "https://github.com/", To: "file://" + abs + "/github.com/"},
	))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func build(t testing.TB, res *recipes.Resolved, cache string, o builder.Options) *builder.Result {
	t.Helper()
	o.Fetcher = mirrorFetcher(t, cache)
	r, err := builder.Build(context.Background(), res, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digest(t testing.TB, r *builder.Result) string {
	d, err := r.Index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// The quickstart digest is the same from any cache, umask and working
// directory, and matches the checked-in golden digest.
func TestReproducible(t *testing.T) {
	res := quickstart(t, nil)
	first := digest(t, build(t, res, t.TempDir(), builder.Options{}))

	old := syscall.Umask(0o077)
	wd, _ := os.Getwd()
	defer func() { syscall.Umask(old); os.Chdir(wd) }()
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	os.Chdir(wd) // the recipe was resolved already; the build must not care
	second := digest(t, build(t, res, t.TempDir(), builder.Options{Jobs: 1}))
	syscall.Umask(old)
	if first != second {
		t.Fatalf("two builds of one recipe: %s vs %s", first, second)
	}
	golden := filepath.Join("testdata", "quickstart.digest")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(first+"\n"), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != first {
		t.Errorf("quickstart digest %s, golden %s (run go test ./builder -update if the layout changed on purpose)", first, strings.TrimSpace(string(want)))
	}
}

// A warm layer cache gives the same digest without rebuilding layers.
func TestLayerCache(t *testing.T) {
	res := quickstart(t, nil)
	cache := t.TempDir()
	a := build(t, res, cache, builder.Options{})
	b := build(t, res, cache, builder.Options{})
	if digest(t, a) != digest(t, b) {
		t.Fatal("cached build differs")
	}
	for _, p := range b.Platforms {
		for _, l := range p.Layers {
			if !l.Cached {
				t.Errorf("%s %s not from cache", p.Platform, l.Component)
			}
		}
	}
	z := build(t, res, cache, builder.Options{Compression: builder.Zstd})
	if digest(t, z) == digest(t, a) || z.Platforms[0].Layers[0].Cached {
		t.Error("zstd build reused gzip layers")
	}
}

// Bumping one component's version changes exactly that component's layer.
func TestOneComponentChanges(t *testing.T) {
	cache := t.TempDir()
	a := build(t, quickstart(t, nil), cache, builder.Options{})
	b := build(t, quickstart(t, map[string]string{"kubernetes": "1.36.5"}), cache, builder.Options{})
	for pi := range a.Platforms {
		var changed []string
		for li, l := range a.Platforms[pi].Layers {
			if b.Platforms[pi].Layers[li].Digest != l.Digest {
				changed = append(changed, l.Component)
			}
		}
		if strings.Join(changed, ",") != "kubernetes" {
			t.Errorf("%s: changed layers %v, want only kubernetes", a.Platforms[pi].Platform, changed)
		}
	}
}

func hostileTarGz(t *testing.T) []byte {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, name := range []string{"bin/tool", "../../etc/cron.d/evil"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: 3, Typeflag: tar.TypeReg})
		tw.Write([]byte("x\n\n"))
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	return gz.Bytes()
}

// A hostile archive fails the build with its named error and leaves no layer
// and no cached source behind; a checksum mismatch caches nothing.
func TestBadSources(t *testing.T) {
	dir := t.TempDir()
	data := hostileTarGz(t)
	archivePath := filepath.Join(dir, "tool.tar.gz")
	os.WriteFile(archivePath, data, 0o644)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name string
		sha  string
		want error
	}{
		{"hostile archive", good, archive.ErrUnsafeEntry},
		{"checksum mismatch", strings.Repeat("0", 64), fetch.ErrChecksumMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recipe := filepath.Join(dir, "recipe.yaml")
			os.WriteFile(recipe, []byte(`apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: hostile}
platforms: [linux/amd64]
components:
  - name: tool
    sources:
      - url: file://`+archivePath+`
        archive: tar.gz
        extract: {"bin/*": /usr/bin/}
        sha256: {amd64: `+tc.sha+`}
`), 0o644)
			r, err := recipes.Load(recipe)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Resolve(recipes.ResolveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			f, _ := fetch.New(fetch.WithCacheDir(cache), fetch.WithFileSources(true))
			_, err = builder.Build(context.Background(), res, builder.Options{Fetcher: f})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), archivePath) {
				t.Errorf("error does not name the source: %v", err)
			}
			var left []string
			filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("cache entries left behind: %v", left)
			}
		})
	}
}

// BenchmarkWarmBuild builds the quickstart with a warm download cache and a
// cold layer cache (hack/bench.sh runs the large version against tar|gzip).
func BenchmarkWarmBuild(b *testing.B) {
	res := quickstart(b, nil)
	cache := b.TempDir()
	build(b, res, cache, builder.Options{})
	for i := 0; i < b.N; i++ {
		os.RemoveAll(filepath.Join(cache, "layers"))
		build(b, res, cache, builder.Options{})
	}
}

// zstd layers are the same bytes whatever the encoder's concurrency, so the
// digest does not depend on the machine's core count.
func TestZstdDeterministicAcrossCPUs(t *testing.T) {
	res := quickstart(t, nil)
	a := build(t, res, t.TempDir(), builder.Options{Compression: builder.Zstd})
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	b := build(t, res, t.TempDir(), builder.Options{Compression: builder.Zstd, Jobs: 1})
	if digest(t, a) != digest(t, b) {
		t.Errorf("zstd build differs between GOMAXPROCS %d and 1", old)
	}
}
