package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/artifact"
)

// MaxManifestSize caps how much of a manifest (or referrers/tag list
// response) is read: descriptor sizes come from the other side and must not
// decide allocations.
const MaxManifestSize = 4 << 20

// Store is one place graphs live — a registry repository, an OCI layout, a
// name in the local store, or images held in memory — seen through the few
// operations copy, pull, channels and revocations need. Every read verifies
// digest and size; a feature written against Store works for every place.
type Store interface {
	// String names the place in messages (oci:DIR, store:NAME, host/repo).
	String() string
	// Resolve turns a tag (or digest) into a descriptor.
	Resolve(ctx context.Context, tag, digest string) (v1.Descriptor, error)
	// Manifest reads the manifest d, checked against d.
	Manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	// Blob streams blob d; the reader fails with a DigestError on the read
	// that completes content of the wrong digest or size.
	Blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
	// HasBlob reports whether the place holds blob d (of d's size).
	HasBlob(ctx context.Context, d v1.Descriptor) (bool, error)
	// PutBlob stores blob d from open(); mountFrom names a repository of the
	// same registry to mount from instead (remote only, best effort).
	PutBlob(ctx context.Context, d v1.Descriptor, open func() (io.ReadCloser, error), mountFrom string) (mounted bool, err error)
	// PutManifest stores a manifest by digest; referrers are indexed with
	// AddReferrers afterwards.
	PutManifest(ctx context.Context, d v1.Descriptor, raw []byte) error
	// Tag points tag at d; for layouts an empty tag adds d untagged to
	// index.json so that it is reachable.
	Tag(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error
	// Tags lists the place's tags.
	Tags(ctx context.Context) ([]string, error)
	// Referrers lists the manifests whose subject is subject, optionally
	// only those of artifactType.
	Referrers(ctx context.Context, subject v1.Descriptor, artifactType string) ([]v1.Descriptor, error)
	// AddReferrers records ds as referrers of subject.
	AddReferrers(ctx context.Context, subject v1.Descriptor, ds []v1.Descriptor) error
}

// FilterArtifactType keeps the descriptors of artifactType (all when empty).
func FilterArtifactType(ds []v1.Descriptor, artifactType string) []v1.Descriptor {
	if artifactType == "" {
		return ds
	}
	var out []v1.Descriptor
	for _, d := range ds {
		if d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}

// Parsed is what the graph walk needs from any manifest.
type Parsed struct {
	MediaType    types.MediaType   `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Layers       []v1.Descriptor   `json:"layers"`
	Manifests    []v1.Descriptor   `json:"manifests"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// ParseManifest parses raw, the manifest d describes, refusing Docker
// schema 1 and unknown media types.
func ParseManifest(d v1.Descriptor, raw []byte) (*Parsed, error) {
	var m Parsed
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.MediaType == "" {
		m.MediaType = d.MediaType
	}
	switch {
	case m.MediaType.IsIndex(), m.MediaType.IsImage():
	case m.MediaType == types.DockerManifestSchema1, m.MediaType == types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("manifest %s: Docker schema 1 is not supported", d.Digest)
	case m.Manifests != nil:
		m.MediaType = types.OCIImageIndex
	case m.Config != nil:
		m.MediaType = types.OCIManifestSchema1
	default:
		return nil, fmt.Errorf("manifest %s: unknown media type %q", d.Digest, m.MediaType)
	}
	return &m, nil
}

// ReferrerDescriptor is how d appears in a referrers list: artifact type
// (or the config media type) and the manifest's annotations.
func ReferrerDescriptor(d v1.Descriptor, m *Parsed) v1.Descriptor {
	out := v1.Descriptor{MediaType: m.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if out.ArtifactType == "" && m.Config != nil {
		out.ArtifactType = string(m.Config.MediaType)
	}
	return out
}

// CheckDigest fails with a DigestError when got is not want.
func CheckDigest(what, src string, want, got v1.Descriptor) error {
	if want.Digest != got.Digest || (want.Size > 0 && want.Size != got.Size) {
		return &DigestError{What: what, Source: src, Expected: want.Digest.String(), Actual: got.Digest.String(), ExpectedSize: want.Size, ActualSize: got.Size}
	}
	return nil
}

// DescribeManifest describes raw, taking the media type from the manifest
// itself and the transport's Content-Type only as a fallback.
func DescribeManifest(raw []byte, contentType types.MediaType) v1.Descriptor {
	sum := sha256.Sum256(raw)
	d := v1.Descriptor{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size:   int64(len(raw)),
	}
	var probe struct {
		MediaType    types.MediaType `json:"mediaType"`
		ArtifactType string          `json:"artifactType"`
		Config       *v1.Descriptor  `json:"config"`
		Manifests    json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		d.MediaType = probe.MediaType
		d.ArtifactType = probe.ArtifactType
		if d.MediaType == "" {
			switch {
			case probe.Manifests != nil:
				d.MediaType = types.OCIImageIndex
			case probe.Config != nil:
				d.MediaType = types.OCIManifestSchema1
			}
		}
		if d.ArtifactType == "" && probe.Config != nil && d.MediaType == types.OCIManifestSchema1 &&
			probe.Config.MediaType != types.OCIConfigJSON && probe.Config.MediaType != artifact.EmptyType {
			d.ArtifactType = string(probe.Config.MediaType)
		}
	}
	if d.MediaType == "" {
		d.MediaType = contentType
	}
	return d
}

// FallbackTag is the OCI 1.1 referrers tag schema: sha256-<hex>.
func FallbackTag(h v1.Hash) string { return h.Algorithm + "-" + h.Hex }

// IsFallbackTag reports whether tag is a referrers fallback tag or a cosign
// legacy tag (sha256-<hex>[.sig|.att|.sbom]), which listings hide.
func IsFallbackTag(tag string) bool {
	if !strings.HasPrefix(tag, "sha256-") || len(tag) < 7+64 {
		return false
	}
	rest := tag[7+64:]
	return rest == "" || rest == ".sig" || rest == ".att" || rest == ".sbom"
}

// ReadCloser reads from Reader and closes Closer: a reader wrapped around a
// blob (progress counting) that keeps the blob's verdict (a verifier's
// verifiedOK) visible to a layout that would otherwise hash it again.
type ReadCloser struct {
	io.Reader
	io.Closer
}

// verifiedOK passes on the verifier's verdict (see verifiedReader).
func (r ReadCloser) verifiedOK() bool {
	v, ok := r.Closer.(verifiedReader)
	return ok && v.verifiedOK()
}
