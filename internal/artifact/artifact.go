// Package artifact builds OCI 1.1 artifact manifests - an image manifest
// with an artifactType and the empty config - the one way prebake writes
// them: the SBOM (builder), channel and revocation records (registry) and
// file artifacts such as exported disks (registry.FileArtifact).
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// EmptyType is the media type of the OCI 1.1 empty descriptor ("{}").
const EmptyType types.MediaType = "application/vnd.oci.empty.v1+json"

// Empty is the content of the empty descriptor.
var Empty = []byte("{}")

// Descriptor describes blob b of media type mt.
func Descriptor(mt types.MediaType, b []byte) v1.Descriptor {
	sum := sha256.Sum256(b)
	return v1.Descriptor{MediaType: mt, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, Size: int64(len(b))}
}

// manifest is an OCI 1.1 image manifest used as an artifact.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Subject       *v1.Descriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Options are the optional parts of an artifact manifest.
type Options struct {
	// Subject is the manifest the artifact refers to (its referrers entry);
	// only its media type, digest and size are written.
	Subject *v1.Descriptor
	// Annotations of the manifest; empty writes none.
	Annotations map[string]string
	// EmbedConfig writes the empty config's content into its descriptor
	// (the "data" field), sparing clients a fetch.
	EmbedConfig bool
}

// Manifest returns the raw manifest of an artifact of artifactType with
// layers; with no layers it has one empty layer, since registries that
// predate OCI 1.1 refuse manifests without.
func Manifest(artifactType string, layers []v1.Descriptor, o Options) ([]byte, error) {
	m := manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        Descriptor(EmptyType, Empty),
		Layers:        layers,
	}
	if o.EmbedConfig {
		m.Config.Data = Empty
	}
	if len(m.Layers) == 0 {
		m.Layers = []v1.Descriptor{Descriptor(EmptyType, Empty)}
	}
	if o.Subject != nil {
		m.Subject = &v1.Descriptor{MediaType: o.Subject.MediaType, Digest: o.Subject.Digest, Size: o.Subject.Size}
	}
	if len(o.Annotations) > 0 {
		m.Annotations = o.Annotations
	}
	return json.Marshal(m)
}
