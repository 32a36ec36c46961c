package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/lock"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
)

// mirrorFlags are the --mirror flags that send downloads to up.
func mirrorFlags(up *testenv.Upstream) []string {
	var out []string
	for _, m := range up.Mirrors() {
		out = append(out, "--mirror", m)
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// copyQuickstartWithout copies the quickstart recipe with a lock lacking every
// URL containing drop.
func copyQuickstartWithout(t *testing.T, drop string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(testenv.RepoRoot(t), "examples", "quickstart"))); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(dir, "recipe.lock.yaml")
	l, err := recipes.LoadLock(lockPath, false)
	if err != nil {
		t.Fatal(err)
	}
	kept := &recipes.Lock{}
	for _, s := range l.Sources {
		if !strings.Contains(s.URL, drop) {
			kept.Add(s.URL, s.SHA256)
		}
	}
	b, err := kept.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "recipe.yaml")
}

// A version not in the lock is refused by build --locked; prebake lock
// --update picks it up from the checksum files, and the locked build then
// succeeds from the downloads lock verified.
func TestLockUpdateThenLockedBuild(t *testing.T) {
	files := testenv.MirrorFiles(t)
	srv := testenv.NewUpstream(t, files)
	recipe := copyQuickstartWithout(t, "/v1.36.5/")
	lockPath := recipes.LockPath(recipe)
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	build := append([]string{"build", recipe, "--set", "kubernetes=1.36.5", "--locked", "--cache-dir", cache, "-o", "oci:" + out, "-q"}, mirrorFlags(srv)...)

	_, _, err := runPrebake(t, build...)
	if err == nil || !strings.Contains(err.Error(), "https://dl.k8s.io/release/v1.36.5/bin/linux/amd64/kubelet is not in the lock file (--locked)") {
		t.Fatalf("build --locked of an unlocked version: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused build wrote %s", out)
	}

	stdout, _, err := runPrebake(t, append([]string{"lock", recipe, "--update", "kubernetes=1.36.5", "--cache-dir", cache, "-q"}, mirrorFlags(srv)...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "added 6 URLs (downloads verified), 8 already locked") {
		t.Errorf("lock output:\n%s", stdout)
	}
	l, err := recipes.LoadLock(lockPath, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, bin := range []string{"kubeadm", "kubectl", "kubelet"} {
			p := fmt.Sprintf("/dl.k8s.io/release/v1.36.5/bin/linux/%s/%s", arch, bin)
			want := sha256Hex(files[p])
			if got, _ := l.SHA256("https:/" + p); got != want {
				t.Errorf("lock: %s = %q, want %s", p, got, want)
			}
			if !strings.Contains(stdout, want+"  https:/"+p) {
				t.Errorf("output does not list %s", p)
			}
		}
	}

	if _, _, err := runPrebake(t, build...); err != nil {
		t.Fatalf("build --locked after prebake lock: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "index.json")); err != nil {
		t.Error(err)
	}
}

// The catalog recipe, copied: a new patch release of Kubernetes; a checksum
// file that disagrees with the binary is an error naming both URLs and both
// digests, and the lock is left as it was.
func TestLockCatalogCopyAndMismatch(t *testing.T) {
	dir := t.TempDir()
	sub, err := fs.Sub(catalog.FS(), "kubernetes-node")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "recipe.yaml")
	lockPath := recipes.LockPath(recipe)
	files := map[string][]byte{}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, bin := range []string{"kubeadm", "kubectl", "kubelet"} {
			files[fmt.Sprintf("/dl.k8s.io/release/v1.36.9/bin/linux/%s/%s", arch, bin)] = []byte("stand-in " + bin + " 1.36.9 " + arch + "\n")
		}
	}
	srv := testenv.NewUpstream(t, files)
	bad := "/dl.k8s.io/release/v1.36.9/bin/linux/arm64/kubeadm"
	wrong := sha256Hex([]byte("something else"))
	srv.Set(bad+".sha256", []byte(wrong+"\n"))
	before, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"lock", recipe, "--update", "kubernetes=1.36.9", "--cache-dir", t.TempDir(), "-q"}, mirrorFlags(srv)...)
	_, _, err = runPrebake(t, args...)
	var me *lock.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("got %v, want a checksum file mismatch", err)
	}
	for _, want := range []string{"https:/" + bad, "https:/" + bad + ".sha256", wrong, sha256Hex(files[bad])} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if after, _ := os.ReadFile(lockPath); !bytes.Equal(before, after) {
		t.Error("a failed prebake lock changed the lock file")
	}

	srv.Set(bad+".sha256", []byte(sha256Hex(files[bad])))
	stdout, _, err := runPrebake(t, append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, `"checksumURL": "https://dl.k8s.io/release/v1.36.9/bin/linux/arm64/kubeadm.sha256"`) || !strings.Contains(stdout, `"verified": true`) {
		t.Errorf("lock --json:\n%s", stdout)
	}
	// crictl and pause keep the recipe's defaults (1.36.0, 3.10.2): every URL resolves locked.
	if _, _, err := runPrebake(t, "recipe", "validate", recipe, "--set", "kubernetes=1.36.9", "--locked"); err != nil {
		t.Errorf("validate --locked after prebake lock: %v", err)
	}

	// The embedded catalog recipe itself is not locked in place.
	if _, _, err := runPrebake(t, "lock", "kubernetes-node", "--update", "kubernetes=1.36.9"); !errors.Is(err, lock.ErrCatalogRecipe) {
		t.Errorf("lock of a catalog name: %v", err)
	}
	if _, _, err := runPrebake(t, "lock", recipe, "--update", "kubernetes"); err == nil || !strings.Contains(err.Error(), "want NAME=VERSION") {
		t.Errorf("--update without a value: %v", err)
	}
}
