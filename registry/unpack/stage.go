package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry/store"
)

// Layer is one layer of an image staged as a file by Stage, with what
// applying it to a live root involves.
type Layer struct {
	// Descriptor is the layer's entry in the image manifest (with its
	// annotations).
	Descriptor v1.Descriptor
	// File holds the layer's compressed bytes, checked against Descriptor.
	File string
	// Compression is how File is compressed: "", "gzip" or "zstd".
	Compression string
	// Whiteouts are the paths (relative to the root, sorted within an
	// opaque directory) to remove before the layer is extracted; the
	// layer's .wh. entries themselves are not to be extracted.
	Whiteouts []string
}

// Stage downloads img's layers into dir, one file each (NN-<hex>.layer),
// checking every byte against the manifest's digest and size, and lists
// each one to plan its whiteouts for a root that is not empty: a .wh.NAME
// entry removes NAME, and an opaque directory (.wh..wh..opq) removes only
// what the image's own earlier layers put there — an image never deletes
// the machine's files it did not ship, except where it names them. Entries
// that would leave the root fail with ErrUnsafePath.
func Stage(ctx context.Context, img v1.Image, dir string) ([]Layer, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	written := map[string]bool{} // paths earlier layers wrote
	var out []Layer
	for i, desc := range m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := Layer{Descriptor: desc, File: filepath.Join(dir, fmt.Sprintf("%02d-%.12s.layer", i+1, desc.Digest.Hex))}
		if l.Compression, err = Compression(desc.MediaType); err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		if err := download(ctx, img, desc, l.File); err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		entries, err := list(l.File)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		var mine []string
		for _, e := range entries {
			dirName, base := path.Split(e)
			switch {
			case base == ".wh..wh..opq":
				d := strings.TrimSuffix(dirName, "/")
				var gone []string
				for w := range written {
					if d == "" || strings.HasPrefix(w, d+"/") {
						gone = append(gone, w)
					}
				}
				sort.Strings(gone)
				for _, w := range gone {
					delete(written, w)
				}
				l.Whiteouts = append(l.Whiteouts, gone...)
			case strings.HasPrefix(base, ".wh."):
				w := path.Join(dirName, strings.TrimPrefix(base, ".wh."))
				l.Whiteouts = append(l.Whiteouts, w)
				for x := range written {
					if x == w || strings.HasPrefix(x, w+"/") {
						delete(written, x)
					}
				}
			default:
				mine = append(mine, e)
			}
		}
		for _, e := range mine {
			written[e] = true
		}
		out = append(out, l)
	}
	return out, nil
}

// Compression is how a layer of media type mt is compressed ("", "gzip",
// "zstd"); an error for a media type that is not a tar layer.
func Compression(mt types.MediaType) (string, error) {
	s := string(mt)
	switch {
	case strings.HasSuffix(s, "+gzip") || strings.HasSuffix(s, ".gzip"):
		return "gzip", nil
	case strings.HasSuffix(s, "+zstd") || strings.HasSuffix(s, ".zstd"):
		return "zstd", nil
	case strings.HasSuffix(s, ".tar") || strings.HasSuffix(s, "tar.v1"):
		return "", nil
	}
	return "", fmt.Errorf("media type %s: not a tar layer", mt)
}

// download writes layer desc of img to file, verified while it streams.
func download(ctx context.Context, img v1.Image, desc v1.Descriptor, file string) error {
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	vr := store.NewVerifier(rc, v1.Descriptor{Digest: desc.Digest, Size: desc.Size}, "layer", desc.Digest.String())
	defer vr.Close()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, store.ContextReader(ctx, vr))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// list returns the cleaned, relative paths of the entries of a layer file.
func list(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, done, err := Decompress(f)
	if err != nil {
		return nil, err
	}
	defer done()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		n, err := cleanEntry(h.Name)
		if err != nil {
			return nil, err
		}
		if n != "" {
			names = append(names, n)
		}
	}
}
