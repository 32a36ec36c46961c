package builder_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
)

// pushIndex pushes a two-platform (linux/amd64, linux/arm64) index of random
// images to ref and returns its digest and the children's digests by arch.
func pushIndex(t *testing.T, ref string) (string, map[string]string) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	children := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		children[arch] = d.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), children
}

func imagesRecipe(t *testing.T, host, pauseDigest, corednsDigest string) *recipes.Resolved {
	t.Helper()
	y := `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: images-test, version: "1"}
platforms: [linux/amd64, linux/arm64]
epoch: 1767225600
components:
  - name: kernel
    kernel: {modules: [overlay]}
  - name: images
    images:
      - ref: ` + host + `/pause:3.10.1
        digest: ` + pauseDigest + `
      - ref: ` + host + `/coredns/coredns:v1.12.1
        digest: ` + corednsDigest + `
`
	r, err := recipes.Parse("recipe.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(recipes.ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// layerFiles reads the regular files and symlinks of one layer.
func layerFiles(t *testing.T, l v1.Layer) map[string][]byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: mode %o, owner %d:%d", p, h.Mode, h.Uid, h.Gid)
			}
			b, _ := io.ReadAll(tr)
			out[p] = b
		case tar.TypeSymlink:
			out[p] = []byte("-> " + h.Linkname)
		}
	}
}

func TestImagesComponent(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pauseDigest, pauseChildren := pushIndex(t, host+"/pause:3.10.1")
	corednsDigest, corednsChildren := pushIndex(t, host+"/coredns/coredns:v1.12.1")
	res := imagesRecipe(t, host, pauseDigest, corednsDigest)

	build := func() *builder.Result {
		f, err := fetch.New(fetch.WithCacheDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := builder.Build(t.Context(), res, builder.Options{Fetcher: f})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	result := build()
	again := build()
	d1, _ := result.Index.Digest()
	d2, _ := again.Index.Digest()
	if d1 != d2 {
		t.Errorf("two builds with fresh caches: %s and %s", d1, d2)
	}

	// The SBOM lists each image per platform with its digest.
	sbomLayers, err := result.SBOM.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := sbomLayers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	sbom, _ := io.ReadAll(rc)
	rc.Close()
	for _, w := range []string{`"name": "` + host + `/pause:3.10.1"`, `"checksumValue": "` + strings.TrimPrefix(corednsDigest, "sha256:") + `"`, "platform linux/arm64"} {
		if !strings.Contains(string(sbom), w) {
			t.Errorf("SBOM lacks %s", w)
		}
	}

	var skopeo string
	if !testing.Short() {
		skopeo = testenv.Tool(t, "skopeo")
	}
	for _, p := range result.Platforms {
		arch := strings.TrimPrefix(p.Platform, "linux/")
		layers, err := p.Image.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s: %d layers, %v", p.Platform, len(layers), err)
		}
		files := layerFiles(t, layers[1])
		unit := string(files["/etc/systemd/system/prebake-images.service"])
		for _, w := range []string{"Before=kubelet.service", "After=containerd.service",
			"ctr -n k8s.io images import /var/lib/prebake/images/" + strings.ReplaceAll(host, ":", "_") + "_pause_3.10.1.tar & p0=$$!"} {
			if !strings.Contains(unit, w) {
				t.Errorf("%s: unit lacks %q:\n%s", p.Platform, w, unit)
			}
		}
		if got := string(files["/etc/systemd/system/multi-user.target.wants/prebake-images.service"]); got != "-> /etc/systemd/system/prebake-images.service" {
			t.Errorf("%s: enable link %q", p.Platform, got)
		}
		for _, im := range []struct{ ref, child string }{
			{host + "/pause:3.10.1", pauseChildren[arch]},
			{host + "/coredns/coredns:v1.12.1", corednsChildren[arch]},
		} {
			path := recipes.ImagesDir + "/" + recipes.ImageArchiveName(im.ref)
			b, ok := files[path]
			if !ok {
				t.Errorf("%s: no %s in the images layer", p.Platform, path)
				continue
			}
			file := filepath.Join(t.TempDir(), "image.tar")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// index.json names the image for ctr import.
			idx := archiveIndex(t, b)
			if len(idx.Manifests) != 1 || idx.Manifests[0].Digest.String() != im.child ||
				idx.Manifests[0].Annotations["io.containerd.image.name"] != im.ref {
				t.Errorf("%s %s: index.json %+v, want %s named %s", p.Platform, im.ref, idx.Manifests, im.child, im.ref)
			}
			if skopeo == "" {
				continue
			}
			out, err := exec.Command(skopeo, "inspect", "oci-archive:"+file).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo inspect oci-archive:%s: %v\n%s", file, err, out)
			}
			var got struct{ Digest, Architecture, Os string }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.Digest != im.child || got.Architecture != arch || got.Os != "linux" {
				t.Errorf("%s %s: skopeo sees %+v, want %s %s", p.Platform, im.ref, got, im.child, arch)
			}
		}
	}

	// A digest the registry does not have fails the build, naming the image.
	missing := "sha256:" + strings.Repeat("0", 64)
	f, _ := fetch.New(fetch.WithCacheDir(t.TempDir()))
	_, err = builder.Build(t.Context(), imagesRecipe(t, host, pauseDigest, missing), builder.Options{Fetcher: f})
	if err == nil || !strings.Contains(err.Error(), host+"/coredns/coredns:v1.12.1@"+missing) {
		t.Errorf("missing digest: %v", err)
	}
	// A single-platform image of the wrong architecture is refused.
	_, err = builder.Build(t.Context(), imagesRecipe(t, host, pauseChildren["arm64"], corednsDigest), builder.Options{Fetcher: f})
	if err == nil || !strings.Contains(err.Error(), "the image is for linux/arm64, not linux/amd64") {
		t.Errorf("wrong platform: %v", err)
	}
}

func archiveIndex(t *testing.T, b []byte) v1.IndexManifest {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(string(b)))
	var names []string
	var idx v1.IndexManifest
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "index.json" {
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("archive entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	return idx
}

// The archives import into a real containerd with the command the unit
// runs (every `ctr -n k8s.io images import FILE` at once), under the image's
// reference; a missing archive fails the unit.
func TestImagesImportIntoContainerd(t *testing.T) {
	containerd, ctr := testenv.Tool(t, "containerd"), testenv.Tool(t, "ctr")
	testenv.Root(t, "containerd")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pauseDigest, pauseChildren := pushIndex(t, host+"/pause:3.10.1")
	corednsDigest, corednsChildren := pushIndex(t, host+"/coredns/coredns:v1.12.1")
	res := imagesRecipe(t, host, pauseDigest, corednsDigest)
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	result, err := builder.Build(t.Context(), res, builder.Options{Fetcher: f})
	if err != nil {
		t.Fatal(err)
	}
	arch := runtime.GOARCH
	var files map[string][]byte
	for _, p := range result.Platforms {
		if p.Platform == "linux/"+arch {
			layers, _ := p.Image.Layers()
			files = layerFiles(t, layers[1])
		}
	}
	if files == nil {
		t.Fatalf("the recipe builds no image for linux/%s (this machine's)", arch)
	}

	dir, err := os.MkdirTemp("", "ctrd-") // short: the socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sock")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(`version = 2
root = "`+dir+`/root"
state = "`+dir+`/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "`+sock+`"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(containerd, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		ready = exec.Command(ctr, "--address", sock, "version").Run() == nil
		if !ready {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ready {
		t.Fatalf("containerd did not start:\n%s", logs.String())
	}
	// The unit's own command, as systemd would run it: its archives under a
	// copy of the images directory, ctr pointed at this containerd.
	script := importScript(t, string(files["/etc/systemd/system/"+recipes.ImagesUnit]))
	images := filepath.Join(dir, "images")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{images, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "ctr"), []byte("#!/bin/sh\nexec "+ctr+" --address "+sock+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runUnit := func() ([]byte, error) {
		c := exec.Command("/bin/sh", "-ec", strings.ReplaceAll(script, recipes.ImagesDir, images))
		c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		return c.CombinedOutput()
	}
	// One archive missing: the unit fails, though the other import succeeds.
	if out, err := runUnit(); err == nil {
		t.Fatalf("the import unit succeeded with no archives on disk:\n%s", out)
	}
	for _, ref := range []string{host + "/pause:3.10.1", host + "/coredns/coredns:v1.12.1"} {
		name := recipes.ImageArchiveName(ref)
		if err := os.WriteFile(filepath.Join(images, name), files[recipes.ImagesDir+"/"+name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runUnit(); err != nil {
		t.Fatalf("the import unit: %v\n%s\ncontainerd:\n%s", err, out, logs.String())
	}
	for _, im := range []struct{ ref, child string }{
		{host + "/pause:3.10.1", pauseChildren[arch]},
		{host + "/coredns/coredns:v1.12.1", corednsChildren[arch]},
	} {
		out, err := exec.Command(ctr, "--address", sock, "-n", "k8s.io", "images", "ls").CombinedOutput()
		if err != nil {
			t.Fatalf("ctr images ls: %v\n%s", err, out)
		}
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == im.ref && f[2] == im.child {
				found = true
			}
		}
		if !found {
			t.Errorf("containerd does not list %s at %s:\n%s", im.ref, im.child, out)
		}
	}
}

// TestImagesRegistryMirror pulls a pre-pulled image named for one registry
// from another (Options.RegistryMirrors), by the same digest.
func TestImagesRegistryMirror(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pauseDigest, _ := pushIndex(t, host+"/mirror/pause:3.10.1")
	corednsDigest, _ := pushIndex(t, host+"/mirror/coredns/coredns:v1.12.1")
	res := imagesRecipe(t, "registry.invalid", pauseDigest, corednsDigest)
	build := func(mirrors map[string]string) error {
		// A fresh cache each time: a cached layer would need no pull.
		f, err := fetch.New(fetch.WithCacheDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = builder.Build(t.Context(), res, builder.Options{Fetcher: f, RegistryMirrors: mirrors})
		return err
	}
	if err := build(map[string]string{"registry.invalid": host + "/mirror"}); err != nil {
		t.Fatal(err)
	}
	// Without the mirror the named registry is asked (and cannot answer).
	err := build(nil)
	if err == nil || !strings.Contains(err.Error(), "registry.invalid/pause") {
		t.Fatalf("without the mirror: %v", err)
	}
	// A mirror serving other content under the tag cannot substitute it: the
	// digest is the recipe's.
	pushIndex(t, host+"/other/pause:3.10.1")
	err = build(map[string]string{"registry.invalid": host + "/other"})
	if err == nil || !strings.Contains(err.Error(), "from "+host+"/other/pause") {
		t.Fatalf("mirror without the digest: %v", err)
	}
}

// TestImagesOffline: an offline build pulls images only from a registry
// mirror (a local one), and names the registry when it has none, without
// asking it.
func TestImagesOffline(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pauseDigest, _ := pushIndex(t, host+"/mirror/pause:3.10.1")
	corednsDigest, _ := pushIndex(t, host+"/mirror/coredns/coredns:v1.12.1")
	// The named registry must not be asked: it records any request.
	var asked atomic.Int32
	named := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1); http.NotFound(w, r) }))
	defer named.Close()
	res := imagesRecipe(t, strings.TrimPrefix(named.URL, "http://"), pauseDigest, corednsDigest)
	build := func(mirrors map[string]string) error {
		f, err := fetch.New(fetch.WithCacheDir(t.TempDir()), fetch.WithOffline(true))
		if err != nil {
			t.Fatal(err)
		}
		_, err = builder.Build(t.Context(), res, builder.Options{Fetcher: f, RegistryMirrors: mirrors, Offline: true})
		return err
	}
	err := build(nil)
	if !errors.Is(err, builder.ErrOfflineImage) || !strings.Contains(err.Error(), "--mirror "+strings.TrimPrefix(named.URL, "http://")+"=") {
		t.Fatalf("offline without a mirror: %v", err)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("offline: the named registry was asked %d times", n)
	}
	if err := build(map[string]string{strings.TrimPrefix(named.URL, "http://"): host + "/mirror"}); err != nil {
		t.Fatalf("offline with a local mirror: %v", err)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("offline with a mirror: the named registry was asked %d times", n)
	}
}

// importScript is the shell script of the images unit's ExecStart, with
// systemd's $$ escapes undone.
func importScript(t *testing.T, unit string) string {
	t.Helper()
	for _, line := range strings.Split(unit, "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart=/bin/sh -ec '"); ok && strings.HasSuffix(rest, "'") {
			return strings.ReplaceAll(strings.TrimSuffix(rest, "'"), "$$", "$")
		}
	}
	t.Fatalf("no ExecStart=/bin/sh -ec '…' in the unit:\n%s", unit)
	return ""
}
