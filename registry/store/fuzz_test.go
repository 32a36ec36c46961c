package store

import (
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzParseManifest: manifests and indexes as a registry sends them (any
// bytes, any declared media type) parse or fail, never panic.
func FuzzParseManifest(f *testing.F) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	raw, _ := img.RawManifest()
	f.Add(raw, string(types.OCIManifestSchema1))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img})
	raw, _ = idx.RawManifest()
	f.Add(raw, string(types.OCIImageIndex))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[]}`), string(types.DockerManifestSchema1))
	f.Add([]byte(`{"manifests":null,"config":{"size":-1},"subject":{"digest":"sha256:x"}}`), "")
	f.Add([]byte(`[]`), "application/vnd.oci.artifact.manifest.v1+json")
	f.Fuzz(func(t *testing.T, raw []byte, mt string) {
		d := v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(raw))}
		m, err := ParseManifest(d, raw)
		if err != nil {
			return
		}
		_ = ReferrerDescriptor(d, m)
		if !m.MediaType.IsIndex() && !m.MediaType.IsImage() {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}
