package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return nil
	})
	return out
}

func TestApplyWritesFilesAndClaims(t *testing.T) {
	root := t.TempDir()
	c := goodConfig()
	if err := Apply(c, root); err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Files {
		fi, err := os.Stat(filepath.Join(root, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, f.Path))
		if string(b) != string(f.Content) {
			t.Errorf("%s: content %q", f.Path, b)
		}
		if got := fi.Mode().Perm(); got.String() != os.FileMode(map[string]uint32{"0600": 0o600, "0644": 0o644}[f.Mode]).String() {
			t.Errorf("%s: mode %v, want %s", f.Path, got, f.Mode)
		}
	}
	fi, err := os.Stat(filepath.Join(root, StampPath))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stamp: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, StampPath)); strings.Contains(string(b), testToken) {
		t.Error("the stamp holds the token")
	}
	if fi, _ := os.Stat(filepath.Join(root, Dir)); fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", Dir, fi.Mode().Perm())
	}
	if p, ok := Joined(root); !ok || p != StampPath {
		t.Errorf("Joined = %s %v", p, ok)
	}
	// No staging files left behind.
	for _, p := range listTree(t, root) {
		if strings.Contains(p, ".prebake-") {
			t.Errorf("left behind: %s", p)
		}
	}
}

// A second run (a second boot, or a second path racing) does not join again
// and does not touch the files.
func TestApplyIdempotent(t *testing.T) {
	root := t.TempDir()
	if err := Apply(goodConfig(), root); err != nil {
		t.Fatal(err)
	}
	join := filepath.Join(root, KubeadmJoinPath)
	os.WriteFile(join, []byte("changed by the kubeadm join\n"), 0o600)
	c := goodConfig()
	if err := Apply(c, root); !errors.Is(err, ErrJoined) {
		t.Fatalf("second Apply: %v, want ErrJoined", err)
	}
	if b, _ := os.ReadFile(join); string(b) != "changed by the kubeadm join\n" {
		t.Error("second Apply rewrote a file")
	}
}

// A node that joined through cloud-init on an earlier boot (kubelet.conf)
// is not joined again by the agent.
func TestApplyAfterCloudInitJoin(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "/etc/kubernetes"), 0o755)
	os.WriteFile(filepath.Join(root, KubeletConfPath), []byte("x"), 0o600)
	if err := Apply(goodConfig(), root); !errors.Is(err, ErrJoined) {
		t.Fatalf("Apply: %v, want ErrJoined", err)
	}
	if got := listTree(t, root); len(got) != 1 {
		t.Errorf("wrote %v", got)
	}
}

// A failure before the claim leaves nothing: no file, no stamp, no temp.
func TestApplyNothingHalfWritten(t *testing.T) {
	for name, mut := range map[string]func(root string, c *Config){
		"parent is a file": func(root string, c *Config) {
			os.MkdirAll(filepath.Join(root, "/etc"), 0o755)
			os.WriteFile(filepath.Join(root, "/etc/blocked"), nil, 0o644)
			c.Files = append(c.Files, File{Path: "/etc/blocked/file", Mode: "0644", Content: []byte("x")})
		},
		"destination is a directory": func(root string, c *Config) {
			os.MkdirAll(filepath.Join(root, "/etc/dir"), 0o755)
			c.Files = append(c.Files, File{Path: "/etc/dir", Mode: "0644", Content: []byte("x")})
		},
		"unknown owner": func(root string, c *Config) {
			os.MkdirAll(filepath.Join(root, "/etc"), 0o755)
			os.WriteFile(filepath.Join(root, "/etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
			c.Files = append(c.Files, File{Path: "/etc/x", Mode: "0644", Owner: "nobody:nogroup", Content: []byte("x")})
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			c := goodConfig()
			mut(root, c)
			before := listTree(t, root)
			if err := Apply(c, root); err == nil {
				t.Fatal("Apply succeeded")
			} else if strings.Contains(err.Error(), testToken) {
				t.Errorf("error quotes the token: %v", err)
			}
			if after := listTree(t, root); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("files before %v, after %v", before, after)
			}
			if _, ok := Joined(root); ok {
				t.Error("claimed")
			}
		})
	}
}

func TestApplyOwner(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "/etc"), 0o755)
	os.WriteFile(filepath.Join(root, "/etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nkube:x:1234:1234::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "/etc/group"), []byte("root:x:0:\nkube:x:2345:\n"), 0o644)
	c := goodConfig()
	c.Files = append(c.Files, File{Path: "/etc/kube.conf", Mode: "0640", Owner: "kube:kube", Content: []byte("x")})
	if err := Apply(c, root); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return
	}
	fi, _ := os.Stat(filepath.Join(root, "/etc/kube.conf"))
	if st := statOwner(fi); st != [2]int{1234, 2345} {
		t.Errorf("owner %v, want 1234:2345", st)
	}
}

func TestFail(t *testing.T) {
	root := t.TempDir()
	if err := Fail(root, "bad block"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, FailedPath))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi, err)
	}
}
