package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"

	"github.com/prebake/prebake/registry/store"
)

// testHost starts h on loopback and returns its host:port.
func testHost(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// olaregHost serves olareg (OCI 1.1, referrers API, mounts) from memory.
func olaregHost(t *testing.T) string {
	t.Helper()
	s := olareg.New(config.Config{Storage: config.ConfigStorage{StoreType: config.StoreMem}})
	t.Cleanup(func() { s.Close() })
	return testHost(t, s)
}

// ggcrHost serves go-containerregistry's registry without the referrers API,
// so referrers go through the tag fallback.
func ggcrHost(t *testing.T) string {
	t.Helper()
	return testHost(t, ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
}

// ociImage is a random OCI image with n layers of size bytes each.
func ociImage(t *testing.T, size, n int64) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range n {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// ociIndex is an index of two platform images sharing their first layer.
func ociIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	shared, err := random.Layer(2048, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img := ociImage(t, 1024, 1)
		img, err = mutate.AppendLayers(img, shared)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return idx
}

// sbomFor is an SPDX SBOM artifact whose subject is a.
func sbomFor(t *testing.T, a Artifact) v1.Image {
	t.Helper()
	d, err := store.DescriptorOf(a)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/spdx+json")
	l, err := random.Layer(256, "application/spdx+json")
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Subject(img, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}).(v1.Image)
}

func digestOf(t *testing.T, a Artifact) string {
	t.Helper()
	h, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// countingProxy forwards to a registry and counts the request body bytes of
// blob uploads (POST/PATCH/PUT under /blobs/uploads/).
type countingProxy struct {
	target   http.Handler
	uploaded atomic.Int64
	mu       sync.Mutex
	requests map[string]int // "METHOD kind" → count
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch {
	case strings.Contains(r.URL.Path, "/blobs/uploads"):
		kind = "upload"
	case strings.Contains(r.URL.Path, "/blobs/"):
		kind = "blob"
	case strings.Contains(r.URL.Path, "/manifests/"):
		kind = "manifest"
	}
	p.mu.Lock()
	if p.requests == nil {
		p.requests = map[string]int{}
	}
	p.requests[r.Method+" "+kind]++
	p.mu.Unlock()
	if kind == "upload" && r.Body != nil {
		r.Body = &countingBody{ReadCloser: r.Body, n: &p.uploaded}
	}
	p.target.ServeHTTP(w, r)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func insecure() Options { return Options{Insecure: true} }

func ctxT(t *testing.T) context.Context { return t.Context() }
