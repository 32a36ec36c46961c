package cloudinit

import (
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzRenderRoundTrip renders every spec the parser accepts and reads the
// output back: the cloud-config must be YAML whose write_files hold each
// spec file's exact content and mode, the Ignition config must be JSON.
func FuzzRenderRoundTrip(f *testing.F) {
	pinned := strings.Replace(baseSpec, "caCertFile: ca.crt", "caCertHashes: [sha256:"+strings.Repeat("ab", 32)+"]", 1)
	for _, s := range []string{
		pinned,
		pinned + "files:\n  - path: /etc/motd\n    content: \"hello\\n\"\n",
		pinned + "files:\n  - path: /etc/a\n    content: |\n      ---\n      #cloud-config\n      key: 'v'\n    permissions: \"0640\"\n",
		pinned + "files:\n  - path: /root/.ssh/id\n    content: \"-----BEGIN OPENSSH PRIVATE KEY-----\\nx\\n\"\n",
		pinned + "files:\n  - path: /etc/s\n    content: \"  leading\\ttab: and colon # not a comment\\n\"\n    secret: true\n",
		pinned + "ntp:\n  servers: [time.example.com]\nproxy:\n  https: http://proxy:3128\n  noProxy: [10.0.0.0/8]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, nc := range specs {
			out, err := Render(nc, Options{KubernetesVersion: "1.36.4"})
			if err != nil {
				continue
			}
			var doc struct {
				WriteFiles []struct {
					Path        string `yaml:"path"`
					Content     string `yaml:"content"`
					Permissions string `yaml:"permissions"`
				} `yaml:"write_files"`
			}
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatalf("rendered cloud-config is not YAML: %v\n%s", err, out)
			}
			for _, sf := range nc.Files {
				found := false
				for _, wf := range doc.WriteFiles {
					if wf.Path != sf.Path {
						continue
					}
					found = true
					if wf.Content != sf.Content || wf.Permissions != fileMode(&sf) {
						t.Fatalf("%s: rendered %q %s, spec %q %s", sf.Path, wf.Content, wf.Permissions, sf.Content, fileMode(&sf))
					}
				}
				if !found {
					t.Fatalf("%s is not in write_files:\n%s", sf.Path, out)
				}
			}
			ign, err := Render(nc, Options{KubernetesVersion: "1.36.4", Format: FormatIgnition})
			if err != nil {
				t.Fatalf("cloud-config renders but Ignition does not: %v", err)
			}
			var v map[string]any
			if err := json.Unmarshal(ign, &v); err != nil {
				t.Fatalf("rendered Ignition is not JSON: %v\n%s", err, ign)
			}
		}
	})
}
