package registry

import (
	"io"
	"log"
	"path/filepath"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// TestRepushIsOneHead counts the requests of re-pushing an unchanged image
// with a referrer: the registry is asked whether the tag names the root and
// whether it has the referrer, and nothing else (no blob HEADs, no manifest
// PUTs), as crane does for an image.
func TestRepushIsOneHead(t *testing.T) {
	ctx := ctxT(t)
	proxy := &countingProxy{target: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	host := testHost(t, proxy)
	ref := MustParse(host + "/nodes/k8s:v1")
	base := ociImage(t, 4096, 3)
	sbom := sbomFor(t, base)
	if _, err := Push(ctx, ref, base, []Artifact{sbom}, insecure()); err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	proxy.requests = nil
	proxy.mu.Unlock()
	res, err := Push(ctx, ref, base, []Artifact{sbom}, insecure())
	if err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	got := proxy.requests
	proxy.mu.Unlock()
	if got["HEAD manifest"] != 2 || got["HEAD blob"] != 0 || got["PUT manifest"] != 0 || got["POST upload"] != 0 {
		t.Errorf("re-push requests %v, want 2 manifest HEADs (tag, referrer) and no blob HEAD or manifest PUT", got)
	}
	if res.BlobsSkipped != res.Blobs || res.ManifestsSkipped != res.Manifests || res.Uploaded != 0 {
		t.Errorf("re-push result %+v, want everything skipped", res)
	}
	// Under another tag the root is not found by the tag: blobs are checked
	// one by one, and the tag is written.
	proxy.mu.Lock()
	proxy.requests = nil
	proxy.mu.Unlock()
	if _, err := Push(ctx, MustParse(host+"/nodes/k8s:v2"), base, nil, insecure()); err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	got = proxy.requests
	proxy.mu.Unlock()
	if got["PUT manifest"] == 0 || got["HEAD blob"] == 0 {
		t.Errorf("push under a new tag: requests %v, want blob HEADs and the tag PUT", got)
	}
	if _, d, err := Get(ctx, MustParse(host+"/nodes/k8s:v2"), insecure()); err != nil || d.Digest.String() != digestOf(t, base) {
		t.Errorf("new tag names %v (%v), want %s", d.Digest, err, digestOf(t, base))
	}
}

// TestPullRequests counts a pull's manifest requests: each is fetched once
// (no HEAD before the GET), although the revocation check and the copy both
// look at the root's referrers. This registry has no referrers API, so they
// are the root, its "sha256-<hex>" referrers index, the SBOM and the SBOM's
// (missing) index.
func TestPullRequests(t *testing.T) {
	ctx := ctxT(t)
	proxy := &countingProxy{target: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	host := testHost(t, proxy)
	ref := MustParse(host + "/nodes/k8s:v1")
	base := ociImage(t, 4096, 2)
	if _, err := Push(ctx, ref, base, []Artifact{sbomFor(t, base)}, insecure()); err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	proxy.requests = nil
	proxy.mu.Unlock()
	out := filepath.Join(t.TempDir(), "layout")
	res, err := Pull(ctx, ref.WithDigest(digestOf(t, base)), "oci:"+out, PullOptions{Options: insecure()})
	if err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	got := proxy.requests
	proxy.mu.Unlock()
	if got["HEAD manifest"] != 0 || got["GET manifest"] != 4 || got["GET blob"] != res.Blobs {
		t.Errorf("pull requests %v, want 4 manifest GETs, no HEAD, one GET per blob (%d)", got, res.Blobs)
	}
}
