package disk

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/unpack"
)

// baseLayers returns the layers of the base: a directory or a tarball is
// rewritten into one plain tar in work (device nodes, FIFOs and sockets
// left out: the booted system gets /dev from devtmpfs); anything else is
// an image reference whose layers are used as they are.
func baseLayers(ctx context.Context, base, work string, o Options) ([]v1.Layer, error) {
	fi, err := os.Stat(base)
	switch {
	case err == nil && fi.IsDir():
		l, err := writeTar(filepath.Join(work, "base.tar"), func(tw *tar.Writer) error { return tarDir(ctx, base, tw) })
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", base, err)
		}
		return []v1.Layer{l}, nil
	case err == nil:
		l, err := writeTar(filepath.Join(work, "base.tar"), func(tw *tar.Writer) error { return filterTar(ctx, base, tw) })
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", base, err)
		}
		return []v1.Layer{l}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("base %s: %w", base, err)
	}
	ref, perr := registry.ParseReference(base)
	if perr != nil {
		return nil, fmt.Errorf("base %s: not a directory, a tarball or an image reference: %w", base, perr)
	}
	img, _, err := image(ctx, ref, o)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", base, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", base, err)
	}
	return ls, nil
}

// image resolves ref to the image of o.Platform.
func image(ctx context.Context, ref registry.Reference, o Options) (v1.Image, v1.Hash, error) {
	a, _, err := registry.Get(ctx, ref, o.Registry)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, err := registry.PlatformImage(a, o.Platform)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("%s: %w", ref, err)
	}
	d, err := img.Digest()
	return img, d, err
}

// fileLayer is an uncompressed tar on disk, named by its sha256.
type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }

// writeTar writes a tar to path with fill and returns it as a layer.
func writeTar(path string, fill func(*tar.Writer) error) (*fileLayer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	tw := tar.NewWriter(bw)
	if err := fill(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &fileLayer{path: path, size: cw.n, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// special reports entries the disk does not carry from a base.
func special(m fs.FileMode) bool {
	return m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0
}

// tarDir writes dir as a tar in lexical order with owners, modes and
// modification times (whole seconds); hard links stay links.
func tarDir(ctx context.Context, dir string, tw *tar.Writer) error {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if special(fi.Mode()) {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		h.ModTime = fi.ModTime().Truncate(1e9)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode().IsRegular() && st.Nlink > 1 {
				k := inode{uint64(st.Dev), st.Ino}
				if first, ok := seen[k]; ok {
					h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				} else {
					seen[k] = h.Name
				}
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, h.Size); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
}

// filterTar copies the tarball at path (plain, gzip or zstd) without its
// device nodes, FIFOs and sockets.
func filterTar(ctx context.Context, path string, tw *tar.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, done, err := unpack.Decompress(f)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(r)
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not a tar archive (plain, gzip or zstd): %w", err)
		}
		n++
		switch h.Typeflag {
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("empty tar archive")
	}
	return nil
}
