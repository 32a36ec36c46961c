package recipes

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseLock: arbitrary lock files parse or fail with problems, never
// panic; an accepted lock marshals and parses back to the same entries.
func FuzzParseLock(f *testing.F) {
	paths, _ := filepath.Glob("../examples/*/*.lock.yaml")
	cat, _ := filepath.Glob("catalog/*/*.lock.yaml")
	for _, p := range append(paths, cat...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n  - url: u\n    sha256: x\n    size: -1\nimages:\n  - ref: a\n    digest: b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLock("fuzz.lock.yaml", b)
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := ParseLock("again.lock.yaml", out)
		if err != nil {
			t.Fatalf("a lock that parsed does not parse after Marshal: %v\n%s", err, out)
		}
		if len(back.Sources) != len(l.Sources) || len(back.Images) != len(l.Images) {
			t.Fatalf("round trip lost entries:\n%s", out)
		}
		for _, s := range l.Sources {
			if got, _ := back.SHA256(s.URL); got != s.SHA256 && func() bool { v, _ := l.SHA256(s.URL); return v == s.SHA256 }() {
				t.Fatalf("%s: %s after round trip, %s before", s.URL, got, s.SHA256)
			}
		}
	})
}
