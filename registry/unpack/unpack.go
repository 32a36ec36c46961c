// Package unpack applies image layers: Unpack writes an image's root file
// system into a new directory (pull to a directory, disk export), and Stage
// downloads the layers of an image, verified, and lists the whiteouts each
// one applies, for the Packer provisioner, which extracts them on a running
// machine. Both refuse entries that would land outside the root
// (ErrUnsafePath) and read gzip, zstd and plain tar layers.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry/store"
)

// Options tune Unpack.
type Options struct {
	// Progress receives "unpack" events per layer (compressed bytes read);
	// nil is silent.
	Progress progress.Func
}

// Unpack writes img's root filesystem to dir: layers in order, each one
// checked against its digest while it is read, OCI whiteouts (.wh.NAME and
// .wh..wh..opq) applied. It refuses, with ErrUnsafePath, entries that would
// land outside dir (".." paths, writes through symlinks pointing outside or
// absolute, hard links to outside) and device nodes. The tree is built in a
// temporary sibling of dir and renamed into place at the end, so dir either
// appears complete or not at all; dir must not exist or be empty. File owners
// are applied only when running as root.
func Unpack(ctx context.Context, img v1.Image, dir string, o Options) error {
	dir = filepath.Clean(dir)
	if err := CheckEmpty(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".unpack-*")
	if err != nil {
		return fmt.Errorf("unpacking to %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := unpackInto(ctx, img, tmp, o); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("unpacking to %s: %w", dir, err)
	}
	ok = true
	return atomicfile.SyncDir(filepath.Dir(dir))
}

// CheckEmpty accepts a missing path or an empty directory: an output that
// holds nothing yet.
func CheckEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("output %s exists and is not empty", dir)
	}
	return nil
}

type unpacker struct {
	root    *os.Root
	asRoot  bool
	dirs    map[string]*tar.Header // final mode and times, applied last
	created map[string]bool        // paths written by the current layer
	layer   string
}

func unpackInto(ctx context.Context, img v1.Image, dir string, o Options) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	u := &unpacker{root: root, asRoot: os.Geteuid() == 0, dirs: map[string]*tar.Header{}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("opening layer %s: %w", d, err)
		}
		u.layer = d.String()
		vr := store.NewVerifier(rc, v1.Descriptor{Digest: d, Size: size}, "layer", d.String())
		err = u.apply(ctx, o.Progress.Reader(vr, "unpack", d.String(), size))
		if err == nil {
			// Read what tar left (padding) so the digest is checked in full.
			_, err = io.Copy(io.Discard, vr)
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		o.Progress.Report(progress.Event{Op: "unpack", Name: d.String(), Done: size, Total: size, Finished: true})
	}
	return u.finishDirs()
}

// Decompress reads r as gzip, zstd or plain (a tar), told apart by magic
// number; done releases the decompressor.
func Decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

func (u *unpacker) apply(ctx context.Context, r io.Reader) error {
	dr, done, err := Decompress(r)
	if err != nil {
		return err
	}
	defer done()
	u.created = map[string]bool{}
	tr := tar.NewReader(dr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := u.entry(h, tr); err != nil {
			return err
		}
	}
	// Drain the compressed stream's trailer (gzip footer checks its CRC).
	_, err = io.Copy(io.Discard, dr)
	return err
}

// cleanEntry makes an archive path relative to the root, refusing escapes.
func cleanEntry(name string) (string, error) {
	p := path.Clean("/" + name)[1:]
	if strings.Contains("/"+name+"/", "/../") {
		return "", fmt.Errorf("%w: entry %q has a \"..\" component", ErrUnsafePath, name)
	}
	return p, nil
}

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	p, err := cleanEntry(h.Name)
	if err != nil {
		return err
	}
	if p == "" { // the root itself
		if h.Typeflag == tar.TypeDir {
			u.dirs["."] = h
		}
		return nil
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if err := u.mkdirs(dir); err != nil {
		return u.wrap(p, err)
	}
	if base == ".wh..wh..opq" {
		return u.wrap(p, u.opaque(dir))
	}
	if strings.HasPrefix(base, ".wh.") {
		return u.wrap(p, u.root.RemoveAll(path.Join(dir, strings.TrimPrefix(base, ".wh."))))
	}
	// Replace what a lower layer had, except a directory by a directory.
	if fi, err := u.root.Lstat(p); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
		if err := u.root.RemoveAll(p); err != nil {
			return u.wrap(p, err)
		}
	}
	u.created[p] = true
	mode := h.FileInfo().Mode()
	perm := mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := u.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return u.wrap(p, err)
		}
		u.dirs[p] = h
		return u.owner(p, h)
	case tar.TypeReg:
		f, err := u.root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return u.wrap(p, err)
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return u.wrap(p, err)
		}
		if err := f.Close(); err != nil {
			return u.wrap(p, err)
		}
		if err := u.owner(p, h); err != nil {
			return err
		}
		if err := u.root.Chmod(p, perm); err != nil {
			return u.wrap(p, err)
		}
		return u.wrap(p, u.root.Chtimes(p, h.ModTime, h.ModTime))
	case tar.TypeSymlink:
		// The target is not followed here; a later write through it is
		// refused by os.Root if it leads outside.
		if err := u.root.Symlink(h.Linkname, p); err != nil {
			return u.wrap(p, err)
		}
		if u.asRoot {
			return u.wrap(p, u.root.Lchown(p, h.Uid, h.Gid))
		}
		return nil
	case tar.TypeLink:
		target, err := cleanEntry(h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link %s -> %q leaves the root", ErrUnsafePath, p, h.Linkname)
		}
		return u.wrap(p, u.root.Link(target, p))
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%w: %s is a device node", ErrUnsafePath, p)
	}
	return fmt.Errorf("%s: unsupported tar entry type %q", p, h.Typeflag)
}

func (u *unpacker) wrap(p string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") ||
		errors.As(err, &le) && strings.Contains(le.Err.Error(), "escapes") {
		return fmt.Errorf("%w: %s: %v", ErrUnsafePath, p, err)
	}
	return fmt.Errorf("%s: %w", p, err)
}

func (u *unpacker) owner(p string, h *tar.Header) error {
	if !u.asRoot {
		return nil
	}
	return u.wrap(p, u.root.Lchown(p, h.Uid, h.Gid))
}

// mkdirs creates missing parents (as 0755 until a header says otherwise).
func (u *unpacker) mkdirs(dir string) error {
	if dir == "." {
		return nil
	}
	fi, err := u.root.Lstat(dir)
	if err == nil && fi.IsDir() {
		return nil
	}
	return u.root.MkdirAll(dir, 0o755)
}

// opaque removes what lower layers put in dir.
func (u *unpacker) opaque(dir string) error {
	f, err := u.root.Open(dir)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		if !u.created[p] {
			if err := u.root.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishDirs applies directory modes and times, deepest first, once nothing
// more is written into them.
func (u *unpacker) finishDirs() error {
	paths := make([]string, 0, len(u.dirs))
	for p := range u.dirs {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") > strings.Count(paths[j], "/") })
	for _, p := range paths {
		h := u.dirs[p]
		fi, err := u.root.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue // removed or replaced by a later layer
		}
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := u.root.Chmod(p, mode); err != nil {
			return u.wrap(p, err)
		}
		mt := h.ModTime
		if mt.IsZero() {
			mt = time.Unix(0, 0)
		}
		if err := u.root.Chtimes(p, mt, mt); err != nil {
			return u.wrap(p, err)
		}
	}
	return nil
}
