package lock

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// newUpstream serves the stand-in mirror like dl.k8s.io and GitHub, with
// their checksum files (testenv.Upstream).
func newUpstream(t *testing.T) *testenv.Upstream {
	return testenv.NewUpstream(t, testenv.MirrorFiles(t))
}

// fetcher downloads through up, without retries.
func fetcher(t *testing.T, up *testenv.Upstream) *fetch.Fetcher {
	t.Helper()
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()), fetch.WithRetries(0),
		fetch.WithMirrors(
			fetch.Mirror{From: "https://dl.k8s.io/", To: up.URL + "/dl.k8s.io/"},
			fetch.Mirror{From: "https://github.com/", To: up.URL + "/github.com/"},
		))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// quickstart copies the quickstart recipe to a temporary directory with a
// lock that lacks Kubernetes 1.36.5 (or no lock at all), and returns it.
func quickstart(t *testing.T, withLock bool) (*recipes.Recipe, string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot(), "examples", "quickstart")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(dir, "recipe.lock.yaml")
	if withLock {
		l, err := recipes.LoadLock(lockPath, false)
		if err != nil {
			t.Fatal(err)
		}
		kept := &recipes.Lock{}
		for _, s := range l.Sources {
			if !strings.Contains(s.URL, "/v1.36.5/") {
				kept.Add(s.URL, s.SHA256)
			}
		}
		b, err := kept.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b = append([]byte("# Checksums of the stand-ins.\n# Second line.\n"), b...)
		if err := os.WriteFile(lockPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Remove(lockPath); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load(filepath.Join(dir, "recipe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return r, lockPath
}

func resolveLocked(t *testing.T, r *recipes.Recipe, lockPath, k8s string) error {
	t.Helper()
	l, err := recipes.LoadLock(lockPath, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": k8s}, Lock: l, Locked: true})
	return err
}

func TestUpdatePicksUpNewPatchVersion(t *testing.T) {
	up := newUpstream(t)
	r, lockPath := quickstart(t, true)
	if err := resolveLocked(t, r, lockPath, "1.36.5"); err == nil || !strings.Contains(err.Error(), "v1.36.5") || !strings.Contains(err.Error(), "not in the lock file") {
		t.Fatalf("1.36.5 resolves --locked before prebake lock: %v", err)
	}
	f := fetcher(t, up)
	res, err := Update(t.Context(), r, Options{Set: map[string]string{"kubernetes": "1.36.5"}, Fetcher: f, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.LockPath != lockPath || res.Known != 8 || len(res.Added) != 6 {
		t.Fatalf("result: %+v", res)
	}
	l, err := recipes.LoadLock(lockPath, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, bin := range []string{"kubeadm", "kubectl", "kubelet"} {
			p := fmt.Sprintf("/dl.k8s.io/release/v1.36.5/bin/linux/%s/%s", arch, bin)
			u := "https://" + p[1:]
			want := up.SHA256(t, p)
			if got, ok := l.SHA256(u); !ok || got != want {
				t.Errorf("lock has %s = %q (%v), want %s", u, got, ok, want)
			}
			if up.Count(p+".sha256") != 1 || up.Count(p) != 1 {
				t.Errorf("%s: %d checksum file and %d binary requests, want 1 and 1", p, up.Count(p+".sha256"), up.Count(p))
			}
			// Verified downloads are in the fetch cache for the build.
			if _, ok := f.Path(want); !ok {
				t.Errorf("%s is not in the fetch cache", u)
			}
			// and their size is locked: it caps the build's download.
			if got, want := l.Size(u), int64(len(up.File(t, p))); got != want || got == 0 {
				t.Errorf("lock has size %d for %s, want %d", got, u, want)
			}
		}
	}
	for _, e := range res.Added {
		if !e.Verified || e.ChecksumURL != e.URL+".sha256" {
			t.Errorf("entry %+v: want verified, checksum from URL.sha256", e)
		}
	}
	if b, _ := os.ReadFile(lockPath); !strings.HasPrefix(string(b), "# Checksums of the stand-ins.\n# Second line.\napiVersion: ") {
		t.Errorf("the lock's header comment is not kept:\n%s", b)
	}
	if len(l.Sources) != 20 {
		t.Errorf("lock has %d sources, want 20", len(l.Sources))
	}
	if err := resolveLocked(t, r, lockPath, "1.36.5"); err != nil {
		t.Errorf("1.36.5 does not resolve --locked after prebake lock: %v", err)
	}
	// Nothing new: the lock is not rewritten, nothing is downloaded.
	before, _ := os.ReadFile(lockPath)
	res, err = Update(t.Context(), r, Options{Set: map[string]string{"kubernetes": "1.36.5"}, Fetcher: f, Verify: true})
	if err != nil || len(res.Added) != 0 || res.Known != 14 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	after, _ := os.ReadFile(lockPath)
	if !bytes.Equal(before, after) {
		t.Error("a run that adds nothing changed the lock file")
	}
}

// Without a lock every URL is looked up: dl.k8s.io's from URL.sha256, GitHub's
// from URL.sha256sum after URL.sha256 is not found.
func TestUpdateCreatesLock(t *testing.T) {
	up := newUpstream(t)
	r, lockPath := quickstart(t, false)
	res, err := Update(t.Context(), r, Options{Fetcher: fetcher(t, up), Verify: false, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 14 || res.Known != 0 {
		t.Fatalf("result: %+v", res)
	}
	for _, e := range res.Added {
		p := strings.TrimPrefix(e.URL, "https:/")
		if e.SHA256 != up.SHA256(t, p) || e.Verified {
			t.Errorf("%s: %+v, want sha256 %s, not verified", e.URL, e, up.SHA256(t, p))
		}
		want := e.URL + ".sha256"
		switch {
		case strings.Contains(e.URL, "/runc/"):
			want = e.URL[:strings.LastIndex(e.URL, "/")+1] + "runc.sha256sum"
			if up.Count(p+".sha256") != 1 || up.Count(p+".sha256sum") != 1 {
				t.Errorf("%s: per-file checksums were not tried first", e.URL)
			}
		case strings.HasPrefix(e.URL, "https://github.com/"):
			want = e.URL + ".sha256sum"
			if up.Count(p+".sha256") != 1 {
				t.Errorf("%s.sha256 was not tried first", e.URL)
			}
		}
		if e.ChecksumURL != want {
			t.Errorf("%s: checksum from %s, want %s", e.URL, e.ChecksumURL, want)
		}
		if up.Count(p) != 0 {
			t.Errorf("%s downloaded without Verify", e.URL)
		}
	}
	if err := resolveLocked(t, r, lockPath, "1.36.4"); err != nil {
		t.Errorf("the new lock does not cover the recipe: %v", err)
	}
	// The lock written is the lock a build reads (and what was compared to
	// the quickstart's committed lock).
	want, err := recipes.LoadLock(filepath.Join(repoRoot(), "examples", "quickstart", "recipe.lock.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := recipes.LoadLock(lockPath, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got.Sources {
		if w, _ := want.SHA256(s.URL); w != s.SHA256 {
			t.Errorf("%s: %s, the quickstart lock has %s", s.URL, s.SHA256, w)
		}
	}
}

func TestUpdateMismatchLeavesLockUnchanged(t *testing.T) {
	up := newUpstream(t)
	r, lockPath := quickstart(t, true)
	before, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	const p = "/dl.k8s.io/release/v1.36.5/bin/linux/arm64/kubelet"
	bogus := strings.Repeat("ab", 32)
	up.Set(p+".sha256", []byte(bogus+"\n"))
	_, err = Update(t.Context(), r, Options{Set: map[string]string{"kubernetes": "1.36.5"}, Fetcher: fetcher(t, up), Verify: true})
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrMismatch) || !errors.Is(err, fetch.ErrChecksumMismatch) {
		t.Fatalf("got %v, want a MismatchError", err)
	}
	url := "https://dl.k8s.io/release/v1.36.5/bin/linux/arm64/kubelet"
	if me.URL != url || me.ChecksumURL != url+".sha256" || me.Expected != bogus || me.Actual != up.SHA256(t, p) {
		t.Errorf("mismatch error %+v", me)
	}
	for _, want := range []string{url, url + ".sha256", bogus, up.SHA256(t, p)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	after, _ := os.ReadFile(lockPath)
	if !bytes.Equal(before, after) {
		t.Error("a failed lock changed the lock file")
	}
	ents, _ := os.ReadDir(filepath.Dir(lockPath))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestUpdateReportsEveryMissingChecksumFile(t *testing.T) {
	up := newUpstream(t)
	r, lockPath := quickstart(t, true)
	before, _ := os.ReadFile(lockPath)
	a := "/dl.k8s.io/release/v1.36.5/bin/linux/amd64/kubeadm"
	b := "/dl.k8s.io/release/v1.36.5/bin/linux/arm64/kubectl"
	up.Set(a+".sha256", nil)
	up.Set(b+".sha256", []byte("not a checksum\n"))
	_, err := Update(t.Context(), r, Options{Set: map[string]string{"kubernetes": "1.36.5"}, Fetcher: fetcher(t, up)})
	if !errors.Is(err, ErrNoChecksumFile) || !errors.Is(err, ErrBadChecksumFile) {
		t.Fatalf("got %v, want both problems", err)
	}
	for _, want := range []string{"https:/" + a, up.URL + a + ".sha256sum", up.URL + b + ".sha256"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	after, _ := os.ReadFile(lockPath)
	if !bytes.Equal(before, after) {
		t.Error("a failed lock changed the lock file")
	}
}

func TestUpdateUnknownVariable(t *testing.T) {
	up := newUpstream(t)
	r, _ := quickstart(t, true)
	_, err := Update(t.Context(), r, Options{Set: map[string]string{"kubernets": "1.36.5"}, Fetcher: fetcher(t, up)})
	if err == nil || !strings.Contains(err.Error(), `unknown variable "kubernets"`) {
		t.Fatalf("got %v", err)
	}
}

func TestParseChecksumFile(t *testing.T) {
	h1, h2 := strings.Repeat("1a", 32), strings.Repeat("2b", 32)
	for _, tc := range []struct {
		name, content, file, want, err string
		dir                            bool // a release directory's file, not URL.sha256
	}{
		{"bare hex (dl.k8s.io)", h1 + "\n", "kubelet", h1, "", false},
		{"bare hex without newline", h1, "kubelet", h1, "", false},
		{"sha256sum line (GitHub)", h1 + "  containerd-2.3.4-linux-amd64.tar.gz\n", "containerd-2.3.4-linux-amd64.tar.gz", h1, "", false},
		{"binary mode", h1 + " *runc.amd64\n", "runc.amd64", h1, "", false},
		{"several files (runc.sha256sum)", h1 + "  runc.amd64\n" + h2 + "  runc.arm64\n", "runc.arm64", h2, "", false},
		{"uppercase", strings.ToUpper(h1), "kubelet", h1, "", false},
		{"other file", h1 + "  kubectl\n", "kubelet", "", "no line for kubelet", false},
		{"empty", "\n", "kubelet", "", "empty", false},
		{"short", "abc", "kubelet", "", "not a sha256", false},
		{"directory file: bare hex is not ours", h1 + "\n", "kubelet", "", "no line for kubelet", true},
		{"directory file", h1 + "  runc.amd64\n" + h2 + "  runc.arm64\n", "runc.amd64", h1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseChecksumFile([]byte(tc.content), tc.file, !tc.dir)
			if tc.err != "" {
				if !errors.Is(err, ErrBadChecksumFile) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}
