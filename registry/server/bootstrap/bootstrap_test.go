package bootstrap

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for expiry tests (no sleeping).
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }

func newBootstrapServer(t *testing.T, opts ...Option) (string, *httptest.Server) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bootstrap")
	h, err := NewHandler(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/bootstrap/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return dir, srv
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

const joinDoc = "#cloud-config\nwrite_files:\n  - path: /run/prebake/kubeadm-join.yaml\n    content: |\n      token: abcdef.0123456789abcdef\n"

func TestBootstrapOnce(t *testing.T) {
	dir, srv := newBootstrapServer(t)
	token, err := Issue(dir, []byte(joinDoc), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 {
		t.Fatalf("token %d characters, want 43", len(token))
	}
	resp, err := http.Get(srv.URL + "/bootstrap/" + token)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != joinDoc {
		t.Fatalf("first use: %d %q", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/cloud-config" {
		t.Errorf("Content-Type %q", ct)
	}
	// Second use is refused, and nothing is left on disk.
	if code, body := get(t, srv.URL+"/bootstrap/"+token); code != http.StatusNotFound || bytes.Contains(body, []byte("abcdef")) {
		t.Fatalf("second use: %d %q", code, body)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left after use", len(entries))
	}
}

func TestBootstrapExpiry(t *testing.T) {
	clock := &fakeClock{}
	clock.add(time.Duration(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()))
	dir, srv := newBootstrapServer(t, WithClock(clock.now))
	token, err := Issue(dir, []byte(joinDoc), 10*time.Minute, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	clock.add(10 * time.Minute)
	if code, body := get(t, srv.URL+"/bootstrap/"+token); code != http.StatusGone || bytes.Contains(body, []byte("abcdef")) {
		t.Fatalf("expired use: %d %q", code, body)
	}
	// An expired token is spent too.
	if code, _ := get(t, srv.URL+"/bootstrap/"+token); code != http.StatusNotFound {
		t.Fatalf("after expiry: %d", code)
	}
	// A token used within its lifetime works.
	token, err = Issue(dir, []byte(joinDoc), 10*time.Minute, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	clock.add(10*time.Minute - time.Second)
	if code, _ := get(t, srv.URL+"/bootstrap/"+token); code != http.StatusOK {
		t.Fatalf("within lifetime: %d", code)
	}
	// The handler sweeps expired records when it starts.
	_, err = Issue(dir, []byte(joinDoc), time.Minute, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	clock.add(2 * time.Minute)
	if _, err := NewHandler(dir, WithClock(clock.now)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("expired record not swept: %v", entries)
	}
}

func TestBootstrapConcurrentUseServesOnce(t *testing.T) {
	dir, srv := newBootstrapServer(t)
	token, err := Issue(dir, []byte(joinDoc), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var ok, notFound atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/bootstrap/" + token)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 404:
				notFound.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || notFound.Load() != 19 {
		t.Fatalf("%d served, %d refused; want 1 and 19", ok.Load(), notFound.Load())
	}
}

func TestBootstrapFilesAreSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bootstrap")
	token, err := Issue(dir, []byte(joinDoc), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %o, want 700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files, want 1", len(entries))
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600", e.Name(), info.Mode().Perm())
		}
		if strings.Contains(e.Name(), token) {
			t.Error("file name contains the token")
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Contains(data, []byte(token)) {
			t.Error("record contains the token")
		}
	}
	// A directory other users can read is refused.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(open); !errors.Is(err, ErrDir) {
		t.Errorf("got %v, want ErrDir", err)
	}
	if _, err := Issue(dir, []byte("x"), 0); !errors.Is(err, ErrTTL) {
		t.Errorf("ttl 0: got %v, want ErrTTL", err)
	}
}

func TestBootstrapRefusals(t *testing.T) {
	dir, srv := newBootstrapServer(t)
	token, err := Issue(dir, []byte(joinDoc), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodHead, "/bootstrap/" + token, http.StatusMethodNotAllowed},
		{http.MethodPost, "/bootstrap/" + token, http.StatusMethodNotAllowed},
		{http.MethodGet, "/bootstrap/", http.StatusNotFound},
		{http.MethodGet, "/bootstrap/short", http.StatusNotFound},
		{http.MethodGet, "/bootstrap/" + strings.Repeat("A", 43), http.StatusNotFound},
		{http.MethodGet, "/bootstrap/../" + token, http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	// None of those spent the token.
	if code, _ := get(t, srv.URL+"/bootstrap/"+token); code != http.StatusOK {
		t.Fatalf("token spent by refused requests: %d", code)
	}
	if got := RedactPath("/bootstrap/" + token); strings.Contains(got, token) {
		t.Errorf("RedactPath kept the token: %s", got)
	}
	if got := RedactPath("/v2/x/manifests/y"); got != "/v2/x/manifests/y" {
		t.Errorf("RedactPath changed a registry path: %s", got)
	}
}
