package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Upstream is an in-process stand-in for the download hosts recipes name:
// files by path laid out like dl.k8s.io and GitHub releases
// (/dl.k8s.io/release/…, /github.com/OWNER/REPO/releases/download/…), each
// with the checksum file its host publishes — URL.sha256 with the bare hex
// (dl.k8s.io), one runc.sha256sum per runc release, URL.sha256sum with
// "hex  name" (other GitHub releases). It counts the requests per path.
type Upstream struct {
	// URL is the server's base URL (http://127.0.0.1:PORT).
	URL string

	mu       sync.Mutex
	files    map[string][]byte
	requests map[string]int
}

// NewUpstream serves files (by path) and their checksum files until the
// test ends.
func NewUpstream(t testing.TB, files map[string][]byte) *Upstream {
	t.Helper()
	u := &Upstream{files: map[string][]byte{}, requests: map[string]int{}}
	for p, b := range files {
		u.files[p] = b
		sum := sha256.Sum256(b)
		switch {
		case strings.HasPrefix(p, "/dl.k8s.io/"):
			u.files[p+".sha256"] = []byte(hex.EncodeToString(sum[:]))
		case strings.HasPrefix(p, "/github.com/opencontainers/runc/"):
			dir := p[:strings.LastIndex(p, "/")+1]
			u.files[dir+"runc.sha256sum"] = append(u.files[dir+"runc.sha256sum"], hex.EncodeToString(sum[:])+"  "+filepath.Base(p)+"\n"...)
		default:
			u.files[p+".sha256sum"] = []byte(hex.EncodeToString(sum[:]) + "  " + filepath.Base(p) + "\n")
		}
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		b, ok := u.files[r.URL.Path]
		u.requests[r.URL.Path]++
		u.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	u.URL = s.URL
	return u
}

// MirrorFiles are the files of the stand-in mirror (testdata/mirror), by
// path, for NewUpstream.
func MirrorFiles(t testing.TB) map[string][]byte {
	t.Helper()
	root := Fixture(t, "testdata/mirror")
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files["/"+filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Mirrors are the FROM=TO mirror rules (the --mirror flag's form) that send
// dl.k8s.io and github.com downloads to u.
func (u *Upstream) Mirrors() []string {
	return []string{"https://dl.k8s.io/=" + u.URL + "/dl.k8s.io/", "https://github.com/=" + u.URL + "/github.com/"}
}

// Set serves b at path from now on; nil removes the path.
func (u *Upstream) Set(path string, b []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if b == nil {
		delete(u.files, path)
	} else {
		u.files[path] = b
	}
}

// Count is how many requests path has had.
func (u *Upstream) Count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[path]
}

// File is what u serves at path.
func (u *Upstream) File(t testing.TB, path string) []byte {
	t.Helper()
	u.mu.Lock()
	b, ok := u.files[path]
	u.mu.Unlock()
	if !ok {
		t.Fatalf("upstream serves no %s", path)
	}
	return b
}

// SHA256 is the hex sha256 of what u serves at path.
func (u *Upstream) SHA256(t testing.TB, path string) string {
	t.Helper()
	s := sha256.Sum256(u.File(t, path))
	return hex.EncodeToString(s[:])
}
