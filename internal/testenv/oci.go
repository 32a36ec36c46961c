package testenv

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is an OCI image (OCI manifest and config media types) of layers,
// or of n random layers of size bytes when layers is empty and n > 0.
func Image(t testing.TB, size, n int64, layers ...v1.Layer) v1.Image {
	t.Helper()
	for range n {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Referrer is a small OCI 1.1 artifact of artifactType (its config media
// type) with one random layer, whose subject is subject: what an SBOM, a
// signature or a record looks like to a store.
func Referrer(t testing.TB, subject v1.Descriptor, artifactType string) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	l, err := random.Layer(256, types.MediaType(artifactType))
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	return mutate.Subject(img, v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}).(v1.Image)
}

// ServeHTTP serves h on loopback for the test and returns its host:port.
func ServeHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// FallbackRegistry is go-containerregistry's in-memory registry, which has
// no referrers API: referrers go through the OCI 1.1 tag fallback there.
// (fixture.Registry is prebake's own, which has the API.)
func FallbackRegistry() http.Handler {
	return ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
}
