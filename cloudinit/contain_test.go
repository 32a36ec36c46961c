package cloudinit

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Files a node spec names must stay inside the spec's directory after
// symlinks are followed: before, contentFile: ../../etc/shadow (or a symlink
// to it, or a path through a symlinked folder) rendered the host file into
// world-readable user-data.
func TestSpecFilesContained(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "specs")
	if err := os.MkdirAll(filepath.Join(top, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shadow := writeFile(t, filepath.Join(top, "etc"), "shadow", []byte("root:SECRET-HASH:1::::::\n"))
	writeFile(t, dir, "ca.crt", mustRead(t, "testdata/ca.crt"))
	writeFile(t, dir, "mirror.toml", []byte("[plugins]\n"))
	writeFile(t, top, "token", []byte(secretToken+"\n"))
	for link, target := range map[string]string{
		"shadow-link": shadow,                            // symlinked file
		"etc":         filepath.Join(top, "etc"),         // symlinked folder
		"token-link":  "../token",                        // relative symlink out
		"ok-link":     "mirror.toml",                     // stays inside
		"abs-link":    filepath.Join(dir, "mirror.toml"), // absolute target inside: refused all the same
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	depth := strings.Repeat("../", strings.Count(dir, "/"))
	for _, tc := range []struct {
		name, edit, field, target string
	}{
		{"dotdot", "files:\n  - path: /etc/x\n    contentFile: " + depth + shadow[1:] + "\n", "files[0].contentFile", shadow},
		{"absolute", "files:\n  - path: /etc/x\n    contentFile: " + shadow + "\n", "files[0].contentFile", shadow},
		{"symlinked file", "files:\n  - path: /etc/x\n    contentFile: shadow-link\n", "files[0].contentFile", shadow},
		{"symlinked folder", "files:\n  - path: /etc/x\n    contentFile: etc/shadow\n", "files[0].contentFile", shadow},
		{"token", "", "cluster.bootstrapTokenFile", filepath.Join(top, "token")},
		{"ca", "", "cluster.caCertFile", shadow},
		{"absolute symlink", "files:\n  - path: /etc/x\n    contentFile: abs-link\n", "files[0].contentFile", "(to " + filepath.Join(dir, "mirror.toml") + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec + tc.edit
			switch tc.name {
			case "token":
				spec = strings.Replace(spec, "bootstrapToken: "+secretToken, "bootstrapTokenFile: token-link", 1)
			case "ca":
				spec = strings.Replace(spec, "caCertFile: ca.crt", "caCertFile: etc/shadow", 1)
			}
			p := writeFile(t, dir, "node.yaml", []byte(spec))
			specs, err := Load(p)
			if err == nil {
				out, _ := Render(specs[0], Options{KubernetesVersion: "1.36.4"})
				t.Fatalf("loaded; user-data:\n%s", out)
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("%T %v, want a *SpecError", err, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.target) ||
				strings.Contains(msg, "SECRET") || strings.Contains(msg, secretToken) {
				t.Errorf("want file %s, field %s, target %s in:\n%v", p, tc.field, tc.target, err)
			}
		})
	}

	// Inside the folder, through symlinks or not, is fine.
	spec := baseSpec +
		"files:\n  - path: /etc/a\n    contentFile: ok-link\n  - path: /etc/b\n    contentFile: ./sub/../mirror.toml\n"
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	specs, err := Load(writeFile(t, dir, "node.yaml", []byte(spec)))
	if err != nil {
		t.Fatal(err)
	}
	if got := specs[0].Files[0].Content + specs[0].Files[1].Content; got != "[plugins]\n[plugins]\n" {
		t.Errorf("contents %q", got)
	}
}

// A file holding a private key is written 0600 unless the spec says
// otherwise, and always warned about.
func TestPrivateKeyFileMode(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", mustRead(t, "testdata/ca.crt"))
	writeFile(t, dir, "id", []byte(key))
	for _, tc := range []struct {
		files, mode string
	}{
		{"files:\n  - path: /root/.ssh/id\n    contentFile: id\n", "0600"},
		{"files:\n  - path: /root/.ssh/id\n    contentFile: id\n    permissions: \"0640\"\n", "0640"},
		{"files:\n  - path: /root/.ssh/id\n    content: |\n      -----BEGIN RSA PRIVATE KEY-----\n      x\n", "0600"},
	} {
		specs, err := Load(writeFile(t, dir, "node.yaml", []byte(baseSpec+tc.files)))
		if err != nil {
			t.Fatal(err)
		}
		nc := specs[0]
		ws := Warnings(nc)
		if len(ws) != 1 || !strings.Contains(ws[0], "files[0]") || !strings.Contains(ws[0], "private key") || strings.Contains(ws[0], "b3Bl") {
			t.Errorf("warnings %q", ws)
		}
		for _, format := range []Format{FormatCloudConfig, FormatIgnition} {
			out, err := Render(nc, Options{KubernetesVersion: "1.36.4", Format: format})
			if err != nil {
				t.Fatal(err)
			}
			want := "permissions: \"" + tc.mode + "\""
			if format == FormatIgnition {
				want = `"mode": ` + modeDecimal(t, tc.mode)
			}
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: want %s in\n%s", format, want, out)
			}
		}
	}
	specs, err := Load(writeFile(t, dir, "node.yaml", []byte(baseSpec+"files:\n  - path: /etc/motd\n    content: hi\n")))
	if err != nil {
		t.Fatal(err)
	}
	if ws := Warnings(specs[0]); len(ws) != 0 {
		t.Errorf("warnings for a plain file: %q", ws)
	}
}

func modeDecimal(t *testing.T, octal string) string {
	t.Helper()
	m, err := strconv.ParseInt(octal, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(m, 10)
}
