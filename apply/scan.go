package apply

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/recipes"
)

// entryPath cleans a tar entry name to a root-relative path; "" is the root
// itself.
func entryPath(name string) (string, error) {
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q leaves the root", ErrUnsafePath, name)
	}
	return path.Clean("/" + name)[1:], nil
}

// fileOf turns a tar header into a record entry (without content digest).
func fileOf(h *tar.Header, p string) (File, error) {
	f := File{Path: p, Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid}
	switch h.Typeflag {
	case tar.TypeReg:
		f.Type, f.Size = TypeFile, h.Size
	case tar.TypeDir:
		f.Type = TypeDir
	case tar.TypeSymlink:
		f.Type, f.Link = TypeSymlink, h.Linkname
	case tar.TypeLink:
		t, err := entryPath(h.Linkname)
		if err != nil || t == "" {
			return f, fmt.Errorf("%w: hard link %s to %q", ErrUnsafePath, p, h.Linkname)
		}
		f.Type, f.Link = TypeHardlink, t
	default:
		return f, fmt.Errorf("%w: %s is a device node, FIFO or unknown entry (type %q)", ErrUnsafePath, p, h.Typeflag)
	}
	return f, nil
}

// scan reads the image's layers into the components of its record: each
// path belongs to the last layer that writes it, a .wh. whiteout removes a
// path (from the image and, recorded in removed, from the root), and an
// opaque whiteout removes only what the image's own earlier layers put in
// its directory: an image never deletes the machine's files it does not
// name.
func scan(ctx context.Context, img v1.Image) ([]Component, []string, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	if len(layers) != len(m.Layers) {
		return nil, nil, fmt.Errorf("manifest lists %d layers, image has %d", len(m.Layers), len(layers))
	}
	type owned struct {
		f     File
		layer int
	}
	view := map[string]owned{}
	removed := map[string]bool{}
	drop := func(p string, self bool) {
		for q := range view {
			if (self && q == p) || p == "" || strings.HasPrefix(q, p+"/") {
				delete(view, q)
			}
		}
	}
	comps := make([]Component, len(layers))
	for i, l := range layers {
		d := m.Layers[i]
		comps[i] = Component{Name: d.Annotations[recipes.AnnotationComponent], Version: d.Annotations[recipes.AnnotationComponentVersion], Layer: d.Digest.String()}
		if comps[i].Name == "" {
			comps[i].Name = fmt.Sprintf("layer-%d", i+1)
		}
		err := eachEntry(ctx, l, func(h *tar.Header, p string, r io.Reader) error {
			dir, base := path.Split(p)
			dir = strings.TrimSuffix(dir, "/")
			switch {
			case base == ".wh..wh..opq":
				drop(dir, false)
				return nil
			case strings.HasPrefix(base, ".wh."):
				w := path.Join(dir, strings.TrimPrefix(base, ".wh."))
				drop(w, true)
				removed[w] = true
				return nil
			}
			f, err := fileOf(h, p)
			if err != nil {
				return err
			}
			switch f.Type {
			case TypeFile:
				sum := sha256.New()
				n, err := io.Copy(sum, r)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				f.Digest, f.Size = "sha256:"+hex.EncodeToString(sum.Sum(nil)), n
			case TypeHardlink:
				t, ok := view[f.Link]
				if !ok || t.f.Type != TypeFile {
					return fmt.Errorf("%w: hard link %s to %s, which is not a file of the image", ErrUnsafePath, p, f.Link)
				}
				f.Digest, f.Size = t.f.Digest, t.f.Size
			}
			if old, ok := view[p]; ok && old.f.Type == TypeDir && f.Type != TypeDir {
				drop(p, false)
			}
			view[p] = owned{f, i}
			delete(removed, p)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d (%s): %w", i+1, d.Digest, err)
		}
	}
	for _, p := range sortedKeys(view) {
		o := view[p]
		comps[o.layer].Files = append(comps[o.layer].Files, o.f)
	}
	for i := range comps {
		if comps[i].Files == nil {
			comps[i].Files = []File{}
		}
	}
	return comps, sortedKeys(removed), nil
}

// eachEntry calls fn for each entry of the layer but the root directory,
// with its cleaned path.
func eachEntry(ctx context.Context, l v1.Layer, fn func(h *tar.Header, p string, r io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := entryPath(h.Name)
		if err != nil {
			return err
		}
		if p == "" {
			continue
		}
		if err := fn(h, p, tr); err != nil {
			return err
		}
	}
}
