package fetch

import (
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
)

// FuzzLocate: whatever a recipe or lock puts in a source URL, a mirrored
// location stays under its mirror's root, a file:// location names a
// relative path without "..", and an unmirrored file:// URL is refused.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{
		"https://dl.k8s.io/release/v1.36.4/bin/linux/amd64/kubelet", "https://dl.k8s.io/../../etc/shadow",
		"https://dl.k8s.io/release/%2e%2e/%2E%2e/x", "https://dl.k8s.io/a/..%2f..%2fb", "https://github.com/o/r/../../x?y=../z#f",
		"file:///etc/shadow", "https://dl.k8s.io.evil.example/x", "https://dl.k8s.io", "http://[::1]:80/x", "https://dl.k8s.io/%zz",
	} {
		f.Add(s)
	}
	fetcher, err := New(WithCacheDir(f.TempDir()), WithMirrors(
		Mirror{From: "https://dl.k8s.io/", To: "file:///srv/mirror/k8s/"},
		Mirror{From: "https://github.com", To: "https://mirror.example/gh"},
	))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := fetcher.Locate(raw)
		if err != nil {
			return
		}
		u, err := url.Parse(loc.URL)
		if err != nil {
			t.Fatalf("%q located as unparsable %q", raw, loc.URL)
		}
		if slices.Contains(strings.Split(u.Path, "/"), "..") {
			t.Fatalf("%q located as %q, with ..", raw, loc.URL)
		}
		switch {
		case u.Scheme == "file" && !loc.Mirrored:
			t.Fatalf("%q: unmirrored file URL %q accepted", raw, loc.URL)
		case u.Scheme == "file":
			if !strings.HasPrefix(u.Path, "/srv/mirror/k8s/") || loc.root != "/srv/mirror/k8s" || path.IsAbs(loc.name) || slices.Contains(strings.Split(loc.name, "/"), "..") {
				t.Fatalf("%q located as %q (root %q, name %q): outside the mirror", raw, loc.URL, loc.root, loc.name)
			}
		case loc.Mirrored:
			if u.Host != "mirror.example" || !strings.HasPrefix(u.Path, "/gh/") && u.Path != "/gh" {
				t.Fatalf("%q located as %q: outside the mirror", raw, loc.URL)
			}
		}
	})
}
