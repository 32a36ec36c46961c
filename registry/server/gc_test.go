package server

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// age sets the modification time of every blob under root to 2 h ago.
func age(t *testing.T, root string) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Base(filepath.Dir(filepath.Dir(p))) == blobsDir {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

func blobExists(root, repo string, h v1.Hash) bool {
	_, err := os.Stat(filepath.Join(root, repo, blobsDir, h.Algorithm, h.Hex))
	return err == nil
}

func TestGCRemovesOnlyUnreferencedBlobs(t *testing.T) {
	root := t.TempDir()
	s, host := start(t, root, WithDelete(true))
	ctx := context.Background()
	imgA, imgB := randomImage(t, 1024, 2), randomImage(t, 1024, 2)
	for tag, img := range map[string]v1.Image{"a": imgA, "b": imgB} {
		if err := remote.Write(ref(t, host, "gc/repo:"+tag), img); err != nil {
			t.Fatal(err)
		}
	}
	sbom := artifact(t, imgA, `{"sbom":true}`)
	if err := remote.Write(ref(t, host, "gc/repo@"+digestOf(t, sbom).String()), sbom); err != nil {
		t.Fatal(err)
	}
	orphan := static.NewLayer([]byte("nobody references me"), types.OCILayer)
	if err := remote.WriteLayer(ref(t, host, "gc/repo:x").Context(), orphan); err != nil {
		t.Fatal(err)
	}
	orphanDigest := digestOf(t, orphan)

	// Young: kept by the grace period.
	res, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 {
		t.Errorf("gc removed young blobs: %+v", res.Removed)
	}

	age(t, root)
	res, err = s.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Digest != orphanDigest.String() || res.BytesFreed != 20 {
		t.Errorf("dry run = %+v, want only the orphan %s (20 bytes)", res, orphanDigest)
	}
	if !blobExists(root, "gc/repo", orphanDigest) {
		t.Error("dry run removed the orphan")
	}

	res, err = s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0] != (RemovedBlob{Repo: "gc/repo", Digest: orphanDigest.String(), Size: 20}) {
		t.Errorf("gc = %+v, want only the orphan", res.Removed)
	}
	if blobExists(root, "gc/repo", orphanDigest) {
		t.Error("orphan still on disk")
	}
	verifyTag(t, ref(t, host, "gc/repo:a"))
	verifyTag(t, ref(t, host, "gc/repo:b"))
	verifyTag(t, ref(t, host, "gc/repo@"+digestOf(t, sbom).String()))

	// Deleting b's manifest makes its blobs garbage; a's and the sbom stay.
	if err := remote.Delete(ref(t, host, "gc/repo@"+digestOf(t, imgB).String())); err != nil {
		t.Fatal(err)
	}
	res, err = s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := imgB.Layers()
	cfg, _ := imgB.ConfigName()
	if want := len(layers) + 2; len(res.Removed) != want {
		t.Errorf("gc after deleting b removed %d blobs, want %d (manifest, config, layers): %+v", len(res.Removed), want, res.Removed)
	}
	if blobExists(root, "gc/repo", cfg) || blobExists(root, "gc/repo", digestOf(t, imgB)) {
		t.Error("b's config or manifest survived gc")
	}
	verifyTag(t, ref(t, host, "gc/repo:a"))
	verifyRoot(t, root)
}

// A client that found a blob with HEAD and references it a moment later
// must not lose it to a gc in between, although it is old and unreferenced.
func TestGCKeepsBlobsJustChecked(t *testing.T) {
	root := t.TempDir()
	s, host := start(t, root, WithDelete(true))
	img := randomImage(t, 1024, 2)
	r := ref(t, host, "keep/repo:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref(t, host, "keep/repo@"+digestOf(t, img).String())); err != nil {
		t.Fatal(err)
	}
	age(t, root)
	layers, _ := img.Layers()
	cfg, _ := img.ConfigName()
	blobs := []v1.Hash{cfg}
	for _, l := range layers {
		blobs = append(blobs, digestOf(t, l))
	}
	for _, h := range blobs {
		resp, err := http.Head("http://" + host + "/v2/keep/repo/blobs/" + h.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD %s: %d", h, resp.StatusCode)
		}
	}
	res, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Digest != digestOf(t, img).String() {
		t.Errorf("gc removed %+v, want only the deleted manifest", res.Removed)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("re-push after HEAD and gc: %v", err)
	}
	verifyTag(t, r)
}

// gc running in a loop beside pushes loses nothing that was pushed.
func TestGCDuringPushes(t *testing.T) {
	root := t.TempDir()
	s, host := start(t, root)
	stale := static.NewLayer([]byte("stale"), types.OCILayer)
	if err := remote.WriteLayer(ref(t, host, "busy/repo:x").Context(), stale); err != nil {
		t.Fatal(err)
	}
	age(t, root)
	want := map[string]v1.Hash{}
	imgs := make([]v1.Image, 12)
	for i := range imgs {
		imgs[i] = randomImage(t, 512, 2)
		want[fmt.Sprintf("v%d", i)] = digestOf(t, imgs[i])
	}
	stop := make(chan struct{})
	var gcErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
				gcErr = err
				return
			}
		}
	})
	var pushErr error
	for i, img := range imgs {
		if err := remote.Write(ref(t, host, fmt.Sprintf("busy/repo:v%d", i)), img); err != nil {
			pushErr = err
			break
		}
	}
	close(stop)
	wg.Wait()
	if pushErr != nil || gcErr != nil {
		t.Fatalf("push: %v, gc: %v", pushErr, gcErr)
	}
	checkTags(t, host, "busy/repo", want)
	if blobExists(root, "busy/repo", digestOf(t, stale)) {
		t.Error("the stale orphan survived the gc loop")
	}
}

func TestGCRemovesLeftovers(t *testing.T) {
	root := t.TempDir()
	s, host := start(t, root)
	if err := remote.Write(ref(t, host, "left/over:v1"), randomImage(t, 256, 1)); err != nil {
		t.Fatal(err)
	}
	// A request that died with its process left its staging directory.
	stale := filepath.Join(root, metaDir, "staging", stagingPrefix("left/over")+"0123")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, indexFile), make([]byte, 50), 0o644)
	dead := filepath.Join(root, metaDir, "uploads", "deadbeef")
	os.MkdirAll(filepath.Join(dead, "r", uploadsDir), 0o755)
	os.WriteFile(filepath.Join(dead, ".owner"), nil, 0o644)
	os.WriteFile(filepath.Join(dead, "r", uploadsDir, "upload.1"), make([]byte, 100), 0o644)
	res, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".prebake/staging/left%2Fover~0123", ".prebake/uploads/deadbeef"}
	if !reflect.DeepEqual(res.Leftovers, want) || res.BytesFreed != 150 {
		t.Errorf("gc = %+v, want leftovers %q (150 bytes)", res, want)
	}
	for _, d := range []string{dead, stale} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s still there", d)
		}
	}
	verifyTag(t, ref(t, host, "left/over:v1"))
	if _, err := os.Stat(s.upRoot); err != nil {
		t.Errorf("gc removed the live upload root: %v", err)
	}
}
