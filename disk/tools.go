package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/klauspost/compress/gzip"
)

const (
	mib    = 1 << 20
	sector = 512
)

// tools export runs: command -> Debian package.
var tools = []struct{ cmd, pkg string }{
	{"mkfs.ext4", "e2fsprogs"},
	{"debugfs", "e2fsprogs"},
	{"mkfs.vfat", "dosfstools"},
	{"mmd", "mtools"},
	{"mcopy", "mtools"},
	{"sgdisk", "gdisk"},
}

func checkTools(o Options) error {
	var missing []string
	tg, err := targetOf(o.Platform)
	if err != nil {
		return err
	}
	if c, ok := tg.objcopyTool(); !ok {
		pkg := "binutils"
		if c != "objcopy" {
			pkg = "binutils-aarch64-linux-gnu"
		}
		missing = append(missing, c+" (Debian package "+pkg+")")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t.cmd); err != nil {
			missing = append(missing, t.cmd+" (Debian package "+t.pkg+")")
		}
	}
	if o.Format == QCOW2 {
		if _, err := exec.LookPath("qemu-img"); err != nil {
			missing = append(missing, "qemu-img (Debian package qemu-utils)")
		}
	}
	if _, err := os.Stat(o.Stub); err != nil {
		missing = append(missing, "EFI stub "+o.Stub+" (Debian package "+tg.pkg+")")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; run hack/tools.sh", ErrMissingTool, strings.Join(missing, ", "))
	}
	return nil
}

// run runs a tool with extra environment, returning its output in the
// error when it fails.
func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return fmt.Errorf("running %s: %w: %s", name, err, msg)
	}
	return nil
}

type kernel struct {
	version         string
	vmlinuz, initrd string // paths relative to the root
}

// findKernel picks the newest /boot/vmlinuz-VERSION that has a
// /boot/initrd.img-VERSION.
func findKernel(rootDir string) (kernel, error) {
	ents, err := os.ReadDir(filepath.Join(rootDir, "boot"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return kernel{}, err
	}
	var found []kernel
	var noInitrd []string
	for _, e := range ents {
		v, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok {
			continue
		}
		k := kernel{version: v, vmlinuz: "boot/" + e.Name(), initrd: "boot/initrd.img-" + v}
		if _, err := os.Stat(filepath.Join(rootDir, k.initrd)); err != nil {
			noInitrd = append(noInitrd, v)
			continue
		}
		found = append(found, k)
	}
	if len(found) == 0 {
		if len(noInitrd) > 0 {
			return kernel{}, fmt.Errorf("%w: kernel %s has no initrd: expected /boot/initrd.img-%s (install initramfs-tools in the base)", ErrNoKernel, noInitrd[0], noInitrd[0])
		}
		return kernel{}, fmt.Errorf("%w: expected /boot/vmlinuz-VERSION and /boot/initrd.img-VERSION (install a kernel package such as linux-image-amd64 in the base)", ErrNoKernel)
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].version, found[j].version) })
	return found[len(found)-1], nil
}

// versionLess compares digit runs numerically, the rest as text.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if da != db {
			na, ea := strconv.ParseUint(da, 10, 64)
			nb, eb := strconv.ParseUint(db, 10, 64)
			if ea == nil && eb == nil && na != nb {
				return na < nb
			}
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func splitRun(s string) (string, string) {
	digit := unicode.IsDigit(rune(s[0]))
	i := 1
	for i < len(s) && unicode.IsDigit(rune(s[i])) == digit {
		i++
	}
	return s[:i], s[i:]
}

// copyFromRoot copies a file of the root (symlinks resolved inside it) to
// dst.
func copyFromRoot(root *os.Root, name, dst string, mtime time.Time) error {
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return fmt.Errorf("copying /%s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, mtime, mtime)
}

// buildUKI joins stub, os-release, cmdline, kernel and initrd into one EFI
// executable with objcopy, each section placed after the previous one.
func buildUKI(ctx context.Context, rootDir string, k kernel, tg target, stub, cmdline, out string, epoch time.Time) error {
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return err
	}
	defer root.Close()
	dir := filepath.Dir(out)
	files := map[string]string{}
	osrel := filepath.Join(dir, "os-release")
	if err := copyFromRoot(root, "etc/os-release", osrel, epoch); err != nil {
		if err := copyFromRoot(root, "usr/lib/os-release", osrel, epoch); err != nil {
			return fmt.Errorf("base: reading os-release: %w", err)
		}
	}
	files[".osrel"] = osrel
	files[".cmdline"] = filepath.Join(dir, "cmdline")
	if err := os.WriteFile(files[".cmdline"], []byte(cmdline), 0o644); err != nil {
		return err
	}
	files[".linux"] = filepath.Join(dir, "vmlinuz")
	if err := copyFromRoot(root, k.vmlinuz, files[".linux"], epoch); err != nil {
		return fmt.Errorf("base: %w", err)
	}
	if tg.arch == "arm64" {
		// Debian's arm64 vmlinuz is a gzip-compressed Image; the stub
		// starts the kernel's own EFI entry point, which only the
		// uncompressed Image has.
		if err := gunzipInPlace(files[".linux"], epoch); err != nil {
			return fmt.Errorf("base: /%s: %w", k.vmlinuz, err)
		}
	}
	files[".initrd"] = filepath.Join(dir, "initrd")
	if err := copyFromRoot(root, k.initrd, files[".initrd"], epoch); err != nil {
		return fmt.Errorf("base: %w", err)
	}

	next, align, err := stubEnd(stub)
	if err != nil {
		return err
	}
	args := []string{}
	for _, s := range []string{".osrel", ".cmdline", ".linux", ".initrd"} {
		fi, err := os.Stat(files[s])
		if err != nil {
			return err
		}
		args = append(args, "--add-section", s+"="+files[s], "--change-section-vma", fmt.Sprintf("%s=%#x", s, next))
		next = alignUp(next+uint64(fi.Size()), align)
	}
	args = append(args, stub, out)
	objcopy, _ := tg.objcopyTool()
	if err := run(ctx, nil, objcopy, args...); err != nil {
		return fmt.Errorf("building the unified kernel image: %w", err)
	}
	if err := pinPETime(out, epoch); err != nil {
		return fmt.Errorf("building the unified kernel image: %w", err)
	}
	return os.Chtimes(out, epoch, epoch)
}

// stubEnd returns the first free virtual address after the stub's sections
// (image base included, as objcopy counts) and the section alignment.
func stubEnd(stub string) (uint64, uint64, error) {
	f, err := pe.Open(stub)
	if err != nil {
		return 0, 0, fmt.Errorf("EFI stub %s: %w", stub, err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return 0, 0, fmt.Errorf("EFI stub %s: not a 64-bit PE image", stub)
	}
	var end uint64
	for _, s := range f.Sections {
		if e := uint64(s.VirtualAddress) + uint64(max(s.VirtualSize, s.Size)); e > end {
			end = e
		}
	}
	// Page-aligned sections whatever the stub's own alignment (a multiple
	// of it), so the kernel and initrd start on page boundaries.
	align := max(uint64(oh.SectionAlignment), 4096)
	return alignUp(oh.ImageBase+end, align), align, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// diskLayout is the partition plan, in sectors.
type diskLayout struct {
	total                  int64
	espStart, espSectors   int64
	rootStart, rootSectors int64
}

func (l diskLayout) espBytes() int64  { return l.espSectors * sector }
func (l diskLayout) rootBytes() int64 { return l.rootSectors * sector }

// planLayout puts the EFI partition at 1 MiB, sized for the kernel image,
// and gives the rest (up to the backup GPT) to the root.
func planLayout(size, ukiSize int64) (diskLayout, error) {
	esp := (ukiSize + ukiSize/10 + 4*mib + mib - 1) / mib * mib
	esp = max(esp, 16*mib)
	l := diskLayout{total: size / sector, espStart: mib / sector, espSectors: esp / sector}
	l.rootStart = l.espStart + l.espSectors
	lastUsable := l.total - 34
	l.rootSectors = (lastUsable - l.rootStart + 1) / 8 * 8
	if l.rootSectors*sector < 16*mib {
		return l, fmt.Errorf("%w: a %d MiB disk leaves less than 16 MiB for the root after the %d MiB EFI partition", ErrTooSmall, size/mib, esp/mib)
	}
	return l, nil
}

// treeSize estimates what the tree needs in an ext4 of the given size:
// data in 4 KiB blocks, an inode each, and room for metadata.
func treeSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		n += 4096
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += (fi.Size() + 4095) / 4096 * 4096
			}
		}
		return nil
	})
	return n + n/10
}

// ids derives the disk's GUIDs and serials from seed.
func id(seed []byte, what string) [16]byte {
	h := sha256.Sum256(append(append([]byte{}, seed...), what...))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// makeESP writes a FAT file system of size bytes at p holding the kernel
// image as \EFI\BOOT\BOOTX64.EFI (the removable-media path firmware boots).
func makeESP(ctx context.Context, p string, size int64, uki, bootFile string, epoch time.Time, serial [4]byte) error {
	if err := truncate(p, size); err != nil {
		return err
	}
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null"}
	if err := run(ctx, env, "mkfs.vfat", "--invariant", "-i", fmt.Sprintf("%x", serial), "-n", "ESP", p); err != nil {
		return err
	}
	if err := run(ctx, env, "mmd", "-i", p, "::EFI", "::EFI/BOOT"); err != nil {
		return err
	}
	return run(ctx, env, "mcopy", "-m", "-i", p, uki, "::EFI/BOOT/"+bootFile)
}

func truncate(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// makeExt4 writes an ext4 file system of size bytes at offset in the file
// p from dir with mkfs.ext4 -d, then pins what mkfs took from the clock or
// the source's inode change times: every inode's ctime becomes epoch and
// its access and modification times are clamped to epoch.
func makeExt4(ctx context.Context, p string, offset, size int64, dir string, epoch time.Time, fsUUID, hashSeed [16]byte) error {
	env := []string{fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", epoch.Unix())}
	err := run(ctx, env, "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", RootLabel, "-U", uuidString(fsUUID),
		"-E", fmt.Sprintf("hash_seed=%s,root_owner=0:0,no_copy_xattrs,nodiscard,offset=%d", uuidString(hashSeed), offset),
		"-d", dir, p, strconv.FormatInt(size/4096, 10))
	if err != nil {
		if strings.Contains(err.Error(), "Could not allocate") || strings.Contains(err.Error(), "No space") {
			return fmt.Errorf("%w: %v", ErrTooSmall, err)
		}
		return err
	}
	script := filepath.Join(filepath.Dir(p), "debugfs.cmds")
	if err := timesScript(dir, script, epoch); err != nil {
		return err
	}
	// debugfs exits 0 whatever its commands did: any line on stderr but its
	// version banner is a failure.
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", script, fmt.Sprintf("%s?offset=%d", p, offset))
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running debugfs: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "debugfs ") {
			return fmt.Errorf("pinning times with debugfs: %s", l)
		}
	}
	return nil
}

// timesScript writes debugfs commands setting every inode's times.
func timesScript(dir, script string, epoch time.Time) error {
	var b bytes.Buffer
	e := epoch.Unix()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := path.Join("/", filepath.ToSlash(rel))
		if strings.ContainsAny(name, "\n\r") {
			return fmt.Errorf("%s: file names with line breaks are not supported", name)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		q := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		m := min(st.Mtim.Sec, e)
		fmt.Fprintf(&b, "set_inode_field %s ctime @%d\n", q, e)
		if st.Mtim.Sec != m || st.Mtim.Nsec != 0 {
			fmt.Fprintf(&b, "set_inode_field %s mtime @%d\n", q, m)
		}
		if st.Atim.Sec != m || st.Atim.Nsec != 0 {
			fmt.Fprintf(&b, "set_inode_field %s atime @%d\n", q, m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return os.WriteFile(script, b.Bytes(), 0o600)
}

// copyInto writes the file src into the file dst at off.
func copyInto(dst string, off int64, src string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := copySparse(f, off, src); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeGPT writes the partition table (protective MBR, primary and backup
// GPT) around the partitions.
func writeGPT(ctx context.Context, raw string, l diskLayout, rootType string, seed []byte) error {
	return run(ctx, nil, "sgdisk",
		"-U", uuidString(id(seed, "disk")),
		"-n", fmt.Sprintf("1:%d:%d", l.espStart, l.espStart+l.espSectors-1),
		"-t", "1:ef00", "-c", "1:ESP", "-u", "1:"+uuidString(id(seed, "esp")),
		"-n", fmt.Sprintf("2:%d:%d", l.rootStart, l.rootStart+l.rootSectors-1),
		"-t", "2:"+rootType, "-c", "2:"+RootLabel, "-u", "2:"+uuidString(id(seed, "root")),
		raw)
}

func fatSerial(seed []byte) [4]byte {
	u := id(seed, "fat")
	return [4]byte{u[0], u[1], u[2], u[3]}
}

// pinPETime sets the COFF header's time stamp (objcopy writes the current
// time there) to epoch and recomputes the PE checksum.
func pinPETime(p string, epoch time.Time) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if len(b) < 0x40 {
		return fmt.Errorf("%s: not a PE image", p)
	}
	lfanew := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if lfanew+24+68 > len(b) || string(b[lfanew:lfanew+4]) != "PE\x00\x00" {
		return fmt.Errorf("%s: not a PE image", p)
	}
	binary.LittleEndian.PutUint32(b[lfanew+8:], uint32(epoch.Unix()))
	sumAt := lfanew + 24 + 64
	binary.LittleEndian.PutUint32(b[sumAt:], 0)
	binary.LittleEndian.PutUint32(b[sumAt:], peChecksum(b, sumAt))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b[:sumAt+4], 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// peChecksum is the PE image checksum (16-bit one's-complement style sum
// of the file, skipping the checksum field, plus the file length).
func peChecksum(b []byte, skip int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == skip || i == skip+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

// gunzipInPlace decompresses a gzip file in place; other files are left
// as they are.
func gunzipInPlace(p string, mtime time.Time) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, 2)
	if _, err := io.ReadFull(f, magic); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	w, err := os.Create(p + ".raw")
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, zr); err != nil {
		w.Close()
		return fmt.Errorf("decompressing: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.Rename(p+".raw", p); err != nil {
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}
