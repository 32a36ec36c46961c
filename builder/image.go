package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blobLayer is a compressed layer stored in a file of the layer cache.
type blobLayer struct {
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
	path           string
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)                { return l.size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("layer %s: only the compressed form is kept", l.digest)
}

// bytesLayer is a small blob held in memory (an SBOM, the empty config).
type bytesLayer struct {
	data      []byte
	mediaType types.MediaType
}

func (l *bytesLayer) Digest() (v1.Hash, error)            { return digestOf(l.data), nil }
func (l *bytesLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *bytesLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *bytesLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

// rawImage is an image whose manifest and config bytes prebake wrote itself,
// so their digests are exactly what the build decided.
type rawImage struct {
	manifest, config []byte
	mediaType        types.MediaType
	layers           map[v1.Hash]partial.CompressedLayer
}

func (i *rawImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *rawImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *rawImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *rawImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	if h == digestOf(i.config) {
		return &bytesLayer{data: i.config, mediaType: types.OCIConfigJSON}, nil
	}
	return nil, fmt.Errorf("layer %s not in image", h)
}

// rawIndex is an image index over images built in this process.
type rawIndex struct {
	manifest []byte
	images   map[v1.Hash]v1.Image
}

func (x *rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
func (x *rawIndex) Digest() (v1.Hash, error)            { return digestOf(x.manifest), nil }
func (x *rawIndex) Size() (int64, error)                { return int64(len(x.manifest)), nil }
func (x *rawIndex) RawManifest() ([]byte, error)        { return x.manifest, nil }
func (x *rawIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(x.manifest))
}
func (x *rawIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s not in index", h)
}
func (x *rawIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s not in index", h)
}

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}
