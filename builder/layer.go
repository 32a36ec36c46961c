package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/prebake/prebake/builder/archive"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
)

// Compression is how layers are compressed.
type Compression string

const (
	// Gzip is the default: every OCI client reads it.
	Gzip Compression = "gzip"
	// Zstd is smaller and faster; needs containerd ≥ 1.5 / recent clients.
	Zstd Compression = "zstd"
)

func (c Compression) mediaType() (types.MediaType, error) {
	switch c {
	case Gzip, "":
		return types.OCILayer, nil
	case Zstd:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("unknown compression %q (gzip, zstd)", c)
}

// layerFormat versions how layers are laid out; bump it when a change to this
// file would change layer bytes, so old cache entries are not reused.
const layerFormat = "prebake-layer/1"

// layerKey is the cache key of a component's layer: everything that decides
// its bytes.
func layerKey(c recipes.ResolvedComponent, epoch int64, comp Compression) string {
	b, _ := json.Marshal(struct {
		Format      string
		Component   recipes.ResolvedComponent
		Epoch       int64
		Compression Compression
	}{layerFormat + zstdSuffix(comp), c, epoch, comp})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// zstdSuffix versions zstd layers' framing apart from gzip's (whose keys,
// and so whose warm caches, stay as they were).
func zstdSuffix(comp Compression) string {
	if comp == Zstd {
		return "+" + zstdFormat
	}
	return ""
}

// cachedLayer is what the layer cache records per key.
type cachedLayer struct {
	Digest    string          `json:"digest"`
	DiffID    string          `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
	// Files are the non-directory paths the layer installs.
	Files []string `json:"files"`
}

// stageComponent lays the component's files out under root (a staging
// directory standing for the image's /). Plain downloaded files are hard
// links into the download cache where possible (no copy); their modes, and
// every mode a source overrides, are returned by staging path instead of being
// set on disk, since a link shares its mode with the cached file.
func (b *build) stageComponent(ctx context.Context, c recipes.ResolvedComponent, root string) (map[string]fs.FileMode, error) {
	modes := map[string]fs.FileMode{}
	for _, s := range c.Sources {
		src, ok := b.sources[s.SHA256]
		if !ok {
			return nil, fmt.Errorf("source %s was not fetched", s.URL)
		}
		var installed []string
		if s.Archive == "none" {
			dst := filepath.Join(root, filepath.FromSlash(s.Dest))
			if err := linkOrCopy(src, dst); err != nil {
				return nil, fmt.Errorf("installing %s: %w", s.URL, err)
			}
			modes[dst] = 0o644
			installed = append(installed, dst)
		} else {
			rules := make([]archive.Rule, len(s.Extract))
			for i, r := range s.Extract {
				rules[i] = archive.Rule{Pattern: r.Pattern, Dest: r.Dest}
			}
			entries, err := archive.Extract(ctx, src, archive.Format(s.Archive), rules, root, b.o.Limits)
			if err != nil {
				if errors.Is(err, archive.ErrUnsafeEntry) || errors.Is(err, archive.ErrTooLarge) {
					// A hostile archive must not stay in the cache for the next build.
					os.Remove(src)
				}
				return nil, fmt.Errorf("extracting %s: %w", s.URL, err)
			}
			for _, e := range entries {
				if e.Type == tar.TypeReg {
					installed = append(installed, filepath.Join(root, filepath.FromSlash(e.Path)))
				}
			}
		}
		if s.Mode != nil {
			for _, p := range installed {
				modes[p] = fs.FileMode(*s.Mode) & fs.ModePerm
			}
		}
	}
	for _, f := range c.Files {
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		if _, err := os.Lstat(dst); err == nil {
			return nil, fmt.Errorf("component %s: %s is installed twice", c.Name, f.Path)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if f.Target != "" {
			if err := os.Symlink(f.Target, dst); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.WriteFile(dst, []byte(f.Content), 0o600); err != nil {
			return nil, err
		}
		modes[dst] = fs.FileMode(f.Mode) & fs.ModePerm
	}
	if err := b.stageImages(ctx, c, root, modes); err != nil { // images.go
		return nil, err
	}
	return modes, nil
}

// linkOrCopy hard-links src to dst, or copies it when they are on different
// file systems.
func linkOrCopy(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s is installed twice", dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst, 0o644)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// writeTar writes root as a deterministic tar to w: entries in lexical path
// order, every parent directory present, uid/gid 0 without names, mtime =
// epoch, permission bits only. It returns the image paths of non-directories.
func writeTar(ctx context.Context, root string, modes map[string]fs.FileMode, epoch time.Time, w io.Writer) ([]string, error) {
	tw := tar.NewWriter(w)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		if m, ok := modes[p]; ok {
			mode = m
		}
		hdr := &tar.Header{Name: name, ModTime: epoch, Mode: int64(mode), Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		default:
			return fmt.Errorf("%s: unsupported file type %s", name, fi.Mode().Type())
		}
		if !fi.IsDir() {
			files = append(files, "/"+name)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, tw.Close()
}

// compressLayer tars root, compresses it and stores the blob in the layer
// cache, returning its descriptor data. The blob is written to a temp file,
// fsynced and renamed, so the cache never holds a partial layer.
func (b *build) compressLayer(ctx context.Context, name, root string, modes map[string]fs.FileMode) (cachedLayer, []string, error) {
	mt, err := b.o.Compression.mediaType()
	if err != nil {
		return cachedLayer{}, nil, err
	}
	blobs := filepath.Join(b.cacheDir, "layers", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return cachedLayer{}, nil, err
	}
	f, err := os.CreateTemp(blobs, ".tmp-*")
	if err != nil {
		return cachedLayer{}, nil, err
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp)
	}()
	digester := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, digester), p: b.o.Progress, name: name}
	var zw io.WriteCloser
	if mt == "application/vnd.oci.image.layer.v1.tar+zstd" {
		zw, err = newFrameWriter(cw)
	} else {
		zw, err = gzip.NewWriterLevel(cw, b.o.GzipLevel)
	}
	if err != nil {
		return cachedLayer{}, nil, err
	}
	differ := sha256.New()
	files, err := writeTar(ctx, root, modes, time.Unix(b.res.Epoch, 0).UTC(), io.MultiWriter(zw, differ))
	if err != nil {
		return cachedLayer{}, nil, err
	}
	if err := zw.Close(); err != nil {
		return cachedLayer{}, nil, err
	}
	if err := f.Sync(); err != nil {
		return cachedLayer{}, nil, err
	}
	if err := f.Close(); err != nil {
		return cachedLayer{}, nil, err
	}
	cl := cachedLayer{Digest: "sha256:" + hexSum(digester), DiffID: "sha256:" + hexSum(differ), Size: cw.n, MediaType: mt}
	if err := os.Rename(tmp, filepath.Join(blobs, hexSum(digester))); err != nil {
		return cachedLayer{}, nil, err
	}
	b.o.Progress.Report(progress.Event{Op: "compress", Name: name, Done: cw.n, Total: cw.n, Finished: true})
	return cl, files, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w    io.Writer
	n    int64
	p    progress.Func
	name string
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.p.Report(progress.Event{Op: "compress", Name: c.name, Done: c.n})
	return n, err
}
