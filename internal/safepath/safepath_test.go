package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// tree builds base/ with in.txt, sub/in.txt and, next to base, secret.txt,
// plus the symlinks a hostile recipe or spec would use.
func tree(t testing.TB) (base, secret string) {
	t.Helper()
	top := t.TempDir()
	base = filepath.Join(top, "base")
	secret = filepath.Join(top, "secret.txt")
	for p, c := range map[string]string{
		secret:                               "SECRET",
		filepath.Join(base, "in.txt"):        "inside",
		filepath.Join(base, "sub", "in.txt"): "inside sub",
		filepath.Join(top, "outdir", "x"):    "SECRET DIR",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"abs-link":    secret,                        // symlinked file, absolute target
		"rel-link":    "../secret.txt",               // symlinked file, relative target
		"dir-link":    filepath.Join(top, "outdir"),  // symlinked folder
		"ok-link":     "sub/in.txt",                  // stays inside
		"sub/up-link": "../in.txt",                   // stays inside through ..
		"loop":        "loop",                        // symlink loop
		"abs-inside":  filepath.Join(base, "in.txt"), // absolute target: refused even inside
		"dangling":    filepath.Join(top, "missing"), // outside and missing
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(base, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, secret
}

func TestReadFileContained(t *testing.T) {
	base, secret := tree(t)
	for _, tc := range []struct {
		name, want string
	}{
		{"in.txt", "inside"},
		{"sub/in.txt", "inside sub"},
		{"sub/../in.txt", "inside"},
		{"ok-link", "inside sub"},
		{"sub/up-link", "inside"},
	} {
		b, err := ReadFile(base, tc.name, 0)
		if err != nil || string(b) != tc.want {
			t.Errorf("ReadFile(%q) = %q, %v; want %q", tc.name, b, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, target string
	}{
		{"abs-link", secret},
		{"rel-link", secret},
		{"dir-link/x", filepath.Join(filepath.Dir(secret), "outdir", "x")},
		{"../secret.txt", secret},
		{"sub/../../secret.txt", secret},
		{secret, secret},
	} {
		b, err := ReadFile(base, tc.name, 0)
		var esc *EscapeError
		if !errors.As(err, &esc) || !errors.Is(err, ErrEscapes) {
			t.Errorf("ReadFile(%q) = %q, %v; want an EscapeError", tc.name, b, err)
			continue
		}
		if esc.Target != tc.target || !strings.Contains(err.Error(), tc.target) {
			t.Errorf("ReadFile(%q): %v; want it to say it resolves to %s", tc.name, err, tc.target)
		}
		if err := Within(base, tc.name); !errors.Is(err, ErrEscapes) {
			t.Errorf("Within(%q) = %v, want ErrEscapes", tc.name, err)
		}
	}
	for _, name := range []string{"in.txt", "sub/up-link", "ok-link", "missing-inside"} {
		if err := Within(base, name); err != nil {
			t.Errorf("Within(%q) = %v", name, err)
		}
	}
	// Never readable, never hanging: loops, dangling links out, FIFOs, dirs.
	for _, name := range []string{"loop", "dangling", "fifo", "sub", "missing"} {
		if b, err := ReadFile(base, name, 0); err == nil {
			t.Errorf("ReadFile(%q) = %q, want an error", name, b)
		}
	}
	if _, err := ReadFile(base, "fifo", 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("fifo: %v, want ErrNotRegular", err)
	}
}

func TestAbsoluteSymlinkRefused(t *testing.T) {
	base, _ := tree(t)
	_, err := ReadFile(base, "abs-inside", 0)
	var esc *EscapeError
	if !errors.As(err, &esc) || !esc.Absolute || !strings.Contains(err.Error(), "absolute target") {
		t.Errorf("abs-inside: %v, want an EscapeError for an absolute symlink", err)
	}
}

func TestReadFileLimit(t *testing.T) {
	base, _ := tree(t)
	if _, err := ReadFile(base, "in.txt", 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 3: %v, want ErrTooLarge", err)
	}
	if b, err := ReadFile(base, "in.txt", 6); err != nil || string(b) != "inside" {
		t.Errorf("limit 6: %q, %v", b, err)
	}
}

func TestReadFileFS(t *testing.T) {
	fsys := fstest.MapFS{"a/b.txt": {Data: []byte("b")}}
	if b, err := ReadFileFS(fsys, "a/b.txt", 0); err != nil || string(b) != "b" {
		t.Errorf("ReadFileFS = %q, %v", b, err)
	}
	for _, name := range []string{"../a/b.txt", "/a/b.txt", "a/../a/b.txt"} {
		if _, err := ReadFileFS(fsys, name, 0); !errors.Is(err, ErrEscapes) {
			t.Errorf("ReadFileFS(%q) = %v, want ErrEscapes", name, err)
		}
	}
}
