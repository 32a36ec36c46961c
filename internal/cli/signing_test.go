package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func TestKeygenSignVerifyAttestCommands(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	t.Setenv("COSIGN_PASSWORD", "pw")
	if _, _, err := runPrebake(t, "keygen", "--prefix", prefix); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runPrebake(t, "keygen", "--prefix", prefix); !errors.Is(err, signing.ErrKeyExists) {
		t.Fatalf("second keygen: got %v, want ErrKeyExists", err)
	}

	layout := filepath.Join(dir, "out")
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	l, err := registry.OpenLayout(layout)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := l.Put(t.Context(), "1.36.4", idx, nil, registry.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byDigest := "oci:" + layout + "@" + desc.Digest.String()

	_, _, err = runPrebake(t, "sign", "oci:"+layout+":1.36.4", "--key", prefix+".key")
	if !errors.Is(err, signing.ErrTagReference) || !strings.Contains(err.Error(), byDigest) {
		t.Fatalf("sign of a tag: got %v, want an error naming %s", err, byDigest)
	}
	out, _, err := runPrebake(t, "sign", byDigest, "--key", prefix+".key", "-a", "release=2026.05")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "signed sha256:") != 3 {
		t.Errorf("sign output:\n%s\nwant 3 signed manifests", out)
	}
	if out, _, _ := runPrebake(t, "sign", byDigest, "--key", prefix+".key", "-a", "release=2026.05"); strings.Count(out, "already signed") != 3 {
		t.Errorf("re-sign output:\n%s\nwant 3 already signed", out)
	}

	// A tag is fine for verify; it prints the digest it verified.
	out, _, err = runPrebake(t, "verify", "oci:"+layout+":1.36.4", "--key", prefix+".pub")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verified " + byDigest, "release=2026.05", "3 manifests"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runPrebake(t, "verify", byDigest, "--key", prefix+".pub", "--json", "-a", "release=2026.05")
	if err != nil {
		t.Fatal(err)
	}
	var res signing.VerifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest != desc.Digest.String() || res.Signatures != 1 {
		t.Errorf("verify --json: %v\n%s", err, out)
	}
	if _, _, err := runPrebake(t, "verify", byDigest, "--key", prefix+".pub", "-a", "release=other"); !errors.Is(err, signing.ErrAnnotationMismatch) {
		t.Errorf("verify -a with another value: got %v", err)
	}

	if _, _, err := runPrebake(t, "verify", byDigest, "--key", prefix+".pub", "--attestations"); !errors.Is(err, signing.ErrNoAttestation) {
		t.Fatalf("verify --attestations before attest: got %v", err)
	}
	sbom := filepath.Join(dir, "sbom.spdx.json")
	os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"node"}`), 0o644)
	out, _, err = runPrebake(t, "attest", byDigest, "--key", prefix+".key", "--sbom", sbom, "--source-revision", "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, signing.PredicateSBOM) || !strings.Contains(out, signing.PredicateProvenance) {
		t.Errorf("attest output:\n%s", out)
	}
	out, _, err = runPrebake(t, "verify", byDigest, "--key", prefix+".pub", "--attestations")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "attestation: ") != 2 {
		t.Errorf("verify --attestations output:\n%s", out)
	}

	// Without a password nothing is signed.
	os.Unsetenv("COSIGN_PASSWORD")
	if _, _, err := runPrebake(t, "sign", byDigest, "--key", prefix+".key"); err == nil || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Errorf("sign without a password: got %v", err)
	}
}
