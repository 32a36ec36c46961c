package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func TestExportFlags(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runPrebake(t, "export", "oci:"+dir+":tag", "--base", dir, "-o", dir+"/d.raw"); !errors.Is(err, registry.ErrDigestRequired) {
		t.Errorf("a tag reference: err = %v, want ErrDigestRequired", err)
	}
	if _, _, err := runPrebake(t, "export", "-o", dir+"/d.raw"); err == nil || !strings.Contains(err.Error(), "--base") {
		t.Errorf("no base: err = %v, want one naming --base", err)
	}
	if _, _, err := runPrebake(t, "export", "--base", dir); err == nil || !strings.Contains(err.Error(), "-o FILE") {
		t.Errorf("no output: err = %v, want one naming -o FILE", err)
	}
	if _, _, err := runPrebake(t, "export", "--base", dir, "--size", "4X", "-o", dir+"/d.raw"); err == nil || !strings.Contains(err.Error(), `--size "4X"`) {
		t.Errorf("bad size: err = %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "512M": 512 << 20, "4GiB": 4 << 30, "1048576": 1 << 20, "2t": 2 << 40, "64MB": 64 << 20} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "0", "4X", "99999999999T"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) accepted", in)
		}
	}
}

// --verify-key refuses an unsigned image before anything else happens.
func TestExportVerifyKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "")
	if _, _, err := runPrebake(t, "keygen", "--prefix", dir+"/k"); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := registry.OpenLayout(dir + "/oci")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := l.Put(t.Context(), "x", img, nil, registry.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runPrebake(t, "export", "oci:"+dir+"/oci@"+desc.Digest.String(), "--base", dir, "-o", dir+"/d.raw", "--verify-key", dir+"/k.pub")
	if !errors.Is(err, signing.ErrNoSignature) {
		t.Errorf("unsigned image: err = %v, want ErrNoSignature", err)
	}
	if _, _, err := runPrebake(t, "export", "oci:"+dir+"/oci@"+desc.Digest.String(), "--base", dir, "-o", dir+"/d.raw", "--verify-key", dir+"/missing.pub"); err == nil || !strings.Contains(err.Error(), "missing.pub") {
		t.Errorf("unreadable key: err = %v, want it named", err)
	}
}
