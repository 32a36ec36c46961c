package recipes

import (
	"strings"
	"testing"
)

func TestRunConfig(t *testing.T) {
	const y = `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: pause, version: "3.10.2"}
platforms: [linux/amd64]
components:
  - name: pause
    files: [{path: /pause, content: "x", mode: "0755"}]
config:
  entrypoint: [/pause]
  env: [PATH=/]
  user: "65535:65535"
`
	r, err := Parse("recipe.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Config; c == nil || c.Entrypoint[0] != "/pause" || c.User != "65535:65535" || c.Env[0] != "PATH=/" {
		t.Fatalf("config %+v", res.Config)
	}

	bad := strings.Replace(y, "  entrypoint: [/pause]\n  env: [PATH=/]\n", "  env: [PATH]\n  workingDir: tmp\n", 1)
	if r, err = Parse("recipe.yaml", []byte(bad)); err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(ResolveOptions{})
	for _, w := range []string{`config.env[0]: env entry "PATH" must be NAME=VALUE`, `config.workingDir: workingDir "tmp" must be an absolute path`, "config: config needs an entrypoint or a cmd"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad config: want %q in %v", w, err)
		}
	}
	if _, err = Parse("recipe.yaml", []byte(strings.Replace(y, "  user:", "  shell: sh\n  user:", 1))); err == nil {
		t.Errorf("unknown config field accepted")
	}
}

func TestPrePullImages(t *testing.T) {
	pause := "sha256:" + strings.Repeat("3", 64)
	hello := "sha256:" + strings.Repeat("4", 64)
	extra := []Image{{Ref: "registry.k8s.io/pause:3.10.2", Digest: pause}, {Ref: "registry.test/hello:1", Digest: hello}}

	// A recipe without images gains a last component "images".
	const y = `apiVersion: prebake.dev/v1alpha1
kind: Recipe
metadata: {name: node}
platforms: [linux/amd64]
components:
  - name: kernel
    kernel: {modules: [overlay]}
`
	r, err := Parse("recipe.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(ResolveOptions{Images: extra})
	if err != nil {
		t.Fatal(err)
	}
	cs := res.Builds[0].Components
	if len(cs) != 2 || cs[1].Name != "images" || len(cs[1].Images) != 2 || cs[1].Images[0].Digest != pause || cs[1].Images[1].Ref != "registry.test/hello:1" {
		t.Fatalf("components %+v", cs)
	}
	if len(r.Components) != 1 {
		t.Errorf("Resolve changed the recipe: %d components", len(r.Components))
	}

	// A recipe with an images component: the images join it.
	r, err = Parse("recipe.yaml", []byte(imagesRecipe))
	if err != nil {
		t.Fatal(err)
	}
	lock := &Lock{}
	lock.AddImage("registry.k8s.io/coredns/coredns:v1.12.1", "sha256:"+strings.Repeat("2", 64))
	res, err = r.Resolve(ResolveOptions{Lock: lock, Images: extra[1:]})
	if err != nil {
		t.Fatal(err)
	}
	if cs := res.Builds[0].Components; len(cs) != 1 || len(cs[0].Images) != 3 || cs[0].Images[2].Digest != hello {
		t.Fatalf("components %+v", cs)
	}

	// Extra images follow the lock's rules: --locked needs them in the lock,
	// and a digest must agree with it.
	_, err = r.Resolve(ResolveOptions{Lock: lock, Locked: true, Images: extra[1:]})
	if err == nil || !strings.Contains(err.Error(), "image registry.test/hello:1 is not in the lock file (--locked)") {
		t.Errorf("locked: %v", err)
	}
	lock.AddImage("registry.test/hello:1", pause)
	_, err = r.Resolve(ResolveOptions{Lock: lock, Images: extra[1:]})
	if err == nil || !strings.Contains(err.Error(), "differs from the lock file's") {
		t.Errorf("digest disagreeing with the lock: %v", err)
	}
}
