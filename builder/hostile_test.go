package builder_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/recipes"
)

// A mirror that sends headers and then stalls used to hang a build forever;
// now the build fails once the configured stall timeout and retries are
// used up, naming the URL. The 60 s guard only detects a hang.
func TestBuildFailsOnStallingMirror(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("#!/bin/sh\n"))
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })

	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(recipe, []byte(`apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: stall}
platforms: [linux/amd64]
components:
  - name: tool
    sources:
      - url: https://dl.example.com/tool
        dest: /usr/bin/tool
        sha256: {amd64: `+strings.Repeat("a", 64)+`}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load(recipe)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(recipes.ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()), fetch.WithMirrors(fetch.Mirror{From: "https://dl.example.com/", To: srv.URL + "/"}),
		fetch.WithStallTimeout(300*time.Millisecond), fetch.WithRetries(1), fetch.WithBackoff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := builder.Build(context.Background(), res, builder.Options{Fetcher: f, CacheDir: t.TempDir()})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the build still hangs on a stalled mirror after 60 s")
	}
	if !errors.Is(err, fetch.ErrStalled) || !strings.Contains(err.Error(), "https://dl.example.com/tool") {
		t.Errorf("err = %v, want ErrStalled naming the source URL", err)
	}
}
