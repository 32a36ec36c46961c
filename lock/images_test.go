package lock

import (
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/recipes"
)

func TestUpdateLocksImageTags(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/pause:3.10.1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()

	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	y := `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: images}
variables: {pause: "3.10.1"}
platforms: [linux/amd64, linux/arm64]
components:
  - name: images
    images:
      - ref: ` + host + `/pause:{{ .pause }}
      - ref: ` + host + `/inline:1
        digest: sha256:` + strings.Repeat("1", 64) + `
`
	if err := os.WriteFile(recipe, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load(recipe)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	// An unknown tag is an error naming it, and no lock is written.
	_, err = Update(t.Context(), r, Options{Set: map[string]string{"pause": "9.9"}, Fetcher: f})
	if err == nil || !strings.Contains(err.Error(), "resolving image "+host+"/pause:9.9") {
		t.Fatalf("unknown tag: %v", err)
	}
	if _, err := os.Stat(recipes.LockPath(recipe)); err == nil {
		t.Fatal("a failed lock wrote a lock file")
	}

	res, err := Update(t.Context(), r, Options{Fetcher: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.AddedImages) != 1 || res.AddedImages[0].Ref != host+"/pause:3.10.1" || res.AddedImages[0].Digest != want.String() || res.KnownImages != 1 {
		t.Fatalf("result %+v, want %s", res, want)
	}
	l, err := recipes.LoadLock(recipes.LockPath(recipe), false)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := l.ImageDigest(host + "/pause:3.10.1"); !ok || d != want.String() {
		t.Errorf("lock: %q", d)
	}
	resolved, err := r.Resolve(recipes.ResolveOptions{Lock: l})
	if err != nil {
		t.Fatal(err)
	}
	if got := resolved.Builds[1].Components[0].Images[0].Digest; got != want.String() {
		t.Errorf("resolved digest %s", got)
	}
	before, _ := os.ReadFile(recipes.LockPath(recipe))
	if res, err := Update(t.Context(), r, Options{Fetcher: f}); err != nil || len(res.AddedImages) != 0 {
		t.Errorf("second run: %+v %v", res, err)
	}
	if after, _ := os.ReadFile(recipes.LockPath(recipe)); !bytes.Equal(before, after) {
		t.Error("a run that adds nothing changed the lock")
	}
}

// TestUpdateResolvesImagesThroughMirror: an air-gapped lock resolves the
// tags of registry.k8s.io's images at a local mirror; the lock keeps the
// upstream reference with the mirror's digest.
func TestUpdateResolvesImagesThroughMirror(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/k8s/kube-apiserver:v1.36.3")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	y := "apiVersion: prebake.dev/v1alpha1\nkind: Recipe\nmetadata: {name: cp}\nplatforms: [linux/amd64]\ncomponents:\n  - name: images\n    images:\n      - ref: registry.k8s.io/kube-apiserver:v1.36.3\n"
	if err := os.WriteFile(recipe, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load(recipe)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Update(t.Context(), r, Options{Fetcher: f, RegistryMirrors: map[string]string{"registry.k8s.io": host + "/k8s"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.AddedImages) != 1 || res.AddedImages[0].Ref != "registry.k8s.io/kube-apiserver:v1.36.3" || res.AddedImages[0].Digest != want.String() {
		t.Fatalf("result %+v, want registry.k8s.io/kube-apiserver:v1.36.3@%s", res.AddedImages, want)
	}
}
