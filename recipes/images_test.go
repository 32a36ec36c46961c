package recipes

import (
	"strings"
	"testing"
)

const imagesRecipe = `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: images}
variables: {pause: "3.10.1"}
platforms: [linux/amd64, linux/arm64]
components:
  - name: images
    images:
      - ref: registry.k8s.io/pause:{{ .pause }}
        digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
      - ref: registry.k8s.io/coredns/coredns:v1.12.1
`

func TestImagesResolve(t *testing.T) {
	r, err := Parse("recipe.yaml", []byte(imagesRecipe))
	if err != nil {
		t.Fatal(err)
	}
	coredns := "sha256:" + strings.Repeat("2", 64)
	lock := &Lock{}
	lock.AddImage("registry.k8s.io/coredns/coredns:v1.12.1", coredns)
	res, err := r.Resolve(ResolveOptions{Lock: lock})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Builds[1].Components[0]
	want := []ResolvedImage{
		{Ref: "registry.k8s.io/pause:3.10.1", Digest: "sha256:" + strings.Repeat("1", 64), OS: "linux", Arch: "arm64", Path: "/var/lib/prebake/images/registry.k8s.io_pause_3.10.1.tar"},
		{Ref: "registry.k8s.io/coredns/coredns:v1.12.1", Digest: coredns, OS: "linux", Arch: "arm64", Path: "/var/lib/prebake/images/registry.k8s.io_coredns_coredns_v1.12.1.tar"},
	}
	if len(c.Images) != 2 || c.Images[0] != want[0] || c.Images[1] != want[1] {
		t.Fatalf("images %+v\nwant %+v", c.Images, want)
	}
	if len(c.Files) != 2 || c.Files[0].Path != "/etc/systemd/system/multi-user.target.wants/prebake-images.service" || c.Files[1].Path != "/etc/systemd/system/prebake-images.service" {
		t.Fatalf("files %+v", c.Files)
	}
	unit := c.Files[1].Content
	for _, w := range []string{"Before=kubelet.service shutdown.target", "After=containerd.service local-fs.target", "Type=oneshot",
		"DefaultDependencies=no",
		"ExecStart=/bin/sh -ec 'ctr -n k8s.io images import /var/lib/prebake/images/registry.k8s.io_pause_3.10.1.tar & p0=$$!; " +
			"ctr -n k8s.io images import /var/lib/prebake/images/registry.k8s.io_coredns_coredns_v1.12.1.tar & p1=$$!; wait $$p0; wait $$p1'\n"} {
		if !strings.Contains(unit, w) {
			t.Errorf("unit lacks %q:\n%s", w, unit)
		}
	}

	// Locked: every image must be in the lock; without a digest anywhere it is an error.
	_, err = r.Resolve(ResolveOptions{Lock: lock, Locked: true})
	if err == nil || !strings.Contains(err.Error(), "image registry.k8s.io/pause:3.10.1 is not in the lock file (--locked)") {
		t.Errorf("locked: %v", err)
	}
	_, err = r.Resolve(ResolveOptions{})
	if err == nil || !strings.Contains(err.Error(), "recipe.yaml:11:9: components[0].images[1].digest: missing digest for image registry.k8s.io/coredns/coredns:v1.12.1") {
		t.Errorf("no digest: %v", err)
	}
	lock.AddImage("registry.k8s.io/pause:3.10.1", coredns)
	_, err = r.Resolve(ResolveOptions{Lock: lock})
	if err == nil || !strings.Contains(err.Error(), "differs from the lock file's") {
		t.Errorf("inline digest disagreeing with the lock: %v", err)
	}
}

func TestImagesBad(t *testing.T) {
	bad := `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: images}
platforms: [linux/amd64]
components:
  - name: a
    images:
      - ref: pause
        digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
      - ref: registry.k8s.io/pause:3.10
        digest: md5:abc
  - name: b
    images:
      - ref: registry.k8s.io/pause:3.10
        digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
      - ref: registry.k8s.io/pause:3.10
        digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
`
	r, err := Parse("recipe.yaml", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(ResolveOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		`components[0].images[0].ref: "pause" is not an image reference with registry and tag`,
		`components[0].images[1].digest: digest must be sha256:`,
		`components[1].images: destination /etc/systemd/system/prebake-images.service is also installed by components[0].images`,
		`components[1].images[1].ref: image registry.k8s.io/pause:3.10 is also listed at components[1].images[0]`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if _, err := ParseLock("lock.yaml", []byte("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources: []\nimages:\n  - ref: a/b:c\n    digest: sha256:xyz\n")); err == nil || !strings.Contains(err.Error(), "images[0].digest") {
		t.Errorf("lock with a bad image digest: %v", err)
	}
}
