package push

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

const someDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPrepareProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string
	}{
		{"minimal", map[string]any{"repository": "127.0.0.1:5000/disks"}, nil},
		{"everything", map[string]any{"repository": "127.0.0.1:5000/disks:1.36.4", "source_image": "127.0.0.1:5000/nodes@" + someDigest,
			"format": "qcow2", "annotations": map[string]string{"team": "release"}, "sign_key": "env://KEY", "insecure": true}, nil},
		{"bare source digest", map[string]any{"repository": "oci:/srv/disks:v1", "source_image": someDigest}, nil},
		{"data source outputs unknown (packer validate)", map[string]any{"repository": "<unknown>", "source_image": "<unknown>"}, nil},
		{"nothing", map[string]any{}, []string{"repository: required"}},
		{"repository by digest", map[string]any{"repository": "127.0.0.1:5000/disks@" + someDigest}, []string{"repository:", "not a digest"}},
		{"source image by tag", map[string]any{"repository": "127.0.0.1:5000/disks", "source_image": "127.0.0.1:5000/nodes:1.36.4"},
			[]string{"source_image:", "by a tag (1.36.4)"}},
		{"unknown format", map[string]any{"repository": "127.0.0.1:5000/disks", "format": "vhdx"}, []string{"format: \"vhdx\": expected qcow2, raw or vmdk"}},
		{"reserved annotation", map[string]any{"repository": "127.0.0.1:5000/disks", "annotations": map[string]string{AnnotationSourceDigest: "x"}},
			[]string{"annotations:", "set by the post-processor"}},
		{"missing key file", map[string]any{"repository": "127.0.0.1:5000/disks", "sign_key": "/nonexistent/cosign.key"}, []string{"sign_key:", "does not exist"}},
		{"every problem at once", map[string]any{"format": "iso", "sign_key": "/nonexistent/k"}, []string{"repository: required", "format:", "sign_key:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p PostProcessor
			err := p.Configure(tc.raw)
			testenv.CheckError(t, tc.raw, err, tc.want...)
		})
	}
}

// disks writes a stand-in qcow2 (a real qcow2 header) and a raw disk, plus a
// checksum file the post-processor must skip.
func disks(t *testing.T) []string {
	dir := t.TempDir()
	files := map[string]string{
		"node.qcow2": "QFI\xfb\x00\x00\x00\x03" + strings.Repeat("\x00", 1024),
		"node.raw":   strings.Repeat("\x00", 4096),
		"SHA256SUMS": "whatever\n",
	}
	var out []string
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestPushSignVerify pushes disk files to a loopback prebake registry, signs
// the artifact, verifies it with the public key and checks its manifest.
func TestPushSignVerify(t *testing.T) {
	fixture.Isolate(t)
	host := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	var p PostProcessor
	if err := p.Configure(map[string]any{
		"repository": host + "/disks/node:1.36.4", "source_image": host + "/nodes@" + someDigest,
		"sign_key": priv, "insecure": true, "annotations": map[string]string{"team": "release"},
	}); err != nil {
		t.Fatal(err)
	}
	src := &packersdk.MockArtifact{BuilderIdValue: "packer.file", FilesValue: disks(t), IdValue: "disk"}
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), src)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || !force {
		t.Errorf("keep=%v force=%v, want the input kept", keep, force)
	}
	a := out.(*Artifact)
	if !a.Signed || a.Id() != a.Digest || !strings.HasPrefix(a.Digest, "sha256:") {
		t.Fatalf("artifact %+v", a)
	}
	ref, err := registry.ParseReference(a.Reference)
	if err != nil {
		t.Fatal(err)
	}
	ropts := registry.Options{Insecure: true}
	if _, err := signing.Verify(context.Background(), ref, signing.VerifyOptions{Key: pub, Registry: ropts}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	art, desc, err := registry.Get(context.Background(), ref.WithTag("1.36.4"), ropts)
	if err != nil || desc.Digest.String() != a.Digest {
		t.Fatalf("tag 1.36.4: %v %v", desc.Digest, err)
	}
	raw, err := art.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ArtifactType string            `json:"artifactType"`
		Layers       []v1.Descriptor   `json:"layers"`
		Annotations  map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactType || len(m.Layers) != 2 {
		t.Fatalf("manifest %s", raw)
	}
	if m.Layers[0].MediaType != disk.MediaTypes["qcow2"] || m.Layers[0].Annotations["org.opencontainers.image.title"] != "node.qcow2" ||
		m.Layers[1].MediaType != disk.MediaTypes["raw"] || m.Layers[1].Size != 4096 {
		t.Errorf("layers %+v", m.Layers)
	}
	if m.Annotations[AnnotationSourceDigest] != someDigest || m.Annotations[AnnotationSourceImage] != host+"/nodes@"+someDigest || m.Annotations["team"] != "release" {
		t.Errorf("annotations %v", m.Annotations)
	}
}

// TestPushByDigestAndToLayout: without a tag a registry gets the artifact by
// digest only; a layout gets it signed, and both verify.
func TestPushByDigestAndToLayout(t *testing.T) {
	fixture.Isolate(t)
	host := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	for _, repo := range []string{host + "/disks/node", "oci:" + filepath.Join(t.TempDir(), "disks")} {
		var p PostProcessor
		if err := p.Configure(map[string]any{"repository": repo, "sign_key": priv, "insecure": true}); err != nil {
			t.Fatal(err)
		}
		out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), &packersdk.MockArtifact{FilesValue: disks(t)})
		if err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		ref, err := registry.ParseReference(out.(*Artifact).Reference)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signing.Verify(context.Background(), ref, signing.VerifyOptions{Key: pub, Registry: registry.Options{Insecure: true}}); err != nil {
			t.Errorf("verify %s: %v", ref, err)
		}
	}
	// Nothing was tagged in the registry.
	if _, _, err := registry.Get(context.Background(), registry.MustParse(host+"/disks/node:latest"), registry.Options{Insecure: true}); err == nil {
		t.Errorf("a push without a tag tagged latest")
	}
}

// TestPushReproducible: the same disks give the same digest (the
// manifest holds no time), and a layout receives them.
func TestPushReproducible(t *testing.T) {
	fixture.Isolate(t)
	files := disks(t)
	var digests []string
	for i := 0; i < 2; i++ {
		var p PostProcessor
		if err := p.Configure(map[string]any{"repository": "oci:" + filepath.Join(t.TempDir(), "disks") + ":v1", "source_image": someDigest}); err != nil {
			t.Fatal(err)
		}
		out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), &packersdk.MockArtifact{FilesValue: files})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, out.Id())
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestRefusesWrongOrMissingDisks(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake.qcow2")
	if err := os.WriteFile(fake, []byte("not a disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		files []string
		want  string
	}{
		"bad qcow2 header": {[]string{fake}, `not a qcow2 image (header "not "`},
		"no disks":         {[]string{notes}, "no disk files"},
		"missing file":     {[]string{filepath.Join(dir, "gone.raw")}, "gone.raw"},
	} {
		t.Run(name, func(t *testing.T) {
			var p PostProcessor
			if err := p.Configure(map[string]any{"repository": "oci:" + filepath.Join(t.TempDir(), "d") + ":v1"}); err != nil {
				t.Fatal(err)
			}
			_, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), &packersdk.MockArtifact{FilesValue: tc.files})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
