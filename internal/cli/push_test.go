package cli

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"

	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// storeWithImage writes an annotated random image to a temp store as
// nodes:v1 and points PREBAKE_STORE at it.
func storeWithImage(t *testing.T, k8s string) (v1.Image, string) {
	t.Helper()
	store := filepath.Join(t.TempDir(), "store")
	t.Setenv("PREBAKE_STORE", store)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range 2 {
		l, err := random.Layer(2048, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	img = mutate.Annotations(img, map[string]string{
		recipes.AnnotationKubernetesVersion: k8s,
		"org.opencontainers.image.created":  "2026-03-01T10:00:00Z",
	}).(v1.Image)
	if _, err := registry.Write(t.Context(), registry.MustParse("store:nodes:v1"), img, nil, registry.Options{}); err != nil {
		t.Fatal(err)
	}
	return img, store
}

func olaregURL(t *testing.T) string {
	t.Helper()
	s := olareg.New(config.Config{Storage: config.ConfigStorage{StoreType: config.StoreMem}})
	h := httptest.NewServer(s)
	t.Cleanup(func() { h.Close(); s.Close() })
	return strings.TrimPrefix(h.URL, "http://")
}

func TestPushPullPromoteRevokeCLI(t *testing.T) {
	img, _ := storeWithImage(t, "1.36.4")
	h, _ := img.Digest()
	digest := h.String()
	repo := olaregURL(t) + "/nodes/k8s"

	out, stderr, err := runPrebake(t, "push", "nodes:v1", repo+":v1", "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, digest) || !strings.Contains(stderr, "uploaded") {
		t.Fatalf("push printed %q / %q", out, stderr)
	}
	out, _, err = runPrebake(t, "push", "nodes:v1", repo+":v1", "--insecure", "--json", "-q")
	if err != nil {
		t.Fatal(err)
	}
	var co copyOutput
	if err := json.Unmarshal([]byte(out), &co); err != nil || co.Uploaded != 0 || co.Digest != digest || co.Skipped == 0 {
		t.Fatalf("re-push: %s (%v)", out, err)
	}

	// pull refuses tags with --require-digest, then pulls by digest.
	dir := t.TempDir()
	if _, _, err := runPrebake(t, "pull", repo+":v1", "--insecure", "--require-digest", "-o", filepath.Join(dir, "a")); !errors.Is(err, registry.ErrDigestRequired) {
		t.Fatalf("pull by tag with --require-digest: %v", err)
	}
	out, _, err = runPrebake(t, "pull", repo+":v1", "--insecure", "-o", "oci:"+filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != repo+"@"+digest {
		t.Fatalf("pull printed %q, want the resolved digest", out)
	}

	// ls shows the version.
	out, _, err = runPrebake(t, "ls", repo, "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "v1") || !strings.Contains(out, "1.36.4") || !strings.Contains(out, "2026-03-01T10:00:00Z") || !strings.Contains(out, digest) {
		t.Fatalf("ls:\n%s", out)
	}

	// promote needs a signature decision, then records the move.
	if _, _, err := runPrebake(t, "promote", repo+"@"+digest, "--channel", "production", "--insecure"); err == nil {
		t.Fatal("promote without --verify-key or --no-verify succeeded")
	}
	t.Setenv("PREBAKE_ACTOR", "release-bot")
	out, _, err = runPrebake(t, "promote", repo+"@"+digest, "--channel", "production", "--insecure", "--no-verify")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "production: (none) -> "+digest) {
		t.Fatalf("promote printed %q", out)
	}
	out, _, err = runPrebake(t, "channel", "history", repo, "production", "--insecure", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var hist []registry.Assignment
	if err := json.Unmarshal([]byte(out), &hist); err != nil || len(hist) != 1 || hist[0].By != "release-bot" || hist[0].Digest != digest {
		t.Fatalf("history: %s (%v)", out, err)
	}
	if _, _, err := runPrebake(t, "channel", "rollback", repo, "production", "--insecure"); err == nil || !strings.Contains(err.Error(), "nothing to roll back to") {
		t.Fatalf("rollback of the first promotion: %v", err)
	}

	// revoke: pulls refuse, --allow-revoked pulls.
	if _, _, err := runPrebake(t, "revoke", repo+"@"+digest, "--insecure", "--reason", "CVE-2026-0001"); err != nil {
		t.Fatal(err)
	}
	_, _, err = runPrebake(t, "pull", repo+"@"+digest, "--insecure", "-o", filepath.Join(dir, "b"))
	if !errors.Is(err, registry.ErrRevoked) || !strings.Contains(err.Error(), "CVE-2026-0001") {
		t.Fatalf("pull of a revoked digest: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused pull left output: %v", err)
	}
	if _, _, err := runPrebake(t, "pull", repo+"@"+digest, "--insecure", "--allow-revoked", "-o", filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	out, _, err = runPrebake(t, "ls", repo, "--insecure")
	if err != nil || !strings.Contains(out, "(revoked)") {
		t.Fatalf("ls after revoke: %s %v", out, err)
	}

	// copy to a layout keeps the referrers (the revocation, the channel record stays with the anchor).
	out, _, err = runPrebake(t, "copy", repo+"@"+digest, "oci:"+filepath.Join(dir, "copy")+":v1", "--insecure", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &co); err != nil || len(co.Referrers) != 1 {
		t.Fatalf("copy: %s", out)
	}
}

func TestRegistryCommandsHelp(t *testing.T) {
	for _, c := range [][]string{{"push"}, {"copy"}, {"pull"}, {"ls"}, {"promote"}, {"revoke"}, {"channel", "history"}, {"channel", "rollback"}} {
		out, _, err := runPrebake(t, append(c, "--help")...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Examples:") || len(out) < 400 {
			t.Errorf("%v --help does not teach:\n%s", c, out)
		}
	}
}

// TestVerifyKeyGatesPromoteAndPull signs a pushed image with a fresh key:
// promote and pull with --verify-key succeed with that key and refuse an
// unsigned digest or another key.
func TestVerifyKeyGatesPromoteAndPull(t *testing.T) {
	img, _ := storeWithImage(t, "1.36.4")
	h, _ := img.Digest()
	digest := h.String()
	repo := olaregURL(t) + "/nodes/k8s"
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	for _, p := range []string{"good", "other"} {
		if _, _, err := runPrebake(t, "keygen", "--prefix", filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := runPrebake(t, "push", "-q", "nodes:v1", repo+":v1", "--insecure"); err != nil {
		t.Fatal(err)
	}
	good, other := filepath.Join(dir, "good.pub"), filepath.Join(dir, "other.pub")

	// Unsigned: refused.
	if _, _, err := runPrebake(t, "promote", repo+"@"+digest, "--channel", "production", "--insecure", "--verify-key", good); err == nil {
		t.Fatal("promoted an unsigned digest")
	}
	if _, _, err := runPrebake(t, "sign", repo+"@"+digest, "--key", filepath.Join(dir, "good.key"), "--insecure"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runPrebake(t, "promote", repo+"@"+digest, "--channel", "production", "--insecure", "--verify-key", other); err == nil {
		t.Fatal("promoted with the wrong key")
	}
	if _, _, err := runPrebake(t, "pull", repo+"@"+digest, "--insecure", "--verify-key", other, "-o", filepath.Join(dir, "x")); err == nil {
		t.Fatal("pulled with the wrong key")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("refused pull left output")
	}
	out, _, err := runPrebake(t, "promote", repo+"@"+digest, "--channel", "production", "--insecure", "--verify-key", good)
	if err != nil || !strings.Contains(out, "-> "+digest) {
		t.Fatalf("signed promote: %q %v", out, err)
	}
	out, _, err = runPrebake(t, "pull", repo+":v1", "--insecure", "--verify-key", good, "-o", "oci:"+filepath.Join(dir, "layout"))
	if err != nil || strings.TrimSpace(out) != repo+"@"+digest {
		t.Fatalf("verified pull: %q %v", out, err)
	}
}
