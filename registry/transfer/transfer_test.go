package transfer_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/remote"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/transfer"
)

func desc(t *testing.T, a partial.Describable) v1.Descriptor {
	t.Helper()
	d, err := partial.Descriptor(a)
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

// graph is an index of two platform images sharing a layer, with referrers
// at every depth: of the index, of one platform image, and of a referrer.
func graph(t *testing.T) (*store.Memory, []v1.Descriptor) {
	t.Helper()
	shared := testenv.Image(t, 2048, 1)
	sharedLayers, _ := shared.Layers()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var images []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img := testenv.Image(t, 1024, 1, sharedLayers...)
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	sbom := testenv.Referrer(t, desc(t, idx), "application/spdx+json")
	sig := testenv.Referrer(t, desc(t, images[1]), "application/vnd.dev.cosign.simplesigning.v1+json")
	sigOfSBOM := testenv.Referrer(t, desc(t, sbom), "application/vnd.dev.cosign.simplesigning.v1+json")
	m, err := store.NewMemory(idx, []store.Artifact{sbom, sig, sigOfSBOM})
	if err != nil {
		t.Fatal(err)
	}
	return m, []v1.Descriptor{desc(t, sbom), desc(t, sig), desc(t, sigOfSBOM)}
}

func layout(t *testing.T) store.Store {
	t.Helper()
	l, err := store.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l.Store("", "")
}

func repo(t *testing.T, host, name string) *remote.Repository {
	t.Helper()
	r, err := remote.Open(t.Context(), reference.MustParse(host+"/"+name), remote.Options{Insecure: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// digests are the digests of ds, sorted.
func digests(ds []v1.Descriptor) []string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Digest.String())
	}
	slices.Sort(s)
	return s
}

// A graph with its referrers at every depth goes from memory to a layout,
// from there to a registry and across repositories of it, arriving whole
// each time; what the destination has is not sent again.
func TestCopyGraphEverywhere(t *testing.T) {
	ctx := t.Context()
	src, refs := graph(t)
	root := src.Root()
	host := fixture.Registry(t)
	var events []progress.Event
	var mu sync.Mutex
	record := progress.Func(func(e progress.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })

	oci := layout(t)
	a, b := repo(t, host, "nodes/a"), repo(t, host, "nodes/b")
	hops := []struct {
		name     string
		from, to store.Store
		o        transfer.Options
	}{
		{"memory to layout", src, oci, transfer.Options{}},
		{"layout to registry", oci, a, transfer.Options{Jobs: 2, Progress: record, Op: "upload"}},
		{"registry to registry", a, b, transfer.Options{MountFrom: "nodes/a"}},
	}
	for _, h := range hops {
		res, err := transfer.Copy(ctx, h.from, h.to, root, "v1", h.o)
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		// Index, two images, three referrers; two configs, three layers, three referrer configs and layers.
		if res.Descriptor.Digest != root.Digest || res.Manifests != 6 || res.Blobs != 11 || !slices.Equal(digests(res.Referrers), digests(refs)) {
			t.Errorf("%s: %+v", h.name, res)
		}
		if got, err := h.to.Resolve(ctx, "v1", ""); err != nil || got.Digest != root.Digest {
			t.Errorf("%s: tag v1 = %v, %v", h.name, got.Digest, err)
		}
		for _, r := range refs {
			if _, err := h.to.Manifest(ctx, r); err != nil {
				t.Errorf("%s: referrer %s missing: %v", h.name, r.Digest, err)
			}
		}
		if ds, err := h.to.Referrers(ctx, root, "application/spdx+json"); err != nil || len(ds) != 1 {
			t.Errorf("%s: the index's SBOM referrer = %v, %v", h.name, ds, err)
		}
		if h.o.MountFrom != "" && (res.BlobsMounted != res.Blobs || res.Uploaded != 0) {
			t.Errorf("%s: %s, want every blob mounted", h.name, res.Summary())
		}
		if h.o.MountFrom == "" && (res.BlobsUploaded != res.Blobs || res.Skipped != 0) {
			t.Errorf("%s: %s, want every blob sent", h.name, res.Summary())
		}
	}
	if len(events) < 11 || events[0].Op != "upload" {
		t.Errorf("progress: %d events (%+v), want one per blob at least, Op upload", len(events), events)
	}

	again, err := transfer.Copy(ctx, oci, a, root, "v1", transfer.Options{})
	if err != nil || again.Uploaded != 0 || again.BlobsSkipped != again.Blobs {
		t.Errorf("copy again: %s, %v; want every blob skipped", again.Summary(), err)
	}
}

func TestCopyWithoutReferrers(t *testing.T) {
	ctx := t.Context()
	src, _ := graph(t)
	dst := layout(t)
	res, err := transfer.Copy(ctx, src, dst, src.Root(), "v1", transfer.Options{NoReferrers: true})
	if err != nil || len(res.Referrers) != 0 || res.Manifests != 3 {
		t.Fatalf("Copy without referrers = %+v, %v", res, err)
	}
	if ds, err := dst.Referrers(ctx, src.Root(), ""); err != nil || len(ds) != 0 {
		t.Errorf("referrers at the destination: %v, %v", ds, err)
	}
}

// A source blob that does not match its digest fails the copy, and the tag
// is not written: it never names an incomplete graph.
func TestCopyCorruptSourceLeavesNoTag(t *testing.T) {
	ctx := t.Context()
	src, _ := graph(t)
	dir := t.TempDir()
	l, err := store.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	oci := l.Store("", "")
	if _, err := transfer.Copy(ctx, src, oci, src.Root(), "v1", transfer.Options{}); err != nil {
		t.Fatal(err)
	}
	// Corrupt every layer blob of the layout in place (same size).
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		raw, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 1024 {
			continue // manifests and configs
		}
		raw[0] ^= 0xff
		if err := os.WriteFile(b, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A layout hashes what it is given; a registry refuses the upload.
	for name, dst := range map[string]store.Store{"layout": layout(t), "registry": repo(t, fixture.Registry(t), "nodes/k8s")} {
		_, err = transfer.Copy(ctx, oci, dst, src.Root(), "v1", transfer.Options{})
		if err == nil || name == "layout" && !errors.Is(err, store.ErrDigestMismatch) {
			t.Errorf("Copy of corrupt blobs to a %s: %v", name, err)
		}
		if _, err := dst.Resolve(ctx, "v1", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tag after a failed copy to a %s: %v, want ErrNotFound", name, err)
		}
	}
}

// cosign's legacy tags (sha256-<hex>.sig) of the root travel with it.
func TestCopyLegacyTags(t *testing.T) {
	ctx := t.Context()
	host := testenv.ServeHTTP(t, testenv.FallbackRegistry())
	src, _ := graph(t)
	a, b := repo(t, host, "nodes/a"), repo(t, host, "nodes/b")
	if _, err := transfer.Copy(ctx, src, a, src.Root(), "v1", transfer.Options{NoReferrers: true}); err != nil {
		t.Fatal(err)
	}
	sig := testenv.Image(t, 128, 1)
	sigMem, err := store.NewMemory(sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := store.FallbackTag(src.Root().Digest) + ".sig"
	if _, err := transfer.Copy(ctx, sigMem, a, sigMem.Root(), legacy, transfer.Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Copy(ctx, a, b, src.Root(), "v1", transfer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Resolve(ctx, legacy, ""); err != nil || got.Digest != sigMem.Root().Digest {
		t.Errorf("legacy tag %s at the destination = %v, %v", legacy, got.Digest, err)
	}
	if !slices.ContainsFunc(res.Referrers, func(d v1.Descriptor) bool { return d.Digest == sigMem.Root().Digest }) {
		t.Errorf("Result.Referrers %v lacks the legacy signature", digests(res.Referrers))
	}
}

func TestJobs(t *testing.T) {
	for n, want := range map[int]int{-1: 4, 0: 4, 1: 1, 16: 16} {
		if got := transfer.Jobs(n); got != want {
			t.Errorf("Jobs(%d) = %d, want %d", n, got, want)
		}
	}
}
