package catalog

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
)

// TestContainerdLoadsCatalogConfig has the real containerd parse the
// config.toml every catalog recipe installs, for every supported version:
// no warning (a migration from an old config version is one), and the
// settings the node relies on survive into containerd's own view.
func TestContainerdLoadsCatalogConfig(t *testing.T) {
	containerd := testenv.RealBinary(t, "PREBAKE_CONTAINERD", "containerd")
	out, err := exec.Command(containerd, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd --version: %v: %s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, name := range List() {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := e.Supported()
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			res, err := e.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": row.Kubernetes}, Locked: true})
			if err != nil {
				t.Fatal(err)
			}
			var config string
			for _, c := range res.Builds[0].Components {
				for _, f := range c.Files {
					if f.Path == "/etc/containerd/config.toml" {
						config = f.Content
					}
				}
			}
			if config == "" {
				t.Fatalf("%s %s: no /etc/containerd/config.toml", name, row.Kubernetes)
			}
			if seen[config] {
				continue
			}
			seen[config] = true
			p := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(containerd, "--config", p, "config", "dump")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %s: containerd config dump: %v\n%s", name, row.Kubernetes, err, stderr.String())
			}
			if s := strings.TrimSpace(stderr.String()); s != "" {
				t.Errorf("%s %s: containerd printed while loading the config:\n%s\n--- config.toml:\n%s", name, row.Kubernetes, s, config)
			}
			for _, w := range []string{"sandbox = 'registry.k8s.io/pause:" + row.Pause + "'", "BinaryName = '/usr/local/sbin/runc'", "SystemdCgroup = true", "conf_dir = '/etc/cni/net.d'"} {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("%s %s: containerd's view of the config lacks %s", name, row.Kubernetes, w)
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no catalog config checked")
	}
}
