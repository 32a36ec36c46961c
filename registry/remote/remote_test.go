package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/remote"
	"github.com/prebake/prebake/registry/store"
)

// registries are the two kinds remote must serve alike: prebake's own
// (referrers API, mounts) and one with the tag fallback only.
func registries(t *testing.T) map[string]string {
	return map[string]string{"prebake": fixture.Registry(t), "fallback": testenv.ServeHTTP(t, testenv.FallbackRegistry())}
}

func open(t *testing.T, host, repo string, push bool, mountFrom ...reference.Reference) *remote.Repository {
	t.Helper()
	r, err := remote.Open(t.Context(), reference.MustParse(host+"/"+repo), remote.Options{Insecure: true}, push, mountFrom...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// push writes img's blobs and manifest through the Store methods and tags
// it (when tag is set); it returns img's descriptor.
func push(t *testing.T, s store.Store, img v1.Image, tag string) v1.Descriptor {
	t.Helper()
	ctx := t.Context()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		blob := func() (io.ReadCloser, error) {
			if d.Digest == m.Config.Digest {
				raw, err := img.RawConfigFile()
				return io.NopCloser(bytes.NewReader(raw)), err
			}
			l, err := img.LayerByDigest(d.Digest)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		}
		if _, err := s.PutBlob(ctx, d, blob, ""); err != nil {
			t.Fatalf("PutBlob %s: %v", d.Digest, err)
		}
	}
	d, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(ctx, *d, raw); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, *d, raw, tag); err != nil {
		t.Fatal(err)
	}
	return *d
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// A repository is a Store: what is put is resolved, read back byte for byte
// and listed, on either kind of registry.
func TestRepositoryRoundTrip(t *testing.T) {
	for kind, host := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			r := open(t, host, "nodes/k8s", true)
			if r.String() != host+"/nodes/k8s" {
				t.Errorf("String() = %q", r.String())
			}
			img := testenv.Image(t, 4096, 2)
			d := push(t, r, img, "1.36.4")

			for _, by := range [][2]string{{"1.36.4", ""}, {"", d.Digest.String()}} {
				got, err := r.Resolve(ctx, by[0], by[1])
				if err != nil || got.Digest != d.Digest || got.Size != d.Size || got.MediaType != d.MediaType {
					t.Errorf("Resolve(%q, %q) = %+v, %v; want %+v", by[0], by[1], got, err, d)
				}
			}
			raw, err := r.Manifest(ctx, d)
			if want, _ := img.RawManifest(); err != nil || !bytes.Equal(raw, want) {
				t.Errorf("Manifest: %v (%d bytes, want %d)", err, len(raw), len(want))
			}
			layers, _ := img.Layers()
			ld, err := partial.Descriptor(layers[1])
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(r.Blob(ctx, *ld))
			want, _ := readAll(layers[1].Compressed())
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Blob: %v (%d bytes, want %d)", err, len(got), len(want))
			}
			if ok, err := r.HasBlob(ctx, *ld); !ok || err != nil {
				t.Errorf("HasBlob of a pushed layer = %v, %v", ok, err)
			}
			missing := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, Size: 1}
			if ok, err := r.HasBlob(ctx, missing); ok || err != nil {
				t.Errorf("HasBlob of a missing blob = %v, %v", ok, err)
			}
			if tags, err := r.Tags(ctx); err != nil || !slices.Contains(tags, "1.36.4") {
				t.Errorf("Tags = %v, %v", tags, err)
			}
			if _, err := r.Resolve(ctx, "nope", ""); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Resolve of a missing tag: %v, want ErrNotFound", err)
			}
			if _, err := r.Resolve(ctx, "", missing.Digest.String()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Resolve of a missing digest: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestOpenRefusesLocalReferences(t *testing.T) {
	for _, s := range []string{"oci:" + t.TempDir() + ":v1", "store:node:v1"} {
		if _, err := remote.Open(t.Context(), reference.MustParse(s), remote.Options{}, false); err == nil {
			t.Errorf("Open(%s) succeeded", s)
		}
	}
}

// Referrers are found by subject, filtered by artifact type, through the
// referrers API or the tag fallback; on the fallback concurrent writers do
// not lose each other's entries.
func TestReferrers(t *testing.T) {
	for kind, host := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			r := open(t, host, "nodes/k8s", true)
			subject := push(t, r, testenv.Image(t, 512, 1), "v1")
			if ds, err := r.Referrers(ctx, subject, ""); err != nil || len(ds) != 0 {
				t.Fatalf("Referrers before any = %v, %v", ds, err)
			}
			const n = 4
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				// Each writer its own connection, as separate processes.
				w := open(t, host, "nodes/k8s", true)
				art := testenv.Referrer(t, subject, fmt.Sprintf("application/vnd.test.%d", i%2))
				d := push(t, w, art, "")
				wg.Go(func() {
					if err := w.AddReferrers(ctx, subject, []v1.Descriptor{d}); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			all, err := r.Referrers(ctx, subject, "")
			if err != nil || len(all) != n {
				t.Fatalf("Referrers = %d (%v), want %d", len(all), err, n)
			}
			odd, err := r.Referrers(ctx, subject, "application/vnd.test.1")
			if err != nil || len(odd) != n/2 {
				t.Fatalf("Referrers of one type = %v, %v", odd, err)
			}
			for _, d := range odd {
				if d.ArtifactType != "application/vnd.test.1" {
					t.Errorf("filtered referrer %+v", d)
				}
			}
		})
	}
}

// Within one registry a blob is mounted from another repository instead of
// sent again; MountSource names that repository only when it can work.
func TestMount(t *testing.T) {
	ctx := t.Context()
	host := fixture.Registry(t)
	src, dst := reference.MustParse(host+"/team/a:v1"), reference.MustParse(host+"/team/b:v1")
	from := remote.MountSource(src, dst, remote.Options{Insecure: true})
	if from != "team/a" {
		t.Fatalf("MountSource = %q, want team/a", from)
	}
	for _, other := range []string{"other.example/team/b:v1", host + "/team/a:v2", "oci:" + t.TempDir()} {
		if got := remote.MountSource(src, reference.MustParse(other), remote.Options{Insecure: true}); got != "" {
			t.Errorf("MountSource(%s) = %q, want none", other, got)
		}
	}
	img := testenv.Image(t, 8192, 1)
	push(t, open(t, host, "team/a", true), img, "v1")
	b := open(t, host, "team/b", true, src)
	layers, _ := img.Layers()
	d, err := partial.Descriptor(layers[0])
	if err != nil {
		t.Fatal(err)
	}
	opened := false
	mounted, err := b.PutBlob(ctx, *d, func() (io.ReadCloser, error) { opened = true; return layers[0].Compressed() }, from)
	if err != nil || !mounted || opened {
		t.Fatalf("PutBlob with mount = mounted %v, read %v, %v", mounted, opened, err)
	}
	if ok, err := b.HasBlob(ctx, *d); !ok || err != nil {
		t.Fatalf("mounted blob not in team/b: %v, %v", ok, err)
	}
}

// proxy forwards to a registry at host and lets a test change what passes.
type proxy struct {
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	reqs   []string // "METHOD path"
	fail   func(r *http.Request) int
	modify func(r *http.Response) error
}

func newProxy(t *testing.T, host string) (*proxy, string) {
	p := &proxy{rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})}
	p.rp.ModifyResponse = func(r *http.Response) error {
		if p.modify != nil {
			return p.modify(r)
		}
		return nil
	}
	return p, testenv.ServeHTTP(t, p)
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	if p.fail != nil {
		if code := p.fail(r); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

func (p *proxy) count(method, pathPart string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, pathPart) {
			n++
		}
	}
	return n
}

// Every byte read is checked against its descriptor, and a tag's digest is
// computed from the manifest, never taken from the registry's header.
func TestTamperedContentIsRefused(t *testing.T) {
	ctx := t.Context()
	host := fixture.Registry(t)
	img := testenv.Image(t, 4096, 1)
	d := push(t, open(t, host, "nodes/k8s", true), img, "v1")
	p, phost := newProxy(t, host)
	r := open(t, phost, "nodes/k8s", false)

	p.modify = func(resp *http.Response) error {
		resp.Header.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("1", 64))
		return nil
	}
	// The header is either ignored or refused, never believed.
	if got, err := r.Resolve(ctx, "v1", ""); err == nil && got.Digest != d.Digest || err != nil && !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("Resolve with a lying digest header = %v, %v; want %s or ErrDigestMismatch", got.Digest, err, d.Digest)
	}

	p.modify = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body[len(body)/2] ^= 1
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	if _, err := r.Manifest(ctx, d); !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("Manifest of changed bytes: %v, want ErrDigestMismatch", err)
	}
	layers, _ := img.Layers()
	ld, err := partial.Descriptor(layers[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = readAll(r.Blob(ctx, *ld))
	var de *store.DigestError
	if !errors.As(err, &de) || de.Expected != ld.Digest.String() {
		t.Errorf("Blob of changed bytes: %v, want a DigestError expecting %s", err, ld.Digest)
	}
}

// Reads are retried on 5xx and 429; writes are never replayed.
func TestRetriesReadsNotWrites(t *testing.T) {
	ctx := t.Context()
	host := fixture.Registry(t)
	img := testenv.Image(t, 1024, 1)
	d := push(t, open(t, host, "nodes/k8s", true), img, "v1")
	p, phost := newProxy(t, host)
	var failures atomic.Int32
	failures.Store(2)
	p.fail = func(r *http.Request) int {
		if strings.Contains(r.URL.Path, "/manifests/") && failures.Add(-1) >= 0 {
			if r.Method == http.MethodPut {
				return http.StatusInternalServerError
			}
			return []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}[failures.Load()%2]
		}
		return 0
	}
	r := open(t, phost, "nodes/k8s", true)
	if got, err := r.Resolve(ctx, "v1", ""); err != nil || got.Digest != d.Digest {
		t.Fatalf("Resolve through two failures = %v, %v", got.Digest, err)
	}
	if n := p.count("GET", "/manifests/v1"); n != 3 {
		t.Errorf("%d GETs of the manifest, want 3 (two failures, one success)", n)
	}

	failures.Store(1)
	raw, _ := img.RawManifest()
	if err := r.Tag(ctx, d, raw, "v2"); err == nil {
		t.Fatal("Tag answered 500 succeeded")
	}
	if n := p.count("PUT", "/manifests/v2"); n != 1 {
		t.Errorf("%d PUTs of the manifest, want 1 (writes are not replayed)", n)
	}
}

func TestContextCancelsRetries(t *testing.T) {
	host := fixture.Registry(t)
	p, phost := newProxy(t, host)
	r := open(t, phost, "nodes/k8s", false)
	p.fail = func(*http.Request) int { return http.StatusServiceUnavailable }
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Resolve(ctx, "v1", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a cancelled context: %v", err)
	}
}
