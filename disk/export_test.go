package disk

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/registry"
)

var testEpoch = time.Unix(1700000000, 0)

// needTools makes t need what export runs (mkfs.ext4, mtools, sgdisk,
// objcopy, the EFI stub), root for the file owners, and extra tools.
func needTools(t *testing.T, extra ...string) {
	t.Helper()
	testenv.Root(t, "export writes file owners")
	if err := checkTools(Options{Stub: DefaultStub, Format: QCOW2}); err != nil {
		t.Fatal(err)
	}
	for _, c := range extra {
		testenv.Tool(t, c)
	}
}

type entry = testenv.TarEntry

func tarBytes(t *testing.T, entries ...entry) []byte { return testenv.Tar(t, entries...) }

func tarLayer(t *testing.T, entries ...entry) v1.Layer {
	raw := tarBytes(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ociImage writes an image of layers to a fresh OCI layout and returns its
// reference by digest.
func ociImage(t *testing.T, layers ...v1.Layer) registry.Reference {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return inLayout(t, img)
}

// inLayout writes a (a v1.Image or v1.ImageIndex) to a fresh OCI layout and
// returns its reference by digest.
func inLayout(t *testing.T, a interface{ Digest() (v1.Hash, error) }) registry.Reference {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	switch v := a.(type) {
	case v1.ImageIndex:
		err = p.AppendIndex(v)
	case v1.Image:
		err = p.AppendImage(v)
	default:
		t.Fatalf("inLayout: %T is neither an image nor an index", a)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return registry.MustParse("oci:" + dir + "@" + d.String())
}

// fakeBase is a tiny OS tree: a stand-in kernel and initrd (the tests do
// not boot them), os-release, and files the image changes.
func fakeBase(t *testing.T, kernel bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	for _, d := range []string{"boot", "etc/ssh", "usr/lib", "opt/old/sub", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"usr/lib/os-release":  "ID=debian\nVERSION_ID=12\n",
		"etc/hostname":        "base\n",
		"etc/gone":            "removed by a whiteout\n",
		"opt/old/a":           "hidden by an opaque whiteout\n",
		"opt/old/sub/b":       "also hidden\n",
		"etc/ssh/sshd_config": "PermitRootLogin no\n",
	}
	if kernel {
		files["boot/vmlinuz-6.1.0-99-amd64"] = strings.Repeat("kernel", 100000)
		files["boot/initrd.img-6.1.0-99-amd64"] = strings.Repeat("initrd", 50000)
		files["boot/vmlinuz-6.1.0-9-amd64"] = "older kernel"
		files["boot/initrd.img-6.1.0-9-amd64"] = "older initrd"
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "etc/ssh/sshd_config"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeImage changes the base the way a node image does: new files with
// owners and modes, a symlink, a whiteout and an opaque directory.
func nodeImage(t *testing.T) registry.Reference {
	return ociImage(t,
		tarLayer(t,
			entry{Name: "usr/", Type: tar.TypeDir},
			entry{Name: "usr/local/", Type: tar.TypeDir},
			entry{Name: "usr/local/bin/", Type: tar.TypeDir},
			entry{Name: "usr/local/bin/kubeadm", Body: "#!/bin/sh\necho kubeadm\n", Mode: 0o755},
			entry{Name: "usr/local/bin/kubeadm-link", Type: tar.TypeSymlink, Link: "kubeadm"},
			entry{Name: "etc/", Type: tar.TypeDir},
			entry{Name: "etc/.wh.gone"},
			entry{Name: "etc/kubelet.conf", Body: "secret\n", Mode: 0o640, UID: 0, GID: 4242},
			entry{Name: "etc/odd name \"quoted\".conf", Body: "debugfs quoting\n"},
			entry{Name: "var/lib/kubelet/", Type: tar.TypeDir, Mode: 0o700, UID: 1234, GID: 5678},
		),
		tarLayer(t,
			entry{Name: "opt/", Type: tar.TypeDir},
			entry{Name: "opt/old/", Type: tar.TypeDir},
			entry{Name: "opt/old/.wh..wh..opq"},
			entry{Name: "opt/old/new", Body: "from the image\n"},
			entry{Name: "usr/local/bin/setuid-tool", Body: "x", Mode: 0o4755},
		),
	)
}

// partition returns the start and size in bytes of the GPT partition
// named name, read from the disk's primary GPT.
func partition(t *testing.T, disk, name string) (int64, int64) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 512)
	if _, err := f.ReadAt(hdr, 512); err != nil {
		t.Fatal(err)
	}
	if string(hdr[:8]) != "EFI PART" {
		t.Fatalf("%s: no GPT header at LBA 1", disk)
	}
	entries := int64(binary.LittleEndian.Uint64(hdr[72:]))
	n := int(binary.LittleEndian.Uint32(hdr[80:]))
	size := int(binary.LittleEndian.Uint32(hdr[84:]))
	buf := make([]byte, n*size)
	if _, err := f.ReadAt(buf, entries*512); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e := buf[i*size : (i+1)*size]
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		got := strings.TrimRight(string(utf16.Decode(u)), "\x00")
		if got == name {
			first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
			return first * 512, (last - first + 1) * 512
		}
	}
	t.Fatalf("%s: no partition named %q", disk, name)
	return 0, 0
}

// extract copies a partition of disk to its own file.
func extract(t *testing.T, disk, name string) string {
	t.Helper()
	off, size := partition(t, disk, name)
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), name+".img")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, io.NewSectionReader(f, off, size)); err != nil {
		t.Fatal(err)
	}
	return out
}

func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", req, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", req, err, out)
	}
	return string(out)
}

func export(t *testing.T, ref registry.Reference, base, out string, o Options) Result {
	t.Helper()
	o.Base = base
	if o.Size == 0 {
		o.Size = 64 << 20
	}
	if o.Epoch.IsZero() {
		o.Epoch = testEpoch
	}
	res, err := Export(context.Background(), ref, out, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestExportRootFilesystem(t *testing.T) {
	needTools(t, "e2fsck")
	dir := t.TempDir()
	out := filepath.Join(dir, "node.raw")
	res := export(t, nodeImage(t), fakeBase(t, true), out, Options{})
	if res.Kernel != "6.1.0-99-amd64" {
		t.Errorf("kernel %q, want the newest, 6.1.0-99-amd64", res.Kernel)
	}
	root := extract(t, out, RootLabel)
	if b, err := exec.Command("e2fsck", "-fn", root).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, b)
	}
	checks := []struct {
		path string
		want []string
	}{
		{"/usr/local/bin/kubeadm", []string{"Type: regular", "Mode:  0755", "User:     0", "Group:     0"}},
		{"/usr/local/bin/setuid-tool", []string{"Mode:  04755"}},
		{"/etc/kubelet.conf", []string{"Mode:  0640", "Group:  4242"}},
		{"/var/lib/kubelet", []string{"Type: directory", "Mode:  0700", "User:  1234", "Group:  5678"}},
		{"/etc/ssh/sshd_config", []string{"Mode:  0600"}},
		{"/usr/local/bin/kubeadm-link", []string{"Type: symlink", `Fast link dest: "kubeadm"`}},
		{"/etc/os-release", []string{"Type: symlink", `Fast link dest: "../usr/lib/os-release"`}},
		{"/opt/old/new", []string{"Type: regular"}},
	}
	for _, c := range checks {
		got := debugfs(t, root, "stat "+c.path)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: want %q in\n%s", c.path, w, got)
			}
		}
		if !strings.Contains(got, "ctime: 0x6553f100:00000000") {
			t.Errorf("%s: ctime not pinned to the epoch:\n%s", c.path, got)
		}
	}
	if got := debugfs(t, root, "cat /usr/local/bin/kubeadm"); !strings.Contains(got, "echo kubeadm") {
		t.Errorf("kubeadm content: %q", got)
	}
	if got := debugfs(t, root, "ls -p /etc"); !strings.Contains(got, `/odd name "quoted".conf/`) {
		t.Errorf("file with a space and quotes in its name missing:\n%s", got)
	}
	for _, gone := range []string{"/etc/gone", "/opt/old/a", "/opt/old/sub"} {
		if got := debugfs(t, root, "stat "+gone); !strings.Contains(got, "File not found") {
			t.Errorf("%s survived its whiteout:\n%s", gone, got)
		}
	}
	// The base's kernel files stay in /boot; the EFI partition has the UKI.
	esp := extract(t, out, "ESP")
	uki := filepath.Join(t.TempDir(), "uki.efi")
	if b, err := exec.Command("mcopy", "-n", "-i", esp, "::EFI/BOOT/BOOTX64.EFI", uki).CombinedOutput(); err != nil {
		t.Fatalf("mcopy from the ESP: %v\n%s", err, b)
	}
	b, err := exec.Command("objdump", "-h", uki).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, b)
	}
	for _, s := range []string{".osrel", ".cmdline", ".linux", ".initrd"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("unified kernel image lacks section %s:\n%s", s, b)
		}
	}
	raw, _ := os.ReadFile(uki)
	if !bytes.Contains(raw, []byte("root=PARTLABEL=prebake-root rw console=ttyS0,115200")) {
		t.Error("kernel command line missing from the UKI")
	}
	if !bytes.Contains(raw, []byte(strings.Repeat("kernel", 1000))) || !bytes.Contains(raw, []byte(strings.Repeat("initrd", 1000))) {
		t.Error("the newest kernel and its initrd are not in the UKI")
	}
}

func TestExportReproducible(t *testing.T) {
	needTools(t, "qemu-img", "sgdisk")
	ref := nodeImage(t)
	dir := t.TempDir()
	// Two bases with the same content (and modification times) in
	// different places, their inodes changed at different times.
	base1 := fakeBase(t, true)
	time.Sleep(1100 * time.Millisecond)
	base2 := filepath.Join(t.TempDir(), "copy")
	if b, err := exec.Command("cp", "-a", base1, base2).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, b)
	}
	for _, f := range []Format{Raw, QCOW2} {
		a := filepath.Join(dir, "a."+string(f))
		b := filepath.Join(dir, "b."+string(f))
		export(t, ref, base1, a, Options{Format: f})
		export(t, ref, base2, b, Options{Format: f})
		ba, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if !bytes.Equal(ba, bb) {
			for i := range ba {
				if ba[i] != bb[i] {
					t.Fatalf("%s: two exports differ first at byte %d", f, i)
				}
			}
			t.Fatalf("%s: two exports differ in size", f)
		}
		if f == QCOW2 {
			out, err := exec.Command("qemu-img", "check", a).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "No errors were found") {
				t.Errorf("qemu-img check: %v\n%s", err, out)
			}
			out, err = exec.Command("qemu-img", "info", "--output=json", a).CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"format": "qcow2"`) || !strings.Contains(string(out), `"virtual-size": 67108864`) {
				t.Errorf("qemu-img info: %v\n%s", err, out)
			}
			continue
		}
		out, err := exec.Command("sgdisk", "-v", a).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
		out, err = exec.Command("sgdisk", "-p", a).CombinedOutput()
		if err != nil {
			t.Fatalf("sgdisk -p: %v\n%s", err, out)
		}
		for _, w := range []string{"EF00  ESP", "8304  prebake-root"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("sgdisk -p lacks %q:\n%s", w, out)
			}
		}
	}
	// A different image gives a different disk, with different GUIDs.
	c := filepath.Join(dir, "c.raw")
	export(t, ociImage(t, tarLayer(t, entry{Name: "x", Body: "y"})), base1, c, Options{})
	p1, _ := exec.Command("sgdisk", "-p", filepath.Join(dir, "a.raw")).Output()
	p2, _ := exec.Command("sgdisk", "-p", c).Output()
	if bytes.Equal(p1, p2) {
		t.Error("disks of different images share their GUIDs")
	}
}

func TestExportBaseWithoutKernel(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "node.raw")
	_, err := Export(context.Background(), nodeImage(t), out, Options{Base: fakeBase(t, false), Size: 64 << 20})
	if !errors.Is(err, ErrNoKernel) {
		t.Fatalf("err = %v, want ErrNoKernel", err)
	}
	for _, w := range []string{"/boot/vmlinuz-VERSION", "linux-image-amd64", "base "} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	// A kernel without its initrd is named.
	base := fakeBase(t, false)
	os.WriteFile(filepath.Join(base, "boot/vmlinuz-6.1.0-7-amd64"), []byte("k"), 0o644)
	_, err = Export(context.Background(), registry.Reference{}, out, Options{Base: base, Size: 64 << 20})
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "/boot/initrd.img-6.1.0-7-amd64") {
		t.Errorf("err = %v, want ErrNoKernel naming the missing initrd", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("a failed export left %v behind", ents)
	}
}

func TestExportTooSmall(t *testing.T) {
	needTools(t)
	base := fakeBase(t, true)
	big := make([]byte, 40<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(base, "var/lib/big"), big, 0o644)
	out := filepath.Join(t.TempDir(), "d.raw")
	_, err := Export(context.Background(), registry.Reference{}, out, Options{Base: base, Size: 48 << 20, Epoch: testEpoch})
	if !errors.Is(err, ErrTooSmall) || strings.Contains(err.Error(), "--size") {
		t.Fatalf("err = %v, want ErrTooSmall (the CLI names the flag, the library does not)", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export wrote its output")
	}
}

// TestExportBaseKinds: a tarball base (with device nodes, which are left
// out) and an image base give the same disk as the directory they hold.
func TestExportBaseKinds(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	ref := nodeImage(t)
	baseDir := fakeBase(t, true)

	// The same tree as a tarball, plus a device node and a FIFO.
	l, err := writeTar(filepath.Join(dir, "base.tar"), func(tw *tar.Writer) error {
		if err := tarDir(context.Background(), baseDir, tw); err != nil {
			return err
		}
		tw.WriteHeader(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666})
		return tw.WriteHeader(&tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600})
	})
	if err != nil {
		t.Fatal(err)
	}
	fromTar := filepath.Join(dir, "tar.raw")
	export(t, ref, l.path, fromTar, Options{})
	root := extract(t, fromTar, RootLabel)
	if got := debugfs(t, root, "stat /dev/null"); !strings.Contains(got, "File not found") {
		t.Errorf("device node copied from the base:\n%s", got)
	}
	if got := debugfs(t, root, "stat /usr/local/bin/kubeadm"); !strings.Contains(got, "Mode:  0755") {
		t.Errorf("image not applied on a tarball base:\n%s", got)
	}

	// The directory as a one-layer image in an OCI layout.
	il, err := writeTar(filepath.Join(dir, "image.tar"), func(tw *tar.Writer) error { return tarDir(context.Background(), baseDir, tw) })
	if err != nil {
		t.Fatal(err)
	}
	baseImg := ociImage(t, il)
	fromImage := filepath.Join(dir, "image.raw")
	export(t, ref, baseImg.String(), fromImage, Options{})
	root = extract(t, fromImage, RootLabel)
	if got := debugfs(t, root, "stat /etc/kubelet.conf"); !strings.Contains(got, "Group:  4242") {
		t.Errorf("image not applied on an image base:\n%s", got)
	}
	if got := debugfs(t, root, "stat /etc/hostname"); !strings.Contains(got, "Type: regular") {
		t.Errorf("base file missing on an image base:\n%s", got)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range [][2]string{{"6.1.0-9-amd64", "6.1.0-10-amd64"}, {"5.10.0-30-amd64", "6.1.0-1-amd64"}, {"6.1", "6.1.0"}} {
		if !versionLess(c[0], c[1]) || versionLess(c[1], c[0]) {
			t.Errorf("want %s < %s", c[0], c[1])
		}
	}
}
