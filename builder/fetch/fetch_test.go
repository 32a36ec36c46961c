package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prebake/prebake/internal/progress"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// server serves files by path and counts requests per path.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
	// fail, when set, may answer a request instead (return true if it did).
	fail func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newServer(t *testing.T, files map[string][]byte) *server {
	t.Helper()
	s := &server{files: files, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		n := s.hits[r.URL.Path]
		b, ok := s.files[r.URL.Path]
		fail := s.fail
		s.mu.Unlock()
		if fail != nil && fail(w, r, n) {
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[p]
}

func newFetcher(t *testing.T, opts ...Option) *Fetcher {
	t.Helper()
	opts = append([]Option{WithCacheDir(t.TempDir()), WithBackoff(time.Millisecond)}, opts...)
	f, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// cacheFiles lists every file in the cache's blob directory.
func cacheFiles(t *testing.T, f *Fetcher) []string {
	t.Helper()
	ents, err := os.ReadDir(f.blobDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchSuccessAndCacheHit(t *testing.T) {
	data := []byte("kubelet stand-in binary\n")
	s := newServer(t, map[string][]byte{"/kubelet": data})
	var events []progress.Event
	var mu sync.Mutex
	f := newFetcher(t, WithProgress(func(e progress.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }))
	req := Request{URL: s.URL + "/kubelet", SHA256: digest(data)}

	if _, ok := f.Path(req.SHA256); ok {
		t.Fatal("Path reports a digest as cached before any fetch")
	}
	p, err := f.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.CacheDir(), "sources", "sha256", req.SHA256); p != want {
		t.Errorf("path = %s, want %s", p, want)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached content = %q, %v; want %q", got, err, data)
	}
	if cp, ok := f.Path(req.SHA256); !ok || cp != p {
		t.Errorf("Path = %s, %v; want %s, true", cp, ok, p)
	}

	p2, err := f.Fetch(context.Background(), req)
	if err != nil || p2 != p {
		t.Fatalf("second fetch = %s, %v", p2, err)
	}
	if n := s.count("/kubelet"); n != 1 {
		t.Errorf("server saw %d requests, want 1 (second fetch must be a cache hit)", n)
	}
	if names := cacheFiles(t, f); len(names) != 1 {
		t.Errorf("cache holds %v, want only the blob", names)
	}
	mu.Lock()
	defer mu.Unlock()
	last := events[len(events)-1]
	if !last.Skipped || !last.Finished || last.Op != "download" || last.Name != req.URL || last.Done != int64(len(data)) {
		t.Errorf("cache-hit event = %+v", last)
	}
	var sawFinished bool
	for _, e := range events[:len(events)-1] {
		if e.Skipped {
			t.Errorf("download event marked skipped: %+v", e)
		}
		if e.Finished && e.Done == int64(len(data)) {
			sawFinished = true
		}
	}
	if !sawFinished {
		t.Errorf("no finished download event in %+v", events)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	data := []byte("the real bytes")
	s := newServer(t, map[string][]byte{"/runc": data})
	f := newFetcher(t)
	want := digest([]byte("other bytes"))
	req := Request{URL: s.URL + "/runc", SHA256: want}
	_, err := f.Fetch(context.Background(), req)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Expected != want || ce.Actual != digest(data) || ce.URL != req.URL {
		t.Fatalf("ChecksumError = %+v", ce)
	}
	for _, part := range []string{req.URL, want, digest(data)} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %s", err, part)
		}
	}
	if names := cacheFiles(t, f); len(names) != 0 {
		t.Errorf("cache holds %v after a mismatch, want nothing", names)
	}
	if n := s.count("/runc"); n != 1 {
		t.Errorf("server saw %d requests, want 1 (a mismatch is not retried)", n)
	}
	if _, ok := f.Path(want); ok {
		t.Error("Path reports the mismatched digest as cached")
	}
}

func TestFetchRetries(t *testing.T) {
	data := []byte("containerd")
	tests := []struct {
		name     string
		fail     func(w http.ResponseWriter, r *http.Request, n int) bool
		wantErr  error // nil: success
		wantHits int
	}{
		{"503 twice then 200", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
			return false
		}, nil, 3},
		{"429 with Retry-After then 200", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}, nil, 2},
		{"connection reset then 200", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n == 1 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				conn.(*net.TCPConn).SetLinger(0) // RST instead of FIN
				conn.Close()
				return true
			}
			return false
		}, nil, 2},
		{"truncated body then 200", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n == 1 {
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				w.Write(data[:3])
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return true
			}
			return false
		}, nil, 2},
		{"404 is not retried", func(w http.ResponseWriter, r *http.Request, n int) bool {
			http.NotFound(w, r)
			return true
		}, ErrHTTPStatus, 1},
		{"403 is not retried", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.WriteHeader(http.StatusForbidden)
			return true
		}, ErrHTTPStatus, 1},
		{"500 forever gives up after retries", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}, ErrHTTPStatus, 1 + DefaultRetries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, map[string][]byte{"/f": data})
			s.fail = tt.fail
			f := newFetcher(t)
			req := Request{URL: s.URL + "/f", SHA256: digest(data)}
			p, err := f.Fetch(context.Background(), req)
			if n := s.count("/f"); n != tt.wantHits {
				t.Errorf("server saw %d requests, want %d", n, tt.wantHits)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
					t.Errorf("content = %q", got)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), req.URL) {
				t.Errorf("error %q does not name the URL", err)
			}
			if names := cacheFiles(t, f); len(names) != 0 {
				t.Errorf("cache holds %v after a failure", names)
			}
		})
	}
}

func TestFetchStatusError(t *testing.T) {
	s := newServer(t, nil)
	f := newFetcher(t)
	_, err := f.Fetch(context.Background(), Request{URL: s.URL + "/missing", SHA256: digest(nil)})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.URL != s.URL+"/missing" {
		t.Fatalf("err = %v, want a *StatusError for 404", err)
	}
	if !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not name the status", err)
	}
}

func TestFetchOffline(t *testing.T) {
	data := []byte("cni plugins")
	s := newServer(t, map[string][]byte{"/cni": data})
	dir := t.TempDir()
	req := Request{URL: s.URL + "/cni", SHA256: digest(data)}

	off, err := New(WithCacheDir(dir), WithOffline(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Fetch(context.Background(), req); !errors.Is(err, ErrNotCached) {
		t.Fatalf("offline miss: err = %v, want ErrNotCached", err)
	} else if !strings.Contains(err.Error(), req.URL) || !strings.Contains(err.Error(), req.SHA256) {
		t.Errorf("error %q does not name URL and digest", err)
	}
	if n := s.count("/cni"); n != 0 {
		t.Fatalf("offline fetcher made %d requests", n)
	}

	on, err := New(WithCacheDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := on.Fetch(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	p, err := off.Fetch(context.Background(), req)
	if err != nil {
		t.Fatalf("offline hit: %v", err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}
	if n := s.count("/cni"); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestFetchMirror(t *testing.T) {
	data := []byte("kubeadm from the mirror")
	mirror := newServer(t, map[string][]byte{"/k8s/v1.36.4/bin/linux/amd64/kubeadm": data, "/other/kubeadm": []byte("wrong")})
	short, err := ParseMirror("https://dl.k8s.io/=" + mirror.URL + "/other/")
	if err != nil {
		t.Fatal(err)
	}
	long, err := ParseMirror("https://dl.k8s.io/release/=" + mirror.URL + "/k8s/")
	if err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t, WithMirrors(short, long))
	req := Request{URL: "https://dl.k8s.io/release/v1.36.4/bin/linux/amd64/kubeadm", SHA256: digest(data)}
	p, err := f.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}

	// A mismatch through a mirror names both URLs.
	f = newFetcher(t, WithMirrors(short, long))
	bad := Request{URL: "https://dl.k8s.io/kubeadm", SHA256: digest(data)}
	_, err = f.Fetch(context.Background(), bad)
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *ChecksumError", err)
	}
	if ce.Mirror != mirror.URL+"/other/kubeadm" {
		t.Errorf("Mirror = %q", ce.Mirror)
	}
	for _, part := range []string{bad.URL, mirror.URL + "/other/kubeadm", digest(data), digest([]byte("wrong"))} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %s", err, part)
		}
	}
	// Other errors name both too.
	_, err = f.Fetch(context.Background(), Request{URL: "https://dl.k8s.io/nothing", SHA256: digest(data)})
	if !errors.Is(err, ErrHTTPStatus) || !strings.Contains(err.Error(), "https://dl.k8s.io/nothing") || !strings.Contains(err.Error(), mirror.URL+"/other/nothing") {
		t.Errorf("err = %v, want a status error naming both URLs", err)
	}
}

func TestParseMirror(t *testing.T) {
	m, err := ParseMirror("https://github.com/=file:///srv/mirror/gh/")
	if err != nil || m != (Mirror{From: "https://github.com/", To: "file:///srv/mirror/gh/"}) {
		t.Errorf("ParseMirror = %+v, %v", m, err)
	}
	for _, bad := range []string{"", "https://a/", "=https://b/", "https://a/=", "a=b", "https://a/=/srv/mirror"} {
		if _, err := ParseMirror(bad); err == nil {
			t.Errorf("ParseMirror(%q) succeeded", bad)
		}
	}
}

func TestFetchFileURL(t *testing.T) {
	data := []byte("crictl from disk")
	dir := t.TempDir()
	src := filepath.Join(dir, "crictl.tar.gz")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t, WithFileSources(true))
	p, err := f.Fetch(context.Background(), Request{URL: "file://" + src, SHA256: digest(data)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}
	// A file mirror for an https URL, as on an air-gapped site.
	m, err := ParseMirror("https://github.com/=file://" + dir + "/")
	if err != nil {
		t.Fatal(err)
	}
	f = newFetcher(t, WithMirrors(m), WithFileSources(true))
	if _, err := f.Fetch(context.Background(), Request{URL: "https://github.com/crictl.tar.gz", SHA256: digest(data)}); err != nil {
		t.Fatal(err)
	}
	// Missing files and relative or remote file URLs fail without retries.
	for _, u := range []string{"file://" + dir + "/missing", "file:relative", "file://host/x"} {
		if _, err := f.Fetch(context.Background(), Request{URL: u, SHA256: digest([]byte(u))}); err == nil {
			t.Errorf("%s: fetch succeeded", u)
		} else if !strings.Contains(err.Error(), u) {
			t.Errorf("%s: error %q does not name the URL", u, err)
		}
	}
}

func TestFetchInvalidRequest(t *testing.T) {
	f := newFetcher(t)
	for _, r := range []Request{
		{URL: "", SHA256: digest(nil)},
		{URL: "https://x/y", SHA256: ""},
		{URL: "https://x/y", SHA256: strings.ToUpper(digest(nil))},
		{URL: "https://x/y", SHA256: digest(nil)[:63]},
		{URL: "ftp://x/y", SHA256: digest(nil)},
	} {
		if _, err := f.Fetch(context.Background(), r); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: err = %v, want ErrInvalidRequest", r, err)
		}
	}
}

func TestFetchTooLarge(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 4096)
	s := newServer(t, map[string][]byte{"/big": data})
	// Chunked, so only the streamed count can catch it.
	chunked := newServer(t, nil)
	chunked.fail = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.(http.Flusher).Flush()
		w.Write(data)
		return true
	}
	f := newFetcher(t, WithMaxSize(1000))
	for _, u := range []string{s.URL + "/big", chunked.URL + "/big"} {
		_, err := f.Fetch(context.Background(), Request{URL: u, SHA256: digest(data)})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), u) {
			t.Errorf("%s: err = %v, want ErrTooLarge naming the URL", u, err)
		}
	}
	if s.count("/big") != 1 || chunked.count("/big") != 1 {
		t.Error("too-large downloads were retried")
	}
	if names := cacheFiles(t, f); len(names) != 0 {
		t.Errorf("cache holds %v", names)
	}
}

func TestFetchAll(t *testing.T) {
	files := map[string][]byte{}
	var reqs []Request
	for i := range 12 {
		b := []byte(fmt.Sprintf("component %d", i))
		files[fmt.Sprintf("/c%d", i)] = b
		reqs = append(reqs, Request{URL: fmt.Sprintf("/c%d", i), SHA256: digest(b)})
	}
	s := newServer(t, files)
	// Count concurrent requests to see the jobs limit respected.
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	s.fail = func(w http.ResponseWriter, r *http.Request, n int) bool {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		if cur >= 3 {
			select {
			case <-release:
			default:
				close(release)
			}
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		return false
	}
	for i := range reqs {
		reqs[i].URL = s.URL + reqs[i].URL
	}
	// Duplicates by digest: same URL, and another URL with the same bytes.
	reqs = append(reqs, reqs[0], Request{URL: s.URL + "/404-but-deduplicated", SHA256: reqs[1].SHA256})

	f := newFetcher(t)
	paths, err := f.FetchAll(context.Background(), reqs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(reqs) {
		t.Fatalf("%d paths for %d requests", len(paths), len(reqs))
	}
	for i, r := range reqs {
		if want := filepath.Join(f.blobDir(), r.SHA256); paths[i] != want {
			t.Errorf("paths[%d] = %s, want %s", i, paths[i], want)
		}
	}
	for p := range files {
		if n := s.count(p); n != 1 {
			t.Errorf("%s requested %d times, want 1", p, n)
		}
	}
	if n := s.count("/404-but-deduplicated"); n != 0 {
		t.Errorf("duplicate digest downloaded again (%d requests)", n)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d concurrent requests, jobs was 3", p)
	}
	if p := peak.Load(); p < 2 {
		t.Errorf("peak concurrency %d: downloads did not run in parallel", p)
	}
}

func TestFetchAllErrors(t *testing.T) {
	good := []byte("good")
	s := newServer(t, map[string][]byte{"/good": good, "/bad": []byte("bad")})
	f := newFetcher(t)
	reqs := []Request{
		{URL: s.URL + "/missing", SHA256: digest([]byte("missing"))},
		{URL: s.URL + "/good", SHA256: digest(good)},
		{URL: s.URL + "/bad", SHA256: digest([]byte("not bad"))},
		// Same digest as /good: served by the first URL that works.
		{URL: s.URL + "/missing2", SHA256: digest(good)},
	}
	paths, err := f.FetchAll(context.Background(), reqs, 0)
	if !errors.Is(err, ErrHTTPStatus) || !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want both a status and a checksum error", err)
	}
	if paths[0] != "" || paths[2] != "" || paths[1] == "" || paths[3] != paths[1] {
		t.Errorf("paths = %q", paths)
	}
	// The dedup group falls back to the next URL when the first fails.
	reqs = []Request{
		{URL: s.URL + "/missing3", SHA256: digest(good)},
		{URL: s.URL + "/good", SHA256: digest(good)},
	}
	f = newFetcher(t)
	paths, err = f.FetchAll(context.Background(), reqs, 2)
	if err != nil || paths[0] == "" || paths[0] != paths[1] {
		t.Errorf("fallback: paths = %q, err = %v", paths, err)
	}
}

func TestFetchCancelMidDownload(t *testing.T) {
	first := bytes.Repeat([]byte("a"), 512<<10)
	full := append(first, bytes.Repeat([]byte("b"), 512<<10)...)
	s := newServer(t, nil)
	s.fail = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(full)))
		w.Write(first)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // hang until the client goes away
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	sawTemp := make(chan bool, 1)
	var f *Fetcher
	f = newFetcher(t, WithProgress(func(e progress.Event) {
		if e.Done > 0 && !e.Finished {
			once.Do(func() {
				// The temp file exists while the download runs.
				ents, _ := os.ReadDir(f.blobDir())
				sawTemp <- len(ents) == 1 && strings.HasPrefix(ents[0].Name(), ".tmp-")
				cancel()
			})
		}
	}))
	_, err := f.Fetch(ctx, Request{URL: s.URL + "/slow", SHA256: digest(full)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !<-sawTemp {
		t.Error("no temp file seen during the download")
	}
	if names := cacheFiles(t, f); len(names) != 0 {
		t.Errorf("cache holds %v after cancel, want nothing", names)
	}
	if n := s.count("/slow"); n != 1 {
		t.Errorf("server saw %d requests, want 1 (cancel is not retried)", n)
	}
}

// Several fetchers on one cache directory, as separate processes would be,
// downloading the same digest at once.
func TestFetchConcurrentSameDigest(t *testing.T) {
	data := bytes.Repeat([]byte("kube-proxy "), 50000)
	s := newServer(t, map[string][]byte{"/kp": data})
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		f, err := New(WithCacheDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := f.Fetch(context.Background(), Request{URL: s.URL + "/kp", SHA256: digest(data)})
			if err == nil {
				var got []byte
				got, err = os.ReadFile(p)
				if err == nil && !bytes.Equal(got, data) {
					err = fmt.Errorf("read %d bytes, want %d", len(got), len(data))
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	f, _ := New(WithCacheDir(dir))
	if names := cacheFiles(t, f); len(names) != 1 || names[0] != digest(data) {
		t.Errorf("cache holds %v, want only the blob", names)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/var/cache/x")
	f, err := New()
	if err != nil || f.CacheDir() != "/var/cache/x/prebake" {
		t.Errorf("with XDG_CACHE_HOME: %v, %v", f.CacheDir(), err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/builder")
	f, err = New()
	if err != nil || f.CacheDir() != "/home/builder/.cache/prebake" {
		t.Errorf("without XDG_CACHE_HOME: %v, %v", f.CacheDir(), err)
	}
}

func TestDelay(t *testing.T) {
	f := &Fetcher{backoff: 100 * time.Millisecond}
	for attempt, max := range []time.Duration{100, 200, 400, 800} {
		max *= time.Millisecond
		for range 50 {
			d := f.delay(attempt, errors.New("x"))
			if d < max/2 || d > max {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, max/2, max)
			}
		}
	}
	if d := f.delay(40, errors.New("x")); d > maxDelay || d < maxDelay/2 {
		t.Errorf("delay not capped: %s", d)
	}
	se := &StatusError{Code: 503, retryAfter: 7 * time.Second}
	if d := f.delay(0, fmt.Errorf("wrapped: %w", se)); d != 7*time.Second {
		t.Errorf("Retry-After not honoured: %s", d)
	}
	se.retryAfter = time.Hour
	if d := f.delay(0, se); d != maxDelay {
		t.Errorf("Retry-After not capped: %s", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"junk":                          0,
		"99999":                         maxDelay,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
