package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangGuard fails the test when fn does not return within limit: it is a
// hang detector for stalls that must be bounded, not a speed claim.
func hangGuard(t *testing.T, limit time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("still running after %s: the download is not bounded", limit)
	}
}

// ".." in a source URL under a file:// mirror must not read files outside
// the mirror's directory, neither as text nor through symlinks.
func TestFileMirrorContainment(t *testing.T) {
	top := t.TempDir()
	mirrorDir := filepath.Join(top, "mirror")
	secret := []byte("root:SECRET-HASH:1::::::\n")
	for p, b := range map[string][]byte{
		filepath.Join(top, "shadow"):                   secret,
		filepath.Join(top, "outdir", "shadow"):         secret,
		filepath.Join(mirrorDir, "release", "kubelet"): []byte("kubelet"),
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Join(top, "shadow"), filepath.Join(mirrorDir, "release", "link"))
	os.Symlink(filepath.Join(top, "outdir"), filepath.Join(mirrorDir, "dir"))
	os.Symlink("kubelet", filepath.Join(mirrorDir, "release", "inside"))
	m, err := ParseMirror("https://dl.k8s.io/=file://" + mirrorDir + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://dl.k8s.io/../shadow",
		"https://dl.k8s.io/release/../../shadow",
		"https://dl.k8s.io/release/%2e%2e/%2e%2e/shadow",
		"https://dl.k8s.io/release/..%2f..%2fshadow",
		"https://dl.k8s.io/release/link",
		"https://dl.k8s.io/dir/shadow",
	} {
		f := newFetcher(t, WithMirrors(m), WithRetries(0))
		p, err := f.Fetch(context.Background(), Request{URL: u, SHA256: digest(secret)})
		if err == nil {
			t.Errorf("%s: read %s through the mirror", u, p)
			continue
		}
		if !strings.Contains(err.Error(), u) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error does not name the URL (or leaks content): %v", u, err)
		}
		if len(cacheFiles(t, f)) != 0 {
			t.Errorf("%s: left %v in the cache", u, cacheFiles(t, f))
		}
	}
	// Symlinks that stay inside, and "." segments, are fine.
	f := newFetcher(t, WithMirrors(m))
	for _, u := range []string{"https://dl.k8s.io/release/inside", "https://dl.k8s.io/./release/x/../kubelet"} {
		if _, err := f.Fetch(context.Background(), Request{URL: u, SHA256: digest([]byte("kubelet"))}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// ".." in a source URL under an https:// mirror must not reach paths outside
// the mirror's root on its server (which, like most, cleans paths).
func TestHTTPSMirrorContainment(t *testing.T) {
	secret := []byte("internal credentials")
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		switch path.Clean(r.URL.Path) {
		case "/internal/secret":
			w.Write(secret)
		case "/k8s/release/kubelet":
			w.Write([]byte("kubelet"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	m, err := ParseMirror("https://dl.k8s.io/=" + srv.URL + "/k8s/")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://dl.k8s.io/../internal/secret",
		"https://dl.k8s.io/release/../../internal/secret",
		"https://dl.k8s.io/release/%2E%2E/%2e%2e/internal/secret",
	} {
		f := newFetcher(t, WithMirrors(m), WithRetries(0))
		if p, err := f.Fetch(context.Background(), Request{URL: u, SHA256: digest(secret)}); err == nil {
			t.Errorf("%s: fetched %s from outside the mirror root", u, p)
		}
	}
	f := newFetcher(t, WithMirrors(m))
	if _, err := f.Fetch(context.Background(), Request{URL: "https://dl.k8s.io/release/./kubelet", SHA256: digest([]byte("kubelet"))}); err != nil {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		if !strings.HasPrefix(p, "/k8s/") || slices.Contains(strings.Split(p, "/"), "..") {
			t.Errorf("the mirror was asked for %q, outside /k8s/", p)
		}
	}
}

func TestLocate(t *testing.T) {
	f := newFetcher(t, WithMirrors(
		Mirror{From: "https://dl.k8s.io", To: "https://mirror.example/k8s"},
		Mirror{From: "https://github.com/", To: "file:///srv/gh/"},
	))
	for _, tc := range []struct {
		in, want string
		mirrored bool
		err      error
	}{
		{"https://dl.k8s.io/release/v1/kubelet", "https://mirror.example/k8s/release/v1/kubelet", true, nil},
		{"https://dl.k8s.io/a/../../../etc/passwd", "https://mirror.example/k8s/etc/passwd", true, nil},
		{"https://dl.k8s.io.evil.example/x", "https://dl.k8s.io.evil.example/x", false, nil},
		{"https://github.com/o/r/releases/download/v1/x.tar.gz", "file:///srv/gh/o/r/releases/download/v1/x.tar.gz", true, nil},
		{"https://github.com/%2e%2e/%2e%2e/etc/shadow", "file:///srv/gh/etc/shadow", true, nil},
		{"file:///etc/shadow", "", false, ErrFileSource},
		{"file://host/x", "", false, ErrInvalidRequest},
		{"ftp://x/y", "", false, ErrInvalidRequest},
	} {
		loc, err := f.Locate(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Locate(%s) = %+v, %v; want %v", tc.in, loc, err, tc.err)
			}
			continue
		}
		if err != nil || loc.URL != tc.want || loc.Mirrored != tc.mirrored {
			t.Errorf("Locate(%s) = %+v, %v; want %s (mirrored %v)", tc.in, loc, err, tc.want, tc.mirrored)
		}
	}
	// A mirror without a trailing slash must not let a URL climb to a
	// sibling directory of its root.
	f = newFetcher(t, WithMirrors(Mirror{From: "https://x.example/a", To: "file:///srv/a"}))
	if loc, err := f.Locate("https://x.example/a/../b/secret"); err == nil && loc.Mirrored {
		t.Errorf("climbed out: %+v", loc)
	}
}

// A file:// source that no mirror rewrote reads the build machine: refused
// unless allowed explicitly.
func TestUnmirroredFileSource(t *testing.T) {
	data := []byte("local")
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, data, 0o644)
	u := "file://" + p
	_, err := newFetcher(t).Fetch(context.Background(), Request{URL: u, SHA256: digest(data)})
	if !errors.Is(err, ErrFileSource) || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "--allow-file-sources") {
		t.Errorf("err = %v, want ErrFileSource naming %s and the flag", err, u)
	}
	if _, err := newFetcher(t, WithFileSources(true)).Fetch(context.Background(), Request{URL: u, SHA256: digest(data)}); err != nil {
		t.Error(err)
	}
}

// stallServer sends headers and the first bytes of a body, then nothing.
func stallServer(t *testing.T, beforeHeaders bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	hits := new(atomic.Int32)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !beforeHeaders {
			w.Header().Set("Content-Length", "1048576")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("first bytes"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv, hits
}

// A mirror that sends headers and then stalls mid-body used to hang the
// build forever: now each attempt is abandoned after the stall timeout,
// retried, and the fetch fails naming the URL.
func TestStallAfterHeaders(t *testing.T) {
	for _, before := range []bool{false, true} {
		t.Run(fmt.Sprintf("before headers %v", before), func(t *testing.T) {
			srv, hits := stallServer(t, before)
			m, _ := ParseMirror("https://dl.k8s.io/=" + srv.URL + "/")
			f := newFetcher(t, WithMirrors(m), WithStallTimeout(200*time.Millisecond), WithRetries(1),
				WithHTTPClient(&http.Client{})) // no header timeout: the stall watchdog alone bounds it
			u := "https://dl.k8s.io/release/kubelet"
			var err error
			hangGuard(t, 30*time.Second, func() {
				_, err = f.Fetch(context.Background(), Request{URL: u, SHA256: digest([]byte("x"))})
			})
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "giving up after 2 attempts") {
				t.Errorf("err = %v, want ErrStalled naming %s after 2 attempts", err, u)
			}
			if n := hits.Load(); n != 2 {
				t.Errorf("%d requests, want 2 (one retry)", n)
			}
			if left := cacheFiles(t, f); len(left) != 0 {
				t.Errorf("partial files left: %v", left)
			}
		})
	}
}

// A mirror that trickles bytes forever never stalls, but the overall
// deadline ends the fetch.
func TestFetchDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	f := newFetcher(t, WithTimeout(300*time.Millisecond), WithStallTimeout(10*time.Second))
	var err error
	hangGuard(t, 30*time.Second, func() {
		_, err = f.Fetch(context.Background(), Request{URL: srv.URL + "/slow", SHA256: digest([]byte("x"))})
	})
	if !errors.Is(err, ErrDeadline) || !strings.Contains(err.Error(), srv.URL+"/slow") {
		t.Errorf("err = %v, want ErrDeadline naming the URL", err)
	}
	if left := cacheFiles(t, f); len(left) != 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// The lock's expected size caps the download: a bigger (or smaller) answer
// fails before the checksum, without retries, leaving nothing behind.
func TestFetchSizeFromLock(t *testing.T) {
	data := []byte("exactly this")
	srv := newServer(t, map[string][]byte{"/x": data})
	srv.fail = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Query().Get("chunked") == "" {
			return false
		}
		w.Write(data[:5]) // flushed before the end: chunked, no Content-Length
		w.(http.Flusher).Flush()
		w.Write(data[5:])
		return true
	}
	for _, tc := range []struct {
		url  string
		size int64
		err  error
	}{
		{srv.URL + "/x", int64(len(data)), nil},
		{srv.URL + "/x", int64(len(data)) - 1, ErrSizeMismatch},
		{srv.URL + "/x", int64(len(data)) + 1, ErrSizeMismatch},
		{srv.URL + "/x?chunked=1", int64(len(data)) - 1, ErrSizeMismatch},
		{srv.URL + "/x?chunked=1", int64(len(data)) + 1, ErrSizeMismatch},
	} {
		f := newFetcher(t)
		_, err := f.Fetch(context.Background(), Request{URL: tc.url, SHA256: digest(data), Size: tc.size})
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s size %d: err = %v, want %v", tc.url, tc.size, err, tc.err)
		}
		if tc.err != nil && len(cacheFiles(t, f)) != 0 {
			t.Errorf("%s size %d: left %v", tc.url, tc.size, cacheFiles(t, f))
		}
	}
}
