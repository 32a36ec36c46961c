package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Memory serves an image or index and its referrers from
// go-containerregistry values, streaming layers as they are stored
// (layer.Compressed), never recompressing.
type Memory struct {
	root      v1.Descriptor
	manifests map[v1.Hash][]byte
	blobs     map[v1.Hash]memBlob
	subjects  map[v1.Hash][]v1.Descriptor // subject digest → referrers
	// The graph in write order: blobs, and manifests children first.
	blobOrder     []v1.Hash
	manifestOrder []v1.Hash
}

type memBlob struct {
	size   int64
	config bool
	open   func() (io.ReadCloser, error)
}

// NewMemory serves root and its referrers (each with a subject).
func NewMemory(root Artifact, referrers []Artifact) (*Memory, error) {
	return newMemory(root, referrers, true)
}

// newMemory walks root and referrers once; only a Memory that serves as a
// copy source (requireSubject) needs each referrer's subject.
func newMemory(root Artifact, referrers []Artifact, requireSubject bool) (*Memory, error) {
	e := &Memory{
		manifests: map[v1.Hash][]byte{},
		blobs:     map[v1.Hash]memBlob{},
		subjects:  map[v1.Hash][]v1.Descriptor{},
	}
	d, err := e.add(root)
	if err != nil {
		return nil, err
	}
	e.root = d
	for _, r := range referrers {
		rd, err := e.add(r)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Subject     *v1.Descriptor    `json:"subject"`
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(e.manifests[rd.Digest], &probe); err != nil || probe.Subject == nil {
			if !requireSubject {
				continue
			}
			return nil, fmt.Errorf("referrer %s has no subject", rd.Digest)
		}
		rd.Annotations = probe.Annotations
		e.subjects[probe.Subject.Digest] = append(e.subjects[probe.Subject.Digest], rd)
	}
	return e, nil
}

// Root is the descriptor of the root image or index.
func (e *Memory) Root() v1.Descriptor { return e.root }

func (e *Memory) add(a Artifact) (v1.Descriptor, error) {
	raw, err := a.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := a.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := DescribeManifest(raw, mt)
	if _, ok := e.manifests[d.Digest]; ok {
		return d, nil
	}
	e.manifests[d.Digest] = raw
	switch v := a.(type) {
	case v1.ImageIndex:
		im, err := v.IndexManifest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, c := range im.Manifests {
			child, err := ChildOf(v, c)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading %s of index %s: %w", c.Digest, d.Digest, err)
			}
			if _, err := e.add(child); err != nil {
				return v1.Descriptor{}, err
			}
		}
	case v1.Image:
		m, err := v.Manifest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		cfg, err := v.RawConfigFile()
		if err != nil {
			return v1.Descriptor{}, err
		}
		e.addBlob(m.Config.Digest, memBlob{size: int64(len(cfg)), config: true, open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(cfg)), nil
		}})
		for _, l := range m.Layers {
			layer, err := v.LayerByDigest(l.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading layer %s: %w", l.Digest, err)
			}
			e.addBlob(l.Digest, memBlob{size: l.Size, open: layer.Compressed})
		}
	default:
		return v1.Descriptor{}, fmt.Errorf("unsupported artifact %T", a)
	}
	e.manifestOrder = append(e.manifestOrder, d.Digest)
	return d, nil
}

func (e *Memory) addBlob(h v1.Hash, b memBlob) {
	if _, ok := e.blobs[h]; !ok {
		e.blobOrder = append(e.blobOrder, h)
		e.blobs[h] = b
	}
}

func (e *Memory) String() string { return "memory" }

func (e *Memory) Resolve(_ context.Context, _, digest string) (v1.Descriptor, error) {
	if digest != "" && digest != e.root.Digest.String() {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", digest, ErrNotFound)
	}
	return e.root, nil
}

func (e *Memory) Manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	raw, ok := e.manifests[d.Digest]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, ErrNotFound)
	}
	return raw, nil
}

func (e *Memory) Blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	b, ok := e.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
	}
	rc, err := b.open()
	if err != nil {
		return nil, err
	}
	return NewVerifier(rc, d, "blob", "memory"), nil
}

func (e *Memory) RawBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	b, ok := e.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
	}
	return b.open()
}

func (e *Memory) Referrers(_ context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	return FilterArtifactType(e.subjects[subject.Digest], artifactType), nil
}

func (e *Memory) HasBlob(context.Context, v1.Descriptor) (bool, error) {
	return false, ErrReadOnly
}
func (e *Memory) PutBlob(context.Context, v1.Descriptor, func() (io.ReadCloser, error), string) (bool, error) {
	return false, ErrReadOnly
}
func (e *Memory) PutManifest(context.Context, v1.Descriptor, []byte) error { return ErrReadOnly }
func (e *Memory) Tag(context.Context, v1.Descriptor, []byte, string) error {
	return ErrReadOnly
}
func (e *Memory) Tags(context.Context) ([]string, error) { return nil, nil }
func (e *Memory) AddReferrers(context.Context, v1.Descriptor, []v1.Descriptor) error {
	return ErrReadOnly
}
