package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Load opens the image or index d in s as go-containerregistry values:
// manifests are read (and checked) now, layers and configs lazily (see
// storeBlob.Compressed for who checks them). It is how images are read from any place
// — layout, store or registry — through the one Store implementation each.
// ctx bounds every later read.
func Load(ctx context.Context, s Store, d v1.Descriptor) (Artifact, error) {
	raw, err := s.Manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(d, raw)
	if err != nil {
		return nil, err
	}
	d.MediaType = m.MediaType
	if m.MediaType.IsIndex() {
		var im v1.IndexManifest
		if err := json.Unmarshal(raw, &im); err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		return &storeIndex{ctx: ctx, s: s, d: d, raw: raw, im: &im}, nil
	}
	if m.Config == nil {
		return nil, fmt.Errorf("manifest %s has no config", d.Digest)
	}
	return partial.CompressedToImage(&storeImage{ctx: ctx, s: s, d: d, raw: raw, m: m})
}

type storeIndex struct {
	ctx context.Context
	s   Store
	d   v1.Descriptor
	raw []byte
	im  *v1.IndexManifest
}

func (x *storeIndex) MediaType() (types.MediaType, error)       { return x.d.MediaType, nil }
func (x *storeIndex) Digest() (v1.Hash, error)                  { return x.d.Digest, nil }
func (x *storeIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *storeIndex) IndexManifest() (*v1.IndexManifest, error) { return x.im, nil }
func (x *storeIndex) RawManifest() ([]byte, error)              { return x.raw, nil }

func (x *storeIndex) child(h v1.Hash) (Artifact, error) {
	for _, c := range x.im.Manifests {
		if c.Digest == h {
			return Load(x.ctx, x.s, v1.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: c.Size})
		}
	}
	return nil, fmt.Errorf("index %s lists no manifest %s: %w", x.d.Digest, h, ErrNotFound)
}

func (x *storeIndex) Image(h v1.Hash) (v1.Image, error) {
	a, err := x.child(h)
	if err != nil {
		return nil, err
	}
	img, ok := a.(v1.Image)
	if !ok {
		return nil, fmt.Errorf("manifest %s is an index, not an image", h)
	}
	return img, nil
}

func (x *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	a, err := x.child(h)
	if err != nil {
		return nil, err
	}
	idx, ok := a.(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("manifest %s is an image, not an index", h)
	}
	return idx, nil
}

// storeImage is an image manifest in a Store (partial.CompressedImageCore).
type storeImage struct {
	ctx context.Context
	s   Store
	d   v1.Descriptor
	raw []byte
	m   *Parsed
}

func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) MediaType() (types.MediaType, error) { return i.d.MediaType, nil }

func (i *storeImage) RawConfigFile() ([]byte, error) {
	if i.m.Config.Size > MaxManifestSize {
		return nil, fmt.Errorf("config %s is larger than %d bytes", i.m.Config.Digest, MaxManifestSize)
	}
	rc, err := (&storeBlob{i: i, d: *i.m.Config}).Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storeBlob{i: i, d: *i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &storeBlob{i: i, d: l}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s: %w", i.d.Digest, h, ErrNotFound)
}

type storeBlob struct {
	i *storeImage
	d v1.Descriptor
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *storeBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }

// Compressed streams the blob: from a registry checked while it streams;
// from a local store (RawBlobSource) as stored, for the reader to check — as
// Unpack, unpack.Stage and signing's verification do — so that a local blob
// is hashed once and a mismatch is reported by the one who asked.
func (b *storeBlob) Compressed() (io.ReadCloser, error) {
	d := v1.Descriptor{MediaType: b.d.MediaType, Digest: b.d.Digest, Size: b.d.Size}
	if raw, ok := b.i.s.(RawBlobSource); ok {
		return raw.RawBlob(b.i.ctx, d)
	}
	return b.i.s.Blob(b.i.ctx, d)
}
