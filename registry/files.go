package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/artifact"
)

// File is one file published as a layer of a file artifact.
type File struct {
	Path      string
	MediaType types.MediaType
	// Annotations of the layer; org.opencontainers.image.title defaults to
	// the file's base name.
	Annotations map[string]string
}

const annotationTitle = "org.opencontainers.image.title"

// FileArtifact builds an OCI 1.1 artifact (empty config) whose layers are the
// files, in order. Each file is hashed once here; when the artifact is
// pushed its bytes are streamed from disk and checked against that hash, so
// a file that changes in between fails the push instead of publishing bytes
// nobody hashed.
func FileArtifact(artifactType string, files []File, annotations map[string]string) (v1.Image, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no files to publish")
	}
	layers := map[v1.Hash]partial.CompressedLayer{}
	var descs []v1.Descriptor
	for _, f := range files {
		fi, err := os.Stat(f.Path)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", f.Path)
		}
		h, n, err := hashFile(f.Path)
		if err != nil {
			return nil, err
		}
		ann := map[string]string{annotationTitle: filepath.Base(f.Path)}
		for k, v := range f.Annotations {
			ann[k] = v
		}
		mt := f.MediaType
		if mt == "" {
			mt = "application/octet-stream"
		}
		descs = append(descs, v1.Descriptor{MediaType: mt, Digest: h, Size: n, Annotations: ann})
		layers[h] = &fileLayer{path: f.Path, digest: h, size: n, mediaType: mt}
	}
	raw, err := artifact.Manifest(artifactType, descs, artifact.Options{Annotations: annotations, EmbedConfig: true})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&fileArtifact{manifest: raw, config: artifact.Empty, layers: layers})
}

func hashFile(file string) (v1.Hash, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("reading %s: %w", file, err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

func sha256Of(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

type fileArtifact struct {
	manifest, config []byte
	layers           map[v1.Hash]partial.CompressedLayer
}

func (a *fileArtifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *fileArtifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *fileArtifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *fileArtifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	if h == sha256Of(a.config) {
		return &memLayer{data: a.config, mediaType: artifact.EmptyType}, nil
	}
	return nil, fmt.Errorf("blob %s: not in this artifact", h)
}

type fileLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	return &fileVerifier{f: f, h: sha256.New(), want: l.digest, size: l.size, name: l.path}, nil
}

type fileVerifier struct {
	f    *os.File
	h    hash.Hash
	n    int64
	size int64
	want v1.Hash
	name string
}

func (r *fileVerifier) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); r.n != r.size || got != r.want.Hex {
			return n, fmt.Errorf("%s changed after it was hashed (now %d bytes, sha256:%s; published as %s)", r.name, r.n, got, r.want)
		}
	}
	return n, err
}

func (r *fileVerifier) Close() error { return r.f.Close() }

type memLayer struct {
	data      []byte
	mediaType types.MediaType
}

func (l *memLayer) Digest() (v1.Hash, error)            { return sha256Of(l.data), nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
