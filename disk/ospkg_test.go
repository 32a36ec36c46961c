package disk

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/prebake/prebake/ospkg"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// dpkgFixture is /var/lib/dpkg/status of a real Debian 12 root
// (hack/debroot.sh): iptables is installed, conntrack and socat are not.
const dpkgFixture = "../ospkg/testdata/bookworm-minbase.status"

// declaringImage is a node image whose manifest declares osPackages.
func declaringImage(t *testing.T, pkgs string) registry.Reference {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t,
		entry{Name: "usr/", Type: tar.TypeDir},
		entry{Name: "usr/local/", Type: tar.TypeDir},
		entry{Name: "usr/local/bin/", Type: tar.TypeDir},
		entry{Name: "usr/local/bin/kubelet", Body: "#!/bin/sh\n", Mode: 0o755},
	))
	if err != nil {
		t.Fatal(err)
	}
	return inLayout(t, mutate.Annotations(img, map[string]string{recipes.AnnotationOSPackages: pkgs}).(v1.Image))
}

// debianBase is fakeBase with a real dpkg database, plus extra stanzas.
func debianBase(t *testing.T, extra string) string {
	t.Helper()
	base := fakeBase(t, true)
	raw, err := os.ReadFile(dpkgFixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, ospkg.DpkgStatus), append(raw, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestExportChecksOSPackages(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "node.raw")
	ref := declaringImage(t, "conntrack,iptables,socat")
	base := debianBase(t, "")

	// The base lacks conntrack and socat: a directory, a tarball and an
	// image base all fail naming them, before anything is written.
	tarBase := filepath.Join(t.TempDir(), "base.tar")
	if _, err := writeTar(tarBase, func(tw *tar.Writer) error { return tarDir(context.Background(), base, tw) }); err != nil {
		t.Fatal(err)
	}
	il, err := writeTar(filepath.Join(t.TempDir(), "image.tar"), func(tw *tar.Writer) error { return tarDir(context.Background(), base, tw) })
	if err != nil {
		t.Fatal(err)
	}
	// The image base's second layer has no package database: the first
	// layer's still counts.
	imageBase := ociImage(t, il, tarLayer(t, entry{Name: "etc/motd", Body: "hi\n"}))
	for _, b := range []string{base, tarBase, imageBase.String()} {
		_, err := Export(context.Background(), ref, out, Options{Base: b, Size: 64 << 20, Epoch: testEpoch})
		var me *ospkg.MissingError
		if !errors.Is(err, ospkg.ErrMissing) || !errors.As(err, &me) || !reflect.DeepEqual(me.Packages, []string{"conntrack", "socat"}) {
			t.Fatalf("base %s: err = %v, want conntrack and socat missing", b, err)
		}
		for _, w := range []string{"conntrack, socat", b, ospkg.DpkgStatus} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("a failed export left %v behind", ents)
		}
	}

	// Asked to skip, export writes the disk and warns naming them.
	res := export(t, ref, base, out, Options{SkipOSPackagesCheck: true})
	if !reflect.DeepEqual(res.OSPackages, []string{"conntrack", "iptables", "socat"}) {
		t.Errorf("OSPackages = %q", res.OSPackages)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "conntrack, socat") {
		t.Errorf("Warnings = %q, want one naming conntrack and socat", res.Warnings)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}

	// With the packages installed the check passes quietly.
	ok := debianBase(t, "\nPackage: conntrack\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.4.7-1+b2\n\nPackage: socat\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.7.4.4-2\n")
	res = export(t, ref, ok, filepath.Join(dir, "ok.raw"), Options{})
	if len(res.Warnings) != 0 {
		t.Errorf("Warnings = %q", res.Warnings)
	}

	// A base with no package database: fail (or warn when skipping).
	_, err = Export(context.Background(), ref, out+"2", Options{Base: fakeBase(t, true), Size: 64 << 20})
	if !errors.Is(err, ospkg.ErrNoDatabase) {
		t.Errorf("base without a package database: err = %v, want ErrNoDatabase", err)
	}
	// An image declaring nothing is not checked.
	export(t, nodeImage(t), fakeBase(t, true), filepath.Join(dir, "plain.raw"), Options{})
}

// TestExportRealDebianBase: the tarball mmdebstrap writes (hack/debroot.sh)
// is read as a base and its missing package named.
func TestExportRealDebianBase(t *testing.T) {
	needTools(t)
	tarball := debroot(t)
	out := filepath.Join(t.TempDir(), "node.raw")
	_, err := Export(context.Background(), declaringImage(t, "iptables,conntrack,apt"), out, Options{Base: tarball, Size: 64 << 20})
	var me *ospkg.MissingError
	if !errors.As(err, &me) || !reflect.DeepEqual(me.Packages, []string{"conntrack"}) {
		t.Fatalf("err = %v, want conntrack missing", err)
	}
	if !strings.Contains(err.Error(), tarball+":"+ospkg.DpkgStatus) {
		t.Errorf("error %q does not name the database read", err)
	}
}

// debroot returns the cached real Debian 12 root tarball, building it with
// hack/debroot.sh (mmdebstrap) when absent.
func debroot(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../hack/debroot.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/debroot.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}
