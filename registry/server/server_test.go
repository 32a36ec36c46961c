package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// start serves a new Server on root over loopback and returns its host:port.
func start(t *testing.T, root string, opts ...Option) (*Server, string) {
	t.Helper()
	s, err := New(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, strings.TrimPrefix(hs.URL, "http://")
}

func ref(t *testing.T, host, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t *testing.T, size int64, layers int) v1.Image {
	t.Helper()
	img, err := randomImageErr(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func randomImageErr(size int64, layers int) (v1.Image, error) {
	return random.Image(size, int64(layers))
}

func digestOf(t *testing.T, a interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// artifact returns a referrer of subject (an SBOM-like artifact manifest).
func artifact(t *testing.T, subject v1.Image, content string) v1.Image {
	t.Helper()
	a := artifactErr(subject, content)
	if a == nil {
		t.Fatal("making an artifact failed")
	}
	return a
}

// artifactErr is artifact for goroutines: nil on failure.
func artifactErr(subject v1.Image, content string) v1.Image {
	desc, err := partial.Descriptor(subject)
	if err != nil {
		return nil
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer([]byte(content), "application/spdx+json")})
	if err != nil {
		return nil
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), "application/vnd.example.sbom")
	return mutate.Subject(img, *desc).(v1.Image)
}

// verifyTag pulls tag and checks every blob of its graph against its digest.
func verifyTag(t *testing.T, r name.Reference, opts ...remote.Option) v1.Hash {
	t.Helper()
	desc, err := remote.Get(r, opts...)
	if err != nil {
		t.Fatalf("get %s: %v", r, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(idx); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.MediaType.IsConfig() {
			if err := validate.Image(img); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
		} else {
			// An artifact: its layers are no tarballs; ggcr's remote
			// readers check each blob's digest and size at EOF.
			if _, err := img.RawConfigFile(); err != nil {
				t.Fatalf("%s: config: %v", r, err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if err != nil {
					t.Fatalf("%s: layer: %v", r, err)
				}
			}
		}
	}
	return desc.Digest
}

func TestRoundTrip(t *testing.T) {
	_, host := start(t, t.TempDir())
	img := randomImage(t, 4096, 3)
	if err := remote.Write(ref(t, host, "nodes/k8s:1.36.4"), img); err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref(t, host, "nodes/k8s:multi"), idx); err != nil {
		t.Fatal(err)
	}
	sbom := artifact(t, img, `{"spdxVersion":"SPDX-2.3"}`)
	sbomRef := ref(t, host, "nodes/k8s@"+digestOf(t, sbom).String())
	if err := remote.Write(sbomRef, sbom); err != nil {
		t.Fatal(err)
	}

	if got, want := verifyTag(t, ref(t, host, "nodes/k8s:1.36.4")), digestOf(t, img); got != want {
		t.Errorf("tag 1.36.4 = %s, want %s", got, want)
	}
	if got, want := verifyTag(t, ref(t, host, "nodes/k8s:multi")), digestOf(t, idx); got != want {
		t.Errorf("tag multi = %s, want %s", got, want)
	}
	refs, err := remote.Referrers(ref(t, host, "nodes/k8s@"+digestOf(t, img).String()).(name.Digest))
	if err != nil {
		t.Fatal(err)
	}
	im, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digestOf(t, sbom) || im.Manifests[0].ArtifactType != "application/vnd.example.sbom" {
		t.Errorf("referrers = %+v, want the sbom %s", im.Manifests, digestOf(t, sbom))
	}
	tags, err := remote.List(ref(t, host, "nodes/k8s:x").Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1.36.4", "multi"}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
}

func TestSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	s1, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s1)
	host := strings.TrimPrefix(hs.URL, "http://")
	img := randomImage(t, 1024, 2)
	if err := remote.Write(ref(t, host, "a/b:v1"), img); err != nil {
		t.Fatal(err)
	}
	hs.Close()
	s1.Close()

	_, host2 := start(t, root)
	if got := verifyTag(t, ref(t, host2, "a/b:v1")); got != digestOf(t, img) {
		t.Errorf("after restart a/b:v1 = %s, want %s", got, digestOf(t, img))
	}
	// The upload root of the closed server is gone; only the new one remains.
	ents, _ := os.ReadDir(filepath.Join(root, metaDir, "uploads"))
	if len(ents) != 1 {
		t.Errorf("upload roots after restart: %d, want 1", len(ents))
	}
}

func TestConcurrentPushesLoseNothing(t *testing.T) {
	_, host := start(t, t.TempDir())
	const n = 20
	want := map[string]v1.Hash{}
	imgs := make([]v1.Image, n)
	for i := range imgs {
		imgs[i] = randomImage(t, 512, 2)
		want[fmt.Sprintf("t%02d", i)] = digestOf(t, imgs[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = remote.Write(ref(t, host, fmt.Sprintf("one/repo:t%02d", i)), imgs[i])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkTags(t, host, "one/repo", want)
}

// checkTags verifies that repo has exactly the tags of want, each naming
// its digest and a complete, verified graph.
func checkTags(t *testing.T, host, repo string, want map[string]v1.Hash) {
	t.Helper()
	tags, err := remote.List(ref(t, host, repo+":x").Context())
	if err != nil {
		t.Fatal(err)
	}
	var wantTags []string
	for tag := range want {
		wantTags = append(wantTags, tag)
	}
	sort.Strings(wantTags)
	sort.Strings(tags)
	if diff := cmp.Diff(wantTags, tags); diff != "" {
		t.Fatalf("tags of %s (-want +got):\n%s", repo, diff)
	}
	for tag, d := range want {
		if got := verifyTag(t, ref(t, host, repo+":"+tag)); got != d {
			t.Errorf("%s:%s = %s, want %s", repo, tag, got, d)
		}
	}
}

// Two servers on one root stand for two processes: their locks exclude each
// other as flock does across processes.
func TestTwoServersOneRoot(t *testing.T) {
	root := t.TempDir()
	_, hostA := start(t, root)
	_, hostB := start(t, root)
	subject := randomImage(t, 256, 1)
	if err := remote.Write(ref(t, hostA, "shared/repo:subject"), subject); err != nil {
		t.Fatal(err)
	}
	const n = 10
	want := map[string]v1.Hash{"subject": digestOf(t, subject)}
	imgs := make([]v1.Image, 2*n)
	sboms := make([]v1.Image, 2*n)
	for i := range imgs {
		imgs[i] = randomImage(t, 256, 2)
		sboms[i] = artifact(t, subject, fmt.Sprintf(`{"n":%d}`, i))
		want[fmt.Sprintf("t%02d", i)] = digestOf(t, imgs[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range 2 * n {
		host := hostA
		if i%2 == 1 {
			host = hostB
		}
		wg.Go(func() {
			err := remote.Write(ref(t, host, fmt.Sprintf("shared/repo:t%02d", i)), imgs[i])
			if err == nil {
				err = remote.Write(ref(t, host, "shared/repo@"+digestOf(t, sboms[i]).String()), sboms[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkTags(t, hostA, "shared/repo", want)
	checkTags(t, hostB, "shared/repo", want)
	refs, err := remote.Referrers(ref(t, hostB, "shared/repo@"+digestOf(t, subject).String()).(name.Digest))
	if err != nil {
		t.Fatal(err)
	}
	im, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2*n {
		t.Errorf("subject has %d referrers, want %d", len(im.Manifests), 2*n)
	}
}

func TestDeleteDisabledByDefault(t *testing.T) {
	_, host := start(t, t.TempDir())
	img := randomImage(t, 256, 1)
	r := ref(t, host, "x/y:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	err := remote.Delete(ref(t, host, "x/y@"+digestOf(t, img).String()))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("delete with deletes disabled: %v, want 405", err)
	}
	verifyTag(t, r)

	_, host2 := start(t, t.TempDir(), WithDelete(true))
	r2 := ref(t, host2, "x/y:v1")
	if err := remote.Write(r2, img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(r2); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(r2); err == nil {
		t.Error("tag still resolves after delete")
	}
}

// A manifest whose blobs were never pushed is refused: tags only name
// complete graphs.
func TestRefusesIncompleteGraph(t *testing.T) {
	_, host := start(t, t.TempDir())
	img := randomImage(t, 256, 1)
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/p/q/manifests/v1", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", string(types.OCIManifestSchema1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN") {
		t.Errorf("PUT manifest without blobs: %d %s, want 400 MANIFEST_BLOB_UNKNOWN", resp.StatusCode, body)
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	img := randomImage(t, 256, 1)
	if err := remote.Write(ref(t, ln.Addr().String(), "g/s:v1"), img); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after its context was cancelled")
	}
}

// verifyRoot checks the store on disk without the server: every tag in every
// repository's index.json names a manifest whose graph is complete and
// whose every blob hashes to its digest. It returns the tags per repository.
func verifyRoot(t *testing.T, root string) map[string]map[string]string {
	t.Helper()
	s := &Server{root: root}
	repos, err := s.repositories()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, repo := range repos {
		b, err := os.ReadFile(filepath.Join(root, repo, indexFile))
		if err != nil {
			t.Fatal(err)
		}
		var idx indexJSON
		if err := json.Unmarshal(b, &idx); err != nil {
			t.Fatalf("%s/index.json: %v", repo, err)
		}
		out[repo] = map[string]string{}
		seen := map[string]bool{}
		var walk func(d descriptor)
		walk = func(d descriptor) {
			if seen[d.Digest] {
				return
			}
			seen[d.Digest] = true
			if len(d.URLs) > 0 {
				return
			}
			p := s.blobPath(repo, d.Digest)
			f, err := os.Open(p)
			if err != nil {
				t.Errorf("%s: %s (%s) missing: %v", repo, d.Digest, d.MediaType, err)
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest || n != d.Size {
				t.Errorf("%s: blob %s is %s, %d bytes (want %d)", repo, d.Digest, got, n, d.Size)
				return
			}
			if isManifest(d.MediaType) {
				raw, _ := os.ReadFile(p)
				var m indexJSON
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Errorf("%s: manifest %s: %v", repo, d.Digest, err)
					return
				}
				for _, c := range m.children() {
					walk(c)
				}
			}
		}
		for _, d := range idx.Manifests {
			walk(d)
			if tag := d.Annotations[annotRef]; tag != "" {
				out[repo][tag] = d.Digest
			}
		}
	}
	return out
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// After a power loss a manifest blob of an unacknowledged push can exist
// with torn content (olareg renames before prebake fsyncs). A later push of
// the same manifest must not commit a tag onto it.
func TestTornManifestBlobIsNotCommitted(t *testing.T) {
	root := t.TempDir()
	_, host := start(t, root)
	img := randomImage(t, 512, 2)
	d := digestOf(t, img)
	torn := filepath.Join(root, "torn", "repo", blobsDir, d.Algorithm, d.Hex)
	if err := os.MkdirAll(filepath.Dir(torn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(torn, []byte(`{"schemaVersion":2,`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ref(t, host, "torn/repo:v1")
	if err := remote.Write(r, img); err != nil {
		// The first attempt finds the torn blob, removes it and fails;
		// a retry (ggcr's own, or this one) writes it afresh.
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	if got := verifyTag(t, r); got != d {
		t.Errorf("torn/repo:v1 = %s, want %s", got, d)
	}
	verifyRoot(t, root)
}
