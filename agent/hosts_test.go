package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAddHost(t *testing.T) {
	debian := "127.0.0.1\tlocalhost\n127.0.1.1\tprebake-node\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\n"
	for _, tc := range []struct {
		name, before, node, want string
	}{
		{"appended", debian, "worker-1", debian + "127.0.1.1 worker-1\n"},
		{"listed already", debian, "prebake-node", debian},
		{"listed among aliases, other case", "10.0.0.5 node.example worker-1 # mine\n", "WORKER-1", "10.0.0.5 node.example worker-1 # mine\n"},
		{"only in a comment", "# 127.0.1.1 worker-1\n", "worker-1", "# 127.0.1.1 worker-1\n127.0.1.1 worker-1\n"},
		{"as an address is no entry", "worker-1\n", "worker-1", "worker-1\n127.0.1.1 worker-1\n"},
		{"no final newline", "127.0.0.1 localhost", "worker-1", "127.0.0.1 localhost\n127.0.1.1 worker-1\n"},
		{"no file", "", "worker-1", "127.0.1.1 worker-1\n"},
		{"no name", debian, "", debian},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, HostsPath)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.before != "" {
				if err := os.WriteFile(p, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Twice: the second call (a second boot) changes nothing.
			for i := 0; i < 2; i++ {
				if err := AddHost(root, tc.node); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(p)
			if tc.before == "" && tc.node == "" {
				if !os.IsNotExist(err) {
					t.Fatalf("file written without a name: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b, tc.want)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi.Mode().Perm())
			}
		})
	}
}

func TestAddHostUnreadable(t *testing.T) {
	root := t.TempDir()
	// /etc/hosts a directory: a clear error, nothing written.
	if err := os.MkdirAll(filepath.Join(root, HostsPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := AddHost(root, "worker-1"); err == nil {
		t.Fatal("no error for a directory at /etc/hosts")
	}
}
