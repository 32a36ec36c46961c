// Package testenv sets up the real things the plugin's tests talk to: a
// loopback prebake registry (registry/server, what `prebake serve` runs), a
// cosign key pair, and the stand-in source mirror of the quickstart recipe.
// Only tests import it.
package testenv

import (
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/prebake/prebake/registry/server"
	"github.com/prebake/prebake/signing"
)

// RepoRoot is the prebake repository's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Quickstart is the path of the quickstart recipe.
func Quickstart(t testing.TB) string {
	return filepath.Join(RepoRoot(t), "examples", "quickstart", "recipe.yaml")
}

// Mirrors rewrite the quickstart's upstream URLs to the stand-in files in
// testdata/mirror, in the builder's "FROM=TO" form.
func Mirrors(t testing.TB) []string {
	m := "file://" + filepath.Join(RepoRoot(t), "testdata", "mirror")
	return []string{"https://dl.k8s.io/=" + m + "/dl.k8s.io/", "https://github.com/=" + m + "/github.com/"}
}

// Registry serves prebake's registry over a temporary store on loopback and
// returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	srv, err := server.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	u, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// Keys writes a cosign key pair (empty password) and returns the private and
// public key paths.
func Keys(t testing.TB) (priv, pub string) {
	t.Helper()
	kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: filepath.Join(t.TempDir(), "cosign")})
	if err != nil {
		t.Fatal(err)
	}
	return kp.PrivateKey, kp.PublicKey
}

// Isolate points prebake's caches and store at temporary directories and
// clears $COSIGN_PASSWORD, so a test touches nothing of the user's.
func Isolate(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv(signing.PasswordEnv, "")
	os.Unsetenv(signing.PasswordEnv)
}
