package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/prebake/prebake/internal/testenv"
)

// Tests against real peers: Debian's docker-registry (distribution 2.8, no
// referrers API) and `prebake serve` (OCI 1.1), read back with skopeo, crane
// and oras. They need those programs (hack/tools.sh) and are skipped by -short.

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", u)
}

// startDockerRegistry runs docker-registry (testenv) over temporary storage
// and returns its host:port.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	return testenv.StartDockerRegistry(t, "").Host
}

// startPrebakeServe runs `prebake serve` over a temporary root and returns
// its address.
func startPrebakeServe(t *testing.T, args ...string) string {
	t.Helper()
	addr := testenv.Serve(t, testenv.Prebake(t), append([]string{"--root", t.TempDir()}, args...)...).Addr
	if len(args) == 0 {
		waitHTTP(t, "http://"+addr+"/v2/")
	}
	return addr
}

// proxyTo puts a counting reverse proxy in front of a registry at addr.
func proxyTo(t *testing.T, addr string) (*countingProxy, string) {
	t.Helper()
	u, _ := url.Parse("http://" + addr)
	p := &countingProxy{target: httputil.NewSingleHostReverseProxy(u)}
	return p, testHost(t, p)
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, name), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// orasReferrers runs `oras discover --format json` and returns every digest
// below the subject.
func orasReferrers(t *testing.T, args ...string) []string {
	t.Helper()
	out := run(t, "oras", append([]string{"discover", "--format", "json"}, args...)...)
	var tree map[string]any
	if err := json.Unmarshal(out, &tree); err != nil {
		t.Fatalf("oras discover output: %v\n%s", err, out)
	}
	var ds []string
	var walk func(v any, top bool)
	walk = func(v any, top bool) {
		switch x := v.(type) {
		case map[string]any:
			if d, ok := x["digest"].(string); ok && !top {
				ds = append(ds, d)
			}
			for k, c := range x {
				if k == "manifests" || k == "referrers" {
					walk(c, false)
				}
			}
		case []any:
			for _, c := range x {
				walk(c, false)
			}
		}
	}
	walk(tree, true)
	return ds
}

// TestRealPeers round-trips an index with an SBOM through Debian's
// docker-registry and `prebake serve`, reading it back with skopeo, crane
// and oras, and measures uploads with a counting proxy.
func TestRealPeers(t *testing.T) {
	testenv.Tool(t, "skopeo")
	testenv.Tool(t, "crane")
	testenv.Tool(t, "oras")
	ctx := ctxT(t)
	peers := map[string]string{
		"docker-registry": startDockerRegistry(t),
		"prebake-serve":   startPrebakeServe(t),
	}
	idx := ociIndex(t)
	sbom := sbomFor(t, idx)
	want, wantSBOM := digestOf(t, idx), digestOf(t, sbom)
	for name, addr := range peers {
		t.Run(name, func(t *testing.T) {
			proxy, via := proxyTo(t, addr)
			ref := MustParse(via + "/nodes/k8s:1.36.4")
			res, err := Push(ctx, ref, idx, []Artifact{sbom}, insecure())
			if err != nil {
				t.Fatal(err)
			}
			if res.Descriptor.Digest.String() != want || proxy.uploaded.Load() != res.Uploaded || res.Uploaded == 0 {
				t.Fatalf("push: %+v, proxy counted %d", res, proxy.uploaded.Load())
			}

			// The same digests and referrers, read by other clients.
			direct := addr + "/nodes/k8s"
			raw := run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+direct+":1.36.4")
			if got := sha256Hex(raw); got != want {
				t.Errorf("skopeo inspect: %s, want %s", got, want)
			}
			raw = run(t, "crane", "manifest", "--insecure", direct+":1.36.4")
			if got := sha256Hex(raw); got != want {
				t.Errorf("crane manifest: %s, want %s", got, want)
			}
			if got := orasReferrers(t, "--plain-http", direct+"@"+want); !slices.Contains(got, wantSBOM) {
				t.Errorf("oras discover: %v, want %s", got, wantSBOM)
			}
			if got, err := Referrers(ctx, MustParse(direct+"@"+want), "application/spdx+json", insecure()); err != nil || len(got) != 1 || got[0].Digest.String() != wantSBOM {
				t.Errorf("Referrers: %v %v", got, err)
			}

			// Re-pushing the unchanged image sends no blob bytes.
			proxy.uploaded.Store(0)
			res, err = Push(ctx, ref, idx, []Artifact{sbom}, insecure())
			if err != nil {
				t.Fatal(err)
			}
			if n := proxy.uploaded.Load(); n != 0 || res.Uploaded != 0 {
				t.Fatalf("re-push uploaded %d bytes (result %d)", n, res.Uploaded)
			}

			// Bumping one component uploads only that layer (and the config).
			base := ociImage(t, 8192, 3)
			if _, err := Push(ctx, MustParse(via+"/nodes/single:v1"), base, nil, insecure()); err != nil {
				t.Fatal(err)
			}
			layers, _ := base.Layers()
			bumped, err := random.Layer(8192, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.AppendLayers(ociImageFrom(t, layers[:2]), bumped)
			if err != nil {
				t.Fatal(err)
			}
			proxy.uploaded.Store(0)
			res, err = Push(ctx, MustParse(via+"/nodes/single:v2"), img, nil, insecure())
			if err != nil {
				t.Fatal(err)
			}
			size, _ := bumped.Size()
			cfg, _ := img.RawConfigFile()
			if n := proxy.uploaded.Load(); n != size+int64(len(cfg)) || res.BlobsUploaded != 2 {
				t.Fatalf("bumped push uploaded %d bytes in %d blobs, want %d (layer %d + config %d)", n, res.BlobsUploaded, size+int64(len(cfg)), size, len(cfg))
			}

			// Pull back by digest: an OCI layout oras reads the same referrers from.
			dir := t.TempDir()
			pres, err := Pull(ctx, MustParse(direct+"@"+want), "oci:"+filepath.Join(dir, "layout")+":v1", PullOptions{Options: insecure(), RequireDigest: true})
			if err != nil {
				t.Fatal(err)
			}
			if pres.Descriptor.Digest.String() != want {
				t.Fatalf("pulled %s", pres.Descriptor.Digest)
			}
			if got := orasReferrers(t, "--oci-layout", filepath.Join(dir, "layout")+"@"+want); !slices.Contains(got, wantSBOM) {
				t.Errorf("oras discover on the pulled layout: %v", got)
			}
			if _, err := Pull(ctx, MustParse(direct+"@"+want), filepath.Join(dir, "rootfs"), PullOptions{Options: insecure(), Platform: "linux/amd64"}); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Across peers: docker-registry → prebake serve, referrers included.
	src := MustParse(peers["docker-registry"] + "/nodes/k8s:1.36.4")
	dst := MustParse(peers["prebake-serve"] + "/mirror/k8s:1.36.4")
	res, err := Copy(ctx, src, dst, insecure())
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.Digest.String() != want || len(res.Referrers) != 1 {
		t.Fatalf("cross-peer copy: %+v", res)
	}
	if got := orasReferrers(t, "--plain-http", dst.Name+"@"+want); !slices.Contains(got, wantSBOM) {
		t.Errorf("oras discover after cross-peer copy: %v", got)
	}

	// Channels and revocations on distribution 2.8 (tag fallback).
	repo := MustParse(peers["docker-registry"] + "/nodes/k8s")
	if _, err := Promote(ctx, repo.WithDigest(want), "production", PromoteOptions{Options: insecure()}); err != nil {
		t.Fatal(err)
	}
	hist, err := ChannelHistory(ctx, repo, "production", insecure())
	if err != nil || len(hist) != 1 || hist[0].Digest != want {
		t.Fatalf("history on docker-registry: %+v %v", hist, err)
	}
	raw := run(t, "crane", "manifest", "--insecure", repo.Name+":production")
	if sha256Hex(raw) != want {
		t.Errorf("crane reads the channel tag as %s", sha256Hex(raw))
	}
	if _, err := Revoke(ctx, repo.WithDigest(want), RevokeOptions{Options: insecure(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := orasReferrers(t, "--plain-http", "--artifact-type", ArtifactTypeRevocation, repo.Name+"@"+want); len(got) != 1 {
		t.Errorf("oras sees revocations %v", got)
	}
}

// TestRealPeersConcurrentReferrers: many clients add referrers to one digest
// on docker-registry at once (tag fallback, no compare-and-swap); none is lost.
func TestRealPeersConcurrentReferrers(t *testing.T) {
	const n = 16
	pinned := concurrentReferrers(t, startDockerRegistry(t), n)
	oras := orasReferrers(t, "--plain-http", "--artifact-type", "application/vnd.test.note", pinned.Name+"@"+pinned.Digest)
	if len(oras) != n {
		t.Errorf("oras sees %d referrers, want %d", len(oras), n)
	}
}

// TestRealPeersCredentials pushes to `prebake serve --htpasswd` with
// credentials from a Docker config (go-containerregistry's default keychain,
// as `docker login` leaves them), and is refused without them.
func TestRealPeersCredentials(t *testing.T) {
	testenv.Tool(t, "crane")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startPrebakeServe(t, "--htpasswd", htpasswd)
	ctx := ctxT(t)
	ref := MustParse(addr + "/nodes/a:v1")
	img := ociImage(t, 512, 1)

	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "empty"))
	if _, err := Push(ctx, ref, img, nil, insecure()); err == nil {
		t.Fatal("push without credentials succeeded")
	}
	cfgDir := filepath.Join(dir, "docker")
	os.MkdirAll(cfgDir, 0o700)
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+addr+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	res, err := Push(ctx, ref, img, []Artifact{sbomFor(t, img)}, insecure())
	if err != nil {
		t.Fatal(err)
	}
	raw := run(t, "crane", "manifest", "--insecure", ref.String())
	if sha256Hex(raw) != res.Descriptor.Digest.String() {
		t.Fatalf("crane with the same credentials reads %s", sha256Hex(raw))
	}
	if _, err := Pull(ctx, ref, filepath.Join(dir, "out"), PullOptions{Options: insecure()}); err != nil {
		t.Fatal(err)
	}
}
