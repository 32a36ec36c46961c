package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestCatalogList(t *testing.T) {
	out, _, err := runPrebake(t, "catalog", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubernetes-node", "kubernetes-control-plane", "1.36.0-1.36.4, 1.35.0-1.35.8, 1.34.0-1.34.11"} {
		if !strings.Contains(out, want) {
			t.Errorf("catalog list lacks %s:\n%s", want, out)
		}
	}
	out, _, err = runPrebake(t, "catalog", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Name             string
		Versions, Ranges []string
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Name != "kubernetes-node" || len(list[1].Versions) != 26 || list[1].Versions[0] != "1.36.4" || len(list[1].Ranges) != 3 {
		t.Errorf("catalog list --json: %+v", list)
	}
}

func TestCatalogShowJSON(t *testing.T) {
	out, _, err := runPrebake(t, "catalog", "show", "kubernetes-node", "--kubernetes", "1.35.2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	// recipes.Mode marshals as a string only; decode what is checked.
	var show struct {
		Versions []struct {
			Kubernetes, Crictl string
			Platforms          []struct {
				Platform   string
				Components []struct {
					Sources []struct{ URL, SHA256 string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil {
		t.Fatal(err)
	}
	if len(show.Versions) != 1 || show.Versions[0].Kubernetes != "1.35.2" || show.Versions[0].Crictl != "1.35.0" || len(show.Versions[0].Platforms) != 2 {
		t.Fatalf("unexpected show output: %+v", show)
	}
	n := 0
	for _, p := range show.Versions[0].Platforms {
		for _, c := range p.Components {
			for _, s := range c.Sources {
				n++
				if len(s.SHA256) != 64 || !strings.Contains(s.URL, strings.TrimPrefix(p.Platform, "linux/")) {
					t.Errorf("%s: source %+v", p.Platform, s)
				}
			}
		}
	}
	if n != 16 { // 8 downloads (prebake-agent too) x 2 platforms
		t.Errorf("%d sources, want 16", n)
	}
	if _, _, err := runPrebake(t, "catalog", "show", "kubernetes-node", "--kubernetes", "1.30.0"); err == nil || !strings.Contains(err.Error(), "1.36.4") {
		t.Errorf("show of an unsupported version: %v", err)
	}
}

func TestRecipeByCatalogName(t *testing.T) {
	// A directory named like the recipe does not hide it; a file does.
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("kubernetes-control-plane", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("kubernetes-node", []byte("kind: Recipe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runPrebake(t, "recipe", "validate", "kubernetes-node"); err == nil {
		t.Fatal("the file kubernetes-node was not read")
	}
	if err := os.Remove("kubernetes-node"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runPrebake(t, "recipe", "show", "kubernetes-control-plane", "--set", "kubernetes=1.34.1", "--platform", "linux/arm64", "--json", "--locked")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Name, Version string
		Variables     map[string]string
		Builds        []struct{ Arch string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Name != "kubernetes-control-plane" || res.Version != "1.34.1" || res.Variables["crictl"] != "1.34.0" || res.Variables["pause"] != "3.10.1" || len(res.Builds) != 1 || res.Builds[0].Arch != "arm64" {
		t.Fatalf("resolved: %s %s %v %d builds", res.Name, res.Version, res.Variables, len(res.Builds))
	}
	_, _, err = runPrebake(t, "recipe", "validate", "kubernetes-node", "--set", "kubernetes=1.33.0")
	if err == nil {
		t.Fatal("kubernetes=1.33.0 accepted")
	}
	_, _, err = runPrebake(t, "recipe", "show", "kubernetes-node", "--set", "kubernetes=1.33.0")
	if err == nil || !strings.Contains(err.Error(), "unsupported Kubernetes version") || !strings.Contains(err.Error(), "1.34.1") {
		t.Fatalf("unsupported version error: %v", err)
	}
}
