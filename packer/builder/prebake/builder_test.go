package prebake

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func TestPrepareProblems(t *testing.T) {
	fixture.Isolate(t)
	recipe := testenv.Quickstart(t)
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string // substrings of the error; nil means valid
	}{
		{"minimal", map[string]any{"recipe": recipe}, nil},
		{"everything", map[string]any{
			"recipe": recipe, "variables": map[string]string{"kubernetes": "1.36.5"}, "platforms": []string{"linux/arm64"},
			"output": "oci:" + t.TempDir() + ":x", "push": "127.0.0.1:5000/nodes", "compression": "zstd",
			"mirrors": testenv.Mirrors(t), "source_date_epoch": "1767225600", "jobs": 2,
		}, nil},
		{"registry mirror for pre-pulled images", map[string]any{"recipe": recipe, "mirrors": []string{"registry.k8s.io=127.0.0.1:5000/k8s"}, "offline": true}, nil},
		{"bad registry mirror", map[string]any{"recipe": recipe, "mirrors": []string{"registry.k8s.io=https://x"}}, []string{"mirrors:", "registry.k8s.io=https://x"}},
		{"catalog recipe by name", map[string]any{"recipe": "kubernetes-node", "variables": map[string]string{"kubernetes": "1.35.2"}}, nil},
		{"unsupported catalog version", map[string]any{"recipe": "kubernetes-node", "variables": map[string]string{"kubernetes": "1.99.0"}}, []string{"recipe:", "supported:"}},
		{"sign without push", map[string]any{"recipe": recipe, "sign_key": "env://NONE"}, []string{"sign_key:", "set push"}},
		{"no recipe", map[string]any{}, []string{"recipe: required"}},
		{"missing recipe file", map[string]any{"recipe": "/nonexistent/recipe.yaml"}, []string{"recipe:", "/nonexistent/recipe.yaml"}},
		{"unknown variable", map[string]any{"recipe": recipe, "variables": map[string]string{"nope": "1"}}, []string{"recipe:", "nope"}},
		{"unknown platform", map[string]any{"recipe": recipe, "platforms": []string{"linux/s390x"}}, []string{"recipe:", "s390x"}},
		{"every problem at once", map[string]any{"compression": "lz4", "jobs": -1, "mirrors": []string{"nonsense"}, "sign_key": "/nonexistent/cosign.key"},
			[]string{"recipe: required", "compression: \"lz4\"", "jobs: -1", "mirrors:", "sign_key: key file /nonexistent/cosign.key does not exist"}},
		{"push by digest", map[string]any{"recipe": recipe, "push": "127.0.0.1:5000/nodes@sha256:" + strings.Repeat("a", 64)}, []string{"push:", "not a digest"}},
		{"push to a layout", map[string]any{"recipe": recipe, "push": "oci:" + t.TempDir()}, []string{"push:", "registry repository"}},
		{"output to a registry", map[string]any{"recipe": recipe, "output": "127.0.0.1:5000/nodes"}, []string{"output:", "use push"}},
		{"bad epoch", map[string]any{"recipe": recipe, "source_date_epoch": "yesterday"}, []string{"source_date_epoch"}},
		{"unknown option", map[string]any{"recipe": recipe, "recipes": "x"}, []string{"recipes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Builder
			_, _, err := b.Prepare(tc.raw)
			testenv.CheckError(t, tc.raw, err, tc.want...)
		})
	}
}

func TestPrepareDefaults(t *testing.T) {
	fixture.Isolate(t)
	var b Builder
	vars, _, err := b.Prepare(map[string]any{"recipe": testenv.Quickstart(t), "push": "127.0.0.1:5000/nodes"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(vars, ","); got != "PrebakeDigest,PrebakeReference,PrebakePushed" {
		t.Errorf("generated vars = %s", got)
	}
	if got, want := b.config.output.String(), "store:quickstart-node:1.36.4"; got != want {
		t.Errorf("output = %s, want %s", got, want)
	}
	if got, want := b.config.push.String(), "127.0.0.1:5000/nodes:1.36.4"; got != want {
		t.Errorf("push = %s, want %s", got, want)
	}
}

// TestRunPushSign builds the quickstart recipe from the stand-in mirror,
// writes it to a layout, pushes it to a loopback prebake registry and signs
// and attests it there; the signature must verify with the public key, and
// a second build must give the same digest.
func TestRunPushSign(t *testing.T) {
	testenv.Short(t, "builds an image")
	fixture.Isolate(t)
	host := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	out := filepath.Join(t.TempDir(), "out")
	cache := t.TempDir()
	run := func() *Artifact {
		var b Builder
		if _, _, err := b.Prepare(map[string]any{
			"recipe": testenv.Quickstart(t), "mirrors": testenv.Mirrors(t), "cache_dir": cache,
			"output": "oci:" + out, "push": host + "/nodes/quickstart", "insecure": true, "sign_key": priv,
		}); err != nil {
			t.Fatal(err)
		}
		a, err := b.Run(context.Background(), packersdk.TestUi(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		return a.(*Artifact)
	}
	a := run()
	if !strings.HasPrefix(a.Id(), "sha256:") || a.State("digest") != a.Id() {
		t.Fatalf("artifact id %q, digest state %v", a.Id(), a.State("digest"))
	}
	if want := host + "/nodes/quickstart@" + a.Digest; a.Pushed != want {
		t.Errorf("pushed = %s, want %s", a.Pushed, want)
	}
	if a.Signed != 3 { // the index and its two platform images
		t.Errorf("signed %d manifests, want 3", a.Signed)
	}
	if a.Attested < 2 { // the SBOM and the provenance, as prebake build --sign-key
		t.Errorf("%d attestations, want the SBOM's and the provenance's", a.Attested)
	}
	ref, err := registry.ParseReference(a.Pushed)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := signing.Verify(context.Background(), ref, signing.VerifyOptions{Key: pub, Registry: registry.Options{Insecure: true}})
	if err != nil {
		t.Fatalf("verify %s: %v", ref, err)
	}
	if vr.Digest != a.Digest {
		t.Errorf("verified %s, built %s", vr.Digest, a.Digest)
	}
	tagged, err := registry.ParseReference(host + "/nodes/quickstart:1.36.4")
	if err != nil {
		t.Fatal(err)
	}
	if _, desc, err := registry.Get(context.Background(), tagged, registry.Options{Insecure: true}); err != nil || desc.Digest.String() != a.Digest {
		t.Errorf("tag 1.36.4 names %v (%v), want %s", desc.Digest, err, a.Digest)
	}
	if _, err := os.Stat(filepath.Join(out, "index.json")); err != nil {
		t.Errorf("output layout: %v", err)
	}
	if again := run(); again.Digest != a.Digest {
		t.Errorf("rebuild gave %s, first build %s", again.Digest, a.Digest)
	}
}
