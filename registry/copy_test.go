package registry

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/registry/store"
)

// TestCopyEverywhere pushes an index with an SBOM referrer from memory and
// copies it through every transport pair, checking digests and referrers
// survive each hop.
func TestCopyEverywhere(t *testing.T) {
	ctx := ctxT(t)
	idx := ociIndex(t)
	sbom := sbomFor(t, idx)
	want := digestOf(t, idx)
	wantSBOM := digestOf(t, sbom)

	ola, gg := olaregHost(t), ggcrHost(t)
	dir := t.TempDir()
	places := []string{
		ola + "/nodes/a:v1",                           // referrers API
		ola + "/other/c:v1",                           // same registry, other repo: mounts
		gg + "/nodes/b:v1",                            // tag fallback
		"oci:" + filepath.Join(dir, "layout") + ":v1", // layout
		"store:nodes:v1",                              // store
	}
	parse := func(s string) Reference {
		r, err := ParseReference(s, ParseOptions{StoreDir: filepath.Join(dir, "store")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := parse(places[0])
	res, err := Push(ctx, first, idx, []Artifact{sbom}, insecure())
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.Digest.String() != want || res.BlobsUploaded != res.Blobs || len(res.Referrers) != 1 {
		t.Fatalf("push: %+v", res)
	}
	for i := 1; i < len(places); i++ {
		src, dst := parse(places[i-1]), parse(places[i])
		t.Run(fmt.Sprintf("%s->%s", src, dst), func(t *testing.T) {
			var mu sync.Mutex
			var uploadedEvents int64
			o := insecure()
			o.Progress = func(e progress.Event) {
				if e.Finished && !e.Skipped {
					mu.Lock()
					uploadedEvents += e.Done
					mu.Unlock()
				}
			}
			res, err := Copy(ctx, src, dst, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Descriptor.Digest.String(); got != want {
				t.Fatalf("copied digest %s, want %s", got, want)
			}
			if uploadedEvents != res.Uploaded {
				t.Errorf("progress reported %d bytes uploaded, result %d", uploadedEvents, res.Uploaded)
			}
			d, err := Referrers(ctx, dst, "", insecure())
			if err != nil {
				t.Fatal(err)
			}
			if len(d) != 1 || d[0].Digest.String() != wantSBOM || d[0].ArtifactType != "application/spdx+json" {
				t.Fatalf("referrers at %s: %+v", dst, d)
			}
			if i == 1 && res.BlobsMounted != res.Blobs {
				t.Errorf("copy within one registry mounted nothing: %+v", res)
			}
			// Copying again moves nothing.
			again, err := Copy(ctx, src, dst, insecure())
			if err != nil {
				t.Fatal(err)
			}
			if again.Uploaded != 0 || again.BlobsSkipped != again.Blobs {
				t.Errorf("second copy uploaded %d bytes: %+v", again.Uploaded, again)
			}
		})
	}
}

// TestPushUploadsOnlyChanges measures, with a counting proxy, that re-pushing
// an unchanged image sends no blob bytes and that bumping one layer sends
// only that layer.
func TestPushUploadsOnlyChanges(t *testing.T) {
	ctx := ctxT(t)
	proxy := &countingProxy{target: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	host := testHost(t, proxy)
	ref := MustParse(host + "/nodes/k8s:v1")

	base := ociImage(t, 4096, 2)
	sbom := sbomFor(t, base)
	if _, err := Push(ctx, ref, base, []Artifact{sbom}, insecure()); err != nil {
		t.Fatal(err)
	}
	first := proxy.uploaded.Load()
	if first == 0 {
		t.Fatal("first push uploaded nothing")
	}

	proxy.uploaded.Store(0)
	res, err := Push(ctx, ref, base, []Artifact{sbom}, insecure())
	if err != nil {
		t.Fatal(err)
	}
	if n := proxy.uploaded.Load(); n != 0 || res.Uploaded != 0 {
		t.Fatalf("re-push sent %d blob bytes (result says %d)", n, res.Uploaded)
	}
	// Bump the last layer (a "Kubernetes patch release").
	layers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bumped, err := random.Layer(4096, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(ociImageFrom(t, layers[:1]), bumped)
	if err != nil {
		t.Fatal(err)
	}
	proxy.uploaded.Store(0)
	res, err = Push(ctx, MustParse(host+"/nodes/k8s:v2"), img, nil, insecure())
	if err != nil {
		t.Fatal(err)
	}
	size, err := bumped.Size()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := size + int64(len(cfg))
	if n := proxy.uploaded.Load(); n != wantBytes || res.Uploaded != wantBytes || res.BlobsUploaded != 2 {
		t.Fatalf("bumped push sent %d bytes (result %d, %d blobs), want the new layer and config: %d", n, res.Uploaded, res.BlobsUploaded, wantBytes)
	}
}

func ociImageFrom(t *testing.T, layers []v1.Layer) v1.Image {
	t.Helper()
	img := ociImage(t, 0, 0)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestCopyLegacyCosignTags copies cosign's sha256-<hex>.sig tag along.
func TestCopyLegacyCosignTags(t *testing.T) {
	ctx := ctxT(t)
	src := MustParse(ggcrHost(t) + "/nodes/a:v1")
	img := ociImage(t, 512, 1)
	if _, err := Push(ctx, src, img, nil, insecure()); err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	sig := ociImage(t, 64, 1)
	sigTag := src.WithTag(store.FallbackTag(h) + ".sig")
	if _, err := Push(ctx, sigTag, sig, nil, insecure()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := MustParse("oci:" + dir + ":v1")
	res, err := Copy(ctx, src, dst, insecure())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Referrers) != 1 || res.Referrers[0].Digest.String() != digestOf(t, sig) {
		t.Fatalf("referrers copied: %+v", res.Referrers)
	}
	got, _, err := Get(ctx, MustParse("oci:"+dir+":"+sigTag.Tag), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d.String() != digestOf(t, sig) {
		t.Fatalf("signature tag names %s", d)
	}
	// And on to another registry, where it is a tag again.
	dst2 := MustParse(olaregHost(t) + "/nodes/b:v1")
	if _, err := Copy(ctx, dst, dst2, insecure()); err != nil {
		t.Fatal(err)
	}
	tags, err := listTagsForTest(t, dst2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags, sigTag.Tag) {
		t.Fatalf("tags at %s: %v", dst2, tags)
	}
}

func listTagsForTest(t *testing.T, ref Reference) ([]string, error) {
	e, err := Open(ctxT(t), ref, insecure(), false)
	if err != nil {
		return nil, err
	}
	return e.Tags(ctxT(t))
}

// TestConcurrentReferrersFallback adds referrers from many clients at once on
// a registry without the referrers API; the fallback index keeps them all.
func TestConcurrentReferrersFallback(t *testing.T) {
	concurrentReferrers(t, ggcrHost(t), 12)
}

// concurrentReferrers pushes an image to host and n referrers of it at
// once, each from its own connection, and checks that none is lost (on a
// registry without the referrers API they all rewrite one fallback tag).
// It returns the image's reference by digest.
func concurrentReferrers(t *testing.T, host string, n int) Reference {
	ctx := ctxT(t)
	ref := MustParse(host + "/nodes/a:v1")
	img := ociImage(t, 512, 1)
	res, err := Push(ctx, ref, img, nil, insecure())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	want := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			e, err := Open(ctx, ref, insecure(), true)
			if err != nil {
				errs[i] = err
				return
			}
			d, err := records.Push(ctx, e, "application/vnd.test.note", res.Descriptor, "application/json", fmt.Appendf(nil, `{"n":%d}`, i), nil)
			want[i], errs[i] = d.Digest.String(), err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pinned := ref.WithDigest(res.Descriptor.Digest.String())
	got, err := Referrers(ctx, pinned, "application/vnd.test.note", insecure())
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, d := range got {
		have = append(have, d.Digest.String())
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Errorf("referrer %s lost (%d of %d kept)", w, len(have), n)
		}
	}
	return pinned
}

func TestCopyMissingSource(t *testing.T) {
	_, err := Copy(ctxT(t), MustParse(ggcrHost(t)+"/nodes/none:v1"), MustParse("oci:"+t.TempDir()), insecure())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// TestCopyCorruptLocalBlob: a blob that no longer matches its digest in a
// source layout is refused by a layout destination (DigestError) and by a
// registry destination (which checks every upload), and no tag is written.
func TestCopyCorruptLocalBlob(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	src := MustParse("oci:" + filepath.Join(dir, "src") + ":v1")
	img := ociImage(t, 4096, 1)
	if _, err := Write(ctx, src, img, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	p := filepath.Join(dir, "src", "blobs", "sha256", ld.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Copy(ctx, src, MustParse("oci:"+filepath.Join(dir, "dst")+":v1"), Options{})
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("layout to layout: %v", err)
	}
	reg := MustParse(ggcrHost(t) + "/nodes/a:v1")
	if _, err := Copy(ctx, src, reg, insecure()); err == nil {
		t.Fatal("registry accepted a corrupt blob")
	}
	if _, _, err := Get(ctx, reg, insecure()); err == nil {
		t.Fatal("tag written after a failed copy")
	}
}
