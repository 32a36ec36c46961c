package recipes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuickstartResolves(t *testing.T) {
	r, err := Load("../examples/quickstart/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := LoadLock(LockPath(r.File()), false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(ResolveOptions{Lock: lock, Set: map[string]string{"kubernetes": "1.36.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "1.36.5" || len(res.Builds) != 2 {
		t.Fatalf("version %q, %d builds", res.Version, len(res.Builds))
	}
	k8s := res.Builds[1].Components[2]
	if k8s.Sources[0].URL != "https://dl.k8s.io/release/v1.36.5/bin/linux/arm64/kubelet" {
		t.Errorf("url %s", k8s.Sources[0].URL)
	}
	var links []string
	for _, c := range res.Builds[0].Components {
		for _, f := range c.Files {
			if f.Target != "" {
				links = append(links, f.Path+" -> "+f.Target)
			}
		}
	}
	want := "/etc/systemd/system/multi-user.target.wants/containerd.service -> /etc/systemd/system/containerd.service," +
		"/etc/systemd/system/multi-user.target.wants/kubelet.service -> /etc/systemd/system/kubelet.service"
	if got := strings.Join(links, ","); got != want {
		t.Errorf("enable links:\n got %s\nwant %s", got, want)
	}
	// Same inputs, same digest; a different epoch, a different one.
	again, _ := r.Resolve(ResolveOptions{Lock: lock, Set: map[string]string{"kubernetes": "1.36.5"}})
	if again.Digest != res.Digest {
		t.Error("resolving twice gave two digests")
	}
	e := int64(5)
	other, _ := r.Resolve(ResolveOptions{Lock: lock, Set: map[string]string{"kubernetes": "1.36.5"}, SourceDateEpoch: &e})
	if other.Digest == res.Digest || other.Epoch != 5 {
		t.Error("SOURCE_DATE_EPOCH did not override the recipe's epoch")
	}
}

func TestBadRecipes(t *testing.T) {
	for _, tc := range []struct {
		file string
		set  map[string]string
		want []string // each must appear in the error
	}{
		{"unknown-field.yaml", nil, []string{
			`unknown-field.yaml:5:3: metadata.colour: unknown field "colour"`,
			`unknown-field.yaml:11:7: components[0].kernel.modprobe: unknown field "modprobe"`,
		}},
		{"missing-checksum.yaml", nil, []string{
			`missing-checksum.yaml:11:9: components[0].sources[0].sha256: missing checksum for https://example.com/tool-arm64 (linux/arm64)`,
		}},
		{"duplicate-dest.yaml", nil, []string{
			`duplicate-dest.yaml:13:9: components[1].files[0].path: destination /etc/thing.conf is also installed by components[0].files[0].path`,
		}},
		{"escape.yaml", nil, []string{
			`escape.yaml:9:9: components[0].files[0].path: destination "/etc/../../root/.ssh/authorized_keys" escapes with '..'`,
			`escape.yaml:11:9: components[0].files[1].path: destination "relative/file" must be an absolute path`,
			`escape.yaml:14:9: components[0].files[2].from: from "../../outside.txt" must be a path inside the recipe's directory`,
		}},
		{"unknown-variable.yaml", nil, []string{
			`unknown-variable.yaml:10:5: components[0].version: unknown variable "kubernets" (declared: kubernetes)`,
		}},
		{"unknown-variable.yaml", map[string]string{"kubernetes": "1.36.5", "etcd": "3.6"}, []string{
			`--set etcd: unknown variable "etcd"`,
		}},
		{"bad-enable.yaml", nil, []string{
			`bad-enable.yaml:5:26: platforms[1]: unsupported platform "linux/riscv64"`,
			`components[0].systemd.enable[0]: unit "foo.service" has no [Install]`,
			`components[0].systemd.enable[1]: unit "bar.service" is not defined`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tc.file)
			r, err := Load(path)
			if err == nil {
				_, err = r.Resolve(ResolveOptions{Set: tc.set})
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLockRoundTrip(t *testing.T) {
	l := &Lock{}
	l.Add("https://b.example/x", strings.Repeat("b", 64))
	l.Add("https://a.example/x", strings.Repeat("a", 64))
	l.Add("https://b.example/x", strings.Repeat("c", 64))
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "r.lock.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLock(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := got.SHA256("https://b.example/x"); s != strings.Repeat("c", 64) || got.Sources[0].URL != "https://a.example/x" {
		t.Errorf("lock round trip: %+v", got.Sources)
	}
	if _, err := ParseLock("x.lock.yaml", []byte("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n  - url: u\n    sha256: nothex\n    extra: 1\n")); err == nil ||
		!strings.Contains(err.Error(), `x.lock.yaml:6:5: sources[0].extra: unknown field "extra"`) ||
		!strings.Contains(err.Error(), "sources[0].sha256: sha256 must be 64 lowercase hex") {
		t.Errorf("bad lock: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../examples/quickstart/recipe.yaml", "testdata/bad/escape.yaml", "testdata/bad/unknown-field.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse("fuzz.yaml", b)
		if err == nil {
			r.Resolve(ResolveOptions{})
		}
	})
}
