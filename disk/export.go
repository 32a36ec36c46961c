package disk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/ospkg"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// Format is the disk file format.
type Format string

// Formats Export writes.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// RootLabel is the GPT partition name (and ext4 label) of the root
// partition; the kernel command line finds it as root=PARTLABEL=prebake-root.
const RootLabel = "prebake-root"

// DefaultSize is the disk size when Options.Size is zero.
const DefaultSize = 4 << 30

// DefaultStub is systemd's EFI stub from Debian's systemd-boot-efi.
const DefaultStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// Options configure Export.
type Options struct {
	// Base is the OS root filesystem the image is applied on: a directory,
	// a tarball (plain, gzip or zstd) or an image reference. Required.
	Base string
	// Format of the output; empty means Raw.
	Format Format
	// Size of the whole disk in bytes, rounded up to a MiB; 0 means
	// DefaultSize. The root partition takes what the EFI partition leaves.
	Size int64
	// Platform picks the image of an index (of the node image and of an
	// image base), "os/arch[/variant]"; empty means linux/<this machine>.
	Platform string
	// Cmdline is appended to the kernel command line after
	// "root=PARTLABEL=prebake-root rw"; empty means "console=ttyS0,115200
	// console=tty0".
	Cmdline string
	// Epoch is the time written into the file systems (creation times, and
	// the upper bound of every file time); zero means the Unix epoch. The
	// caller passes $SOURCE_DATE_EPOCH here (prebake export does).
	Epoch time.Time
	// Stub is the EFI stub the kernel image is built on; empty means
	// DefaultStub for amd64, DefaultStubARM64 for arm64.
	Stub string
	// Registry configures reading image references.
	Registry registry.Options
	// Progress receives "unpack" and "export" events; nil is silent.
	Progress progress.Func
	// SkipOSPackagesCheck turns the check of the image's osPackages
	// against the base's package database into warnings (Result.Warnings)
	// instead of an error.
	SkipOSPackagesCheck bool
}

// Result describes a written disk.
type Result struct {
	// Image is the digest of the platform image applied (zero for a bare
	// base).
	Image v1.Hash `json:"image,omitempty"`
	// Kernel is the kernel version found in the base.
	Kernel string `json:"kernel"`
	// Size is the disk's virtual size in bytes.
	Size int64 `json:"size"`
	// Format is the file format written.
	Format Format `json:"format"`
	// Output is the file written.
	Output string `json:"output"`
	// OSPackages are the packages the image declares the base must have
	// (checked against the base's package database).
	OSPackages []string `json:"osPackages,omitempty"`
	// Warnings are problems Options asked to let pass (an unchecked or
	// failed osPackages check).
	Warnings []string `json:"warnings,omitempty"`
}

// Export writes a bootable disk to out: o.Base with the layers of the image
// ref names applied on top (registry.Unpack's rules: whiteouts, no escapes,
// no device nodes); a zero ref exports the base alone. The file appears at
// out only when complete. The same inputs and options give the same bytes.
func Export(ctx context.Context, ref registry.Reference, out string, o Options) (Result, error) {
	if o.Base == "" {
		return Result{}, fmt.Errorf("export: no base given (a directory, tarball or image reference with a kernel)")
	}
	if o.Format == "" {
		o.Format = Raw
	}
	if o.Format != Raw && o.Format != QCOW2 {
		return Result{}, fmt.Errorf("export: unknown format %q: want raw or qcow2", o.Format)
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	o.Size = (o.Size + mib - 1) / mib * mib
	tg, err := targetOf(o.Platform)
	if err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	if o.Stub == "" {
		o.Stub = tg.stub
	}
	if o.Cmdline == "" {
		o.Cmdline = "console=ttyS0,115200 console=tty0"
	}
	if o.Epoch.IsZero() {
		o.Epoch = time.Unix(0, 0)
	}
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: the disk's files keep the owners of the base and the image, which only root can set (no mounts or devices are used)", ErrNotRoot)
	}
	if err := checkTools(o); err != nil {
		return Result{}, err
	}
	out = filepath.Clean(out)
	work, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".export-*")
	if err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(work)

	res := Result{Format: o.Format, Output: out, Size: o.Size}
	var imgLayers []v1.Layer
	if ref != (registry.Reference{}) {
		img, d, err := image(ctx, ref, o)
		if err != nil {
			return res, fmt.Errorf("image %s: %w", ref, err)
		}
		if imgLayers, err = img.Layers(); err != nil {
			return res, fmt.Errorf("image %s: %w", ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return res, fmt.Errorf("image %s: %w", ref, err)
		}
		res.Image = d
		res.OSPackages = ospkg.Split(m.Annotations[recipes.AnnotationOSPackages])
	}
	o.Progress.Report(progress.Event{Op: "export", Name: "base " + o.Base})
	layers, err := baseLayers(ctx, o.Base, work, o)
	if err != nil {
		return res, err
	}
	if len(res.OSPackages) > 0 {
		o.Progress.Report(progress.Event{Op: "export", Name: "os packages"})
		if err := checkOSPackages(ctx, o.Base, layers, res.OSPackages); err != nil {
			if !o.SkipOSPackagesCheck {
				return res, fmt.Errorf("image %s on base %s: %w", ref, o.Base, err)
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("OS packages not checked as asked: %v", err))
		}
	}
	layers = append(layers, imgLayers...)
	seed, err := diskSeed(layers, o)
	if err != nil {
		return res, err
	}
	merged, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return res, err
	}
	rootDir := filepath.Join(work, "root")
	if err := registry.Unpack(ctx, merged, rootDir, registry.UnpackOptions{Progress: o.Progress}); err != nil {
		return res, err
	}
	// The tars are no longer needed; free the space before the images.
	os.Remove(filepath.Join(work, "base.tar"))

	k, err := findKernel(rootDir)
	if err != nil {
		if errors.Is(err, ErrNoKernel) {
			return res, fmt.Errorf("base %s: %w", o.Base, err)
		}
		return res, err
	}
	res.Kernel = k.version
	o.Progress.Report(progress.Event{Op: "export", Name: "kernel " + k.version})
	uki := filepath.Join(work, tg.bootFile)
	cmdline := "root=PARTLABEL=" + RootLabel + " rw " + o.Cmdline
	if err := buildUKI(ctx, rootDir, k, tg, o.Stub, cmdline, uki, o.Epoch); err != nil {
		return res, err
	}
	fi, err := os.Stat(uki)
	if err != nil {
		return res, err
	}
	lay, err := planLayout(o.Size, fi.Size())
	if err != nil {
		return res, err
	}
	if need := treeSize(rootDir); need > lay.rootBytes() {
		return res, fmt.Errorf("%w: the root file system needs about %d MiB, the root partition of a %d MiB disk has %d MiB",
			ErrTooSmall, need/mib, o.Size/mib, lay.rootBytes()/mib)
	}
	// The partitions are written straight into the disk file: the ESP is
	// small and copied in, the root file system is made in place.
	raw := filepath.Join(work, "disk.raw")
	if err := truncate(raw, lay.total*sector); err != nil {
		return res, err
	}
	o.Progress.Report(progress.Event{Op: "export", Name: "esp"})
	esp := filepath.Join(work, "esp.img")
	if err := makeESP(ctx, esp, lay.espBytes(), uki, tg.bootFile, o.Epoch, fatSerial(seed)); err != nil {
		return res, err
	}
	if err := copyInto(raw, lay.espStart*sector, esp); err != nil {
		return res, err
	}
	o.Progress.Report(progress.Event{Op: "export", Name: "root"})
	if err := makeExt4(ctx, raw, lay.rootStart*sector, lay.rootBytes(), rootDir, o.Epoch, id(seed, "ext4"), id(seed, "hash")); err != nil {
		return res, err
	}
	os.RemoveAll(rootDir)
	o.Progress.Report(progress.Event{Op: "export", Name: "disk"})
	if err := writeGPT(ctx, raw, lay, tg.rootType, seed); err != nil {
		return res, err
	}
	final := raw
	if o.Format == QCOW2 {
		final = filepath.Join(work, "disk.qcow2")
		if err := run(ctx, nil, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, final); err != nil {
			return res, err
		}
	}
	if err := syncFile(final); err != nil {
		return res, err
	}
	if err := os.Chmod(final, 0o644); err != nil {
		return res, err
	}
	if err := os.Rename(final, out); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return res, err
	}
	o.Progress.Report(progress.Event{Op: "export", Name: out, Finished: true})
	return res, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copySparse writes src into dst at off, skipping zero blocks (dst was
// truncated to size, so they read as zero already).
func copySparse(dst *os.File, off int64, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, mib)
	var pos int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// diskSeed names the disk's content: the layers' digests and the options
// that shape the bytes. The disk's GUIDs and serials derive from it, so two
// different disks do not share them and the same disk always has them.
func diskSeed(layers []v1.Layer, o Options) ([]byte, error) {
	h := sha256.New()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(h, d)
	}
	fmt.Fprintf(h, "%d\n%s\n%d\n", o.Size, o.Cmdline, o.Epoch.Unix())
	if tg, err := targetOf(o.Platform); err == nil && tg.arch != "amd64" {
		fmt.Fprintf(h, "%s\n", tg.arch)
	}
	return h.Sum(nil), nil
}
