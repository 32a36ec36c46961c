package recipes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A from: that is a symlink out of the recipe's folder, or that goes through
// a symlinked folder, must not be read: before containment both passed
// validation and put the target into the image.
func TestFromSymlinkEscapes(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "recipe")
	secret := filepath.Join(top, "shadow")
	mustWrite(t, secret, "root:SECRET-HASH:1::::::\n")
	mustWrite(t, filepath.Join(top, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\n")
	mustWrite(t, filepath.Join(dir, "files", "ok.conf"), "fine\n")
	for link, target := range map[string]string{
		"files/shadow.conf": secret,                    // symlinked file
		"etc":               filepath.Join(top, "etc"), // symlinked folder
		"files/inside.conf": "ok.conf",                 // symlink that stays inside
		"units":             "files",                   // symlinked folder that stays inside
		"files/rel.conf":    "../../shadow",            // relative symlink out
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	recipe := func(from string, unit bool) string {
		s := "apiVersion: prebake.dev/v1alpha1\nkind: Recipe\nmetadata:\n  name: r\nplatforms: [linux/amd64]\ncomponents:\n  - name: c\n"
		if unit {
			return s + "    systemd:\n      units:\n        - name: x.service\n          from: " + from + "\n"
		}
		return s + "    files:\n      - path: /etc/x\n        from: " + from + "\n"
	}
	for _, tc := range []struct {
		from   string
		unit   bool
		target string // "" when it must resolve
	}{
		{"files/shadow.conf", false, secret},
		{"files/rel.conf", false, secret},
		{"etc/passwd", false, filepath.Join(top, "etc", "passwd")},
		{"files/shadow.conf", true, secret},
		{"etc/passwd", true, filepath.Join(top, "etc", "passwd")},
		{"files/ok.conf", false, ""},
		{"files/inside.conf", false, ""},
		{"units/ok.conf", true, ""},
	} {
		p := filepath.Join(dir, "recipe.yaml")
		mustWrite(t, p, recipe(tc.from, tc.unit))
		r, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Resolve(ResolveOptions{})
		if tc.target == "" {
			if err != nil {
				t.Errorf("from %s (unit %v): %v", tc.from, tc.unit, err)
			} else if c := res.Builds[0].Components[0].Files[0].Content; c != "fine\n" {
				t.Errorf("from %s: content %q", tc.from, c)
			}
			continue
		}
		if err == nil {
			t.Errorf("from %s (unit %v) resolved; content %q", tc.from, tc.unit, res.Builds[0].Components[0].Files[0].Content)
			continue
		}
		field := "components[0].files[0].from"
		if tc.unit {
			field = "components[0].systemd.units[0].from"
		}
		msg := err.Error()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(msg, p+":") || !strings.Contains(msg, field) ||
			!strings.Contains(msg, "resolves to "+tc.target) || strings.Contains(msg, "SECRET") {
			t.Errorf("from %s (unit %v): want file, field %s and target %s in:\n%v", tc.from, tc.unit, field, tc.target, err)
		}
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The lock's size reaches the resolved source (the fetcher's cap) without
// changing the recipe's digest.
func TestLockSize(t *testing.T) {
	sum := strings.Repeat("a", 64)
	lock := func(size string) *Lock {
		l, err := ParseLock("r.lock.yaml", []byte("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n  - url: https://example.com/x\n    sha256: "+sum+size+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	r, err := Parse("r.yaml", []byte("apiVersion: prebake.dev/v1alpha1\nkind: Recipe\nmetadata:\n  name: r\nplatforms: [linux/amd64]\ncomponents:\n  - name: c\n    sources:\n      - url: https://example.com/x\n        dest: /usr/bin/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	with, err := r.Resolve(ResolveOptions{Lock: lock("\n    size: 1234")})
	if err != nil {
		t.Fatal(err)
	}
	without, err := r.Resolve(ResolveOptions{Lock: lock("")})
	if err != nil {
		t.Fatal(err)
	}
	if got := with.Builds[0].Components[0].Sources[0].Size; got != 1234 {
		t.Errorf("size %d, want 1234", got)
	}
	if with.Digest != without.Digest {
		t.Error("the lock's size changed the recipe digest")
	}
	if _, err := ParseLock("r.lock.yaml", []byte("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n  - url: u\n    sha256: "+sum+"\n    size: -1\n")); err == nil || !strings.Contains(err.Error(), "sources[0].size") {
		t.Errorf("negative size: %v", err)
	}
}
