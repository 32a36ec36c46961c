package disk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/pe"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/prebake/prebake/registry"
)

// arm64Stub returns systemd's arm64 EFI stub, fetched from Debian by
// hack/efistub.sh (cached).
func arm64Stub(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../hack/efistub.sh", "arm64")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/efistub.sh arm64: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// twoPlatformIndex is an index with an amd64 and an arm64 image, each
// marking its architecture in /etc/arch.
func twoPlatformIndex(t *testing.T) registry.Reference {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := mutate.AppendLayers(empty.Image, tarLayer(t,
			entry{Name: "etc/", Type: tar.TypeDir},
			entry{Name: "etc/arch", Body: arch + "\n"},
		))
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return inLayout(t, idx)
}

// TestExportARM64: --platform linux/arm64 picks the arm64 image of an
// index and writes \EFI\BOOT\BOOTAA64.EFI, an arm64 PE built on Debian's
// arm64 stub holding the base's kernel (decompressed, as Debian ships it
// gzipped) and initrd, with the root partition typed as an arm64 root.
func TestExportARM64(t *testing.T) {
	needTools(t, "aarch64-linux-gnu-objcopy", "mdir")
	stub := arm64Stub(t)
	base := fakeBase(t, false)
	image := bytes.Repeat([]byte("arm64 Image "), 50000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(image)
	zw.Close()
	initrd := bytes.Repeat([]byte("arm64 initrd "), 20000)
	os.WriteFile(filepath.Join(base, "boot/vmlinuz-6.1.0-99-arm64"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(base, "boot/initrd.img-6.1.0-99-arm64"), initrd, 0o644)

	out := filepath.Join(t.TempDir(), "arm64.raw")
	res := export(t, twoPlatformIndex(t), base, out, Options{Platform: "linux/arm64", Stub: stub})
	if res.Kernel != "6.1.0-99-arm64" {
		t.Errorf("kernel %q", res.Kernel)
	}
	esp := extract(t, out, "ESP")
	ls, err := exec.Command("mdir", "-b", "-i", esp, "::EFI/BOOT").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, ls)
	}
	if !strings.Contains(string(ls), "BOOTAA64.EFI") || strings.Contains(string(ls), "BOOTX64.EFI") {
		t.Errorf("ESP \\EFI\\BOOT holds %q, want BOOTAA64.EFI alone", ls)
	}
	uki := filepath.Join(t.TempDir(), "uki.efi")
	if b, err := exec.Command("mcopy", "-n", "-i", esp, "::EFI/BOOT/BOOTAA64.EFI", uki).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, b)
	}
	f, err := pe.Open(uki)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_ARM64 {
		t.Errorf("machine %#x, want arm64 (%#x)", f.Machine, pe.IMAGE_FILE_MACHINE_ARM64)
	}
	section := func(name string) []byte {
		s := f.Section(name)
		if s == nil {
			t.Fatalf("no %s section", name)
		}
		b, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if int(s.VirtualSize) < len(b) {
			b = b[:s.VirtualSize]
		}
		return b
	}
	if !bytes.Equal(section(".linux"), image) {
		t.Error(".linux is not the decompressed arm64 kernel")
	}
	if !bytes.Equal(section(".initrd"), initrd) {
		t.Error(".initrd is not the base's initrd")
	}
	if c := string(section(".cmdline")); !strings.HasPrefix(c, "root=PARTLABEL=prebake-root rw") {
		t.Errorf(".cmdline %q", c)
	}
	// The stub's own code is there: its sections come first.
	if f.Sections[0].Name != ".text" {
		t.Errorf("first section %s, want the stub's .text", f.Sections[0].Name)
	}
	info, err := exec.Command("sgdisk", "-i", "2", out).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "B921B045-1DF0-41C3-AF44-4C6F280D3FAE") {
		t.Errorf("root partition type is not Linux ARM64 root: %v\n%s", err, info)
	}
	if got := debugfs(t, extract(t, out, RootLabel), "cat /etc/arch"); !strings.HasSuffix(got, "\narm64\n") {
		t.Errorf("/etc/arch = %q, want the arm64 image's", got)
	}
	// Bad platforms are refused before anything runs.
	if _, err := Export(context.Background(), registry.Reference{}, out+"2", Options{Base: base, Platform: "linux/s390x"}); err == nil || !strings.Contains(err.Error(), "amd64 and arm64") {
		t.Errorf("s390x: err = %v", err)
	}
}
