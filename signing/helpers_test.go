package signing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	cempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/server"
	"github.com/prebake/prebake/signing"
)

// testRegistry is an in-process OCI registry behind a proxy that can alter what it serves, the way
// a compromised registry or mirror would.
type testRegistry struct {
	Host string
	mu   sync.Mutex
	// tamper maps a URL path suffix (".../blobs/sha256:…" or
	// ".../manifests/sha256:…") to the body served instead.
	tamper map[string][]byte
}

// newTestRegistry serves prebake's own registry (prebake serve: OCI 1.1,
// referrers API) over a temporary root.
func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	srv, err := server.New(t.TempDir(), server.WithDelete(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return serveTestRegistry(t, srv)
}

// newGGCRRegistry serves go-containerregistry's in-memory registry without
// the referrers API, so referrers go through the sha256-<hex> tag fallback
// as with Debian's docker-registry (distribution 2.8).
func newGGCRRegistry(t *testing.T) *testRegistry {
	t.Helper()
	return serveTestRegistry(t, ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
}

func serveTestRegistry(t *testing.T, h http.Handler) *testRegistry {
	r := &testRegistry{tamper: map[string][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		var body []byte
		for suffix, b := range r.tamper {
			if strings.HasSuffix(req.URL.Path, suffix) && req.Method == http.MethodGet {
				body = b
			}
		}
		r.mu.Unlock()
		if body == nil {
			h.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		for k, vs := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = vs
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	r.Host = u.Host
	return r
}

// Tamper serves body for GETs of paths ending in suffix.
func (r *testRegistry) Tamper(suffix string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tamper[suffix] = body
}

var ropts = registry.Options{Insecure: true}

// pushIndex pushes a random two-platform index to host/repo:tag and returns
// its reference by digest.
func pushIndex(t *testing.T, host, repo, tag string) (registry.Reference, v1.ImageIndex) {
	t.Helper()
	idx := randomIndex(t)
	tagged, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tagged, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return registry.MustParse(host + "/" + repo + "@" + d.String()), idx
}

// randomIndex is a two-platform index with random layers and the
// annotations a prebake build sets.
func randomIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(512, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.source":   "https://example.com/nodes.git",
		"dev.prebake.recipe":                "kubernetes-node",
		"dev.prebake.recipe.digest":         "sha256:" + strings.Repeat("ab", 32),
	}).(v1.ImageIndex)
}

// layoutIndex writes a random index into a new layout, tagged tag.
func layoutIndex(t *testing.T, dir, tag string) (registry.Reference, v1.ImageIndex) {
	t.Helper()
	idx := randomIndex(t)
	l, err := registry.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := l.Put(context.Background(), tag, idx, nil, registry.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return registry.MustParse("oci:" + dir + "@" + desc.Digest.String()), idx
}

// sbomDoc is a small SPDX document.
func sbomDoc(name string) []byte {
	b, _ := json.Marshal(map[string]any{
		"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
		"name": name, "documentNamespace": "https://prebake.dev/spdx/test/" + name,
		"creationInfo": map[string]any{"created": "2026-01-01T00:00:00Z", "creators": []string{"Tool: prebake"}},
		"packages":     []any{},
	})
	return b
}

// attachSBOM stores an SBOM referrer of ref's index, as the builder does.
func attachSBOM(t *testing.T, ref registry.Reference, idx v1.ImageIndex, doc []byte) {
	t.Helper()
	d, _ := idx.Digest()
	raw, _ := idx.RawManifest()
	mt, _ := idx.MediaType()
	art, err := builder.Artifact(signing.SBOMArtifactType, doc, nil, &v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Write(context.Background(), ref.WithTag("with-sbom"), idx, []registry.Artifact{art}, ropts); err != nil {
		t.Fatal(err)
	}
}

// newKey returns a fresh in-memory ECDSA P-256 signer and its verifier.
func newKey(t *testing.T) (signing.Signer, signing.Verifier) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signing.NewVerifier(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// forgedSignatures is a signature image with one layer: payload, with the
// given annotations (among them the base64 signature of some other payload).
func forgedSignatures(t *testing.T, payload []byte, ann map[string]string) v1.Image {
	t.Helper()
	sig, err := static.NewSignature(payload, ann[static.SignatureAnnotationKey], static.WithAnnotations(ann))
	if err != nil {
		t.Fatal(err)
	}
	img, err := cmutate.AppendSignatures(cempty.Signatures(), false, sig)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
