package safepath

import (
	"strings"
	"testing"
)

// FuzzReadFile: no name, however built, reads a file outside the base.
func FuzzReadFile(f *testing.F) {
	base, _ := tree(f)
	for _, s := range []string{"in.txt", "sub/in.txt", "abs-link", "rel-link", "dir-link/x", "../secret.txt", "sub/../../secret.txt", "ok-link", "sub/up-link", "loop", "fifo", "./", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		b, err := ReadFile(base, name, 1<<10)
		if err != nil {
			return
		}
		if strings.Contains(string(b), "SECRET") || !strings.HasPrefix(string(b), "inside") {
			t.Fatalf("%q read %q", name, b)
		}
	})
}
