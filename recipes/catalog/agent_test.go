package catalog

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prebake/prebake/internal/agentbuild"
	"github.com/prebake/prebake/recipes"
)

// The catalog's prebake-agent entries are what this repository builds: the
// lock pins the release assets, and anyone can rebuild them (go.mod's Go,
// static, -trimpath, no build ID) and get the same bytes. A change to the
// agent without `make agent-lock` fails here.
func TestAgentLockMatchesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds prebake-agent for every catalog architecture")
	}
	root := filepath.Join("..", "..")
	v, err := agentbuild.Version(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range List() {
		b, err := os.ReadFile(filepath.Join(name, "recipe.lock.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		have := agentbuild.Entries(b)
		if len(have) != len(agentbuild.Arches) {
			t.Errorf("%s: %d prebake-agent lock entries, want %d", name, len(have), len(agentbuild.Arches))
		}
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Recipe.Variables["agent"]; got != v {
			t.Errorf("%s: variable agent = %q, cmd/prebake-agent's Version = %q", name, got, v)
		}
	}
	for _, arch := range agentbuild.Arches {
		sum, err := agentbuild.Build(context.Background(), root, arch, filepath.Join(dir, arch))
		if err != nil {
			t.Fatal(err)
		}
		u := agentbuild.ReleaseURL + agentbuild.AssetPath(v, arch)
		for _, name := range List() {
			b, _ := os.ReadFile(filepath.Join(name, "recipe.lock.yaml"))
			if got := agentbuild.Entries(b)[u]; got != sum {
				t.Errorf("%s: %s: lock sha256 %q, a build of this repository gives %s: run `make agent-lock`", name, u, got, sum)
			}
		}
	}
}

// Both catalog recipes bake the agent, resolve its URL from the lock and
// declare it for render (dev.prebake.agent).
func TestRecipesBakeAgent(t *testing.T) {
	for _, name := range List() {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if e.Recipe.Metadata.Annotations["dev.prebake.agent"] != "prebake-agent.service" {
			t.Errorf("%s: no dev.prebake.agent annotation", name)
		}
		res, err := e.Recipe.Resolve(recipes.ResolveOptions{Lock: e.Lock, Locked: true})
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, p := range res.Builds {
			for _, c := range p.Components {
				for _, s := range c.Sources {
					if s.Dest == "/usr/local/bin/prebake-agent" && s.SHA256 != "" {
						found++
					}
				}
			}
		}
		if found != len(agentbuild.Arches) {
			t.Errorf("%s: prebake-agent resolved on %d platforms, want %d", name, found, len(agentbuild.Arches))
		}
	}
}
