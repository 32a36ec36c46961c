package signing_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func TestAttestAndVerify(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	s2, v2 := newKey(t)
	reg := newTestRegistry(t)
	greg := newGGCRRegistry(t)
	refs := map[string]func() (registry.Reference, v1.ImageIndex){
		"prebake-serve": func() (registry.Reference, v1.ImageIndex) { return pushIndex(t, reg.Host, "nodes/k8s", "1.36.4") },
		"ggcr-registry": func() (registry.Reference, v1.ImageIndex) { return pushIndex(t, greg.Host, "nodes/k8s", "1.36.4") },
		"layout":        func() (registry.Reference, v1.ImageIndex) { return layoutIndex(t, t.TempDir(), "1.36.4") },
	}
	for where, mk := range refs {
		t.Run(where, func(t *testing.T) {
			ref, idx := mk()
			key := signing.KeyOptions{Signer: s}
			if _, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: key, Registry: ropts}); !errors.Is(err, signing.ErrNoSBOM) {
				t.Fatalf("attest without an SBOM: got %v, want ErrNoSBOM", err)
			}
			if _, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: key, SBOM: []byte(`{"bomFormat":"CycloneDX"}`), Registry: ropts}); err == nil || !strings.Contains(err.Error(), "SPDX") {
				t.Fatalf("attest of a non-SPDX document: got %v", err)
			}
			attachSBOM(t, ref, idx, sbomDoc("from-referrer"))
			if _, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: key, Registry: ropts}); err != nil {
				t.Fatal(err)
			}
			_, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Attestations: true, Registry: ropts})
			if !errors.Is(err, signing.ErrNoAttestation) {
				t.Fatalf("verify --attestations before attest: got %v, want ErrNoAttestation", err)
			}
			res, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: key, Provenance: signing.Provenance{LockDigest: "sha256:" + strings.Repeat("cd", 32)}, Registry: ropts})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 2 || res[0].PredicateType != signing.PredicateSBOM || res[1].PredicateType != signing.PredicateProvenance {
				t.Fatalf("attested %+v, want SBOM and provenance", res)
			}
			vr, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Attestations: true, Registry: ropts})
			if err != nil {
				t.Fatal(err)
			}
			if len(vr.Attestations) != 2 {
				t.Errorf("verified attestations %+v, want 2", vr.Attestations)
			}
			sts := statements(t, ref)
			sbom := sts[signing.PredicateSBOM]
			if sbom["predicate"].(map[string]any)["name"] != "from-referrer" {
				t.Errorf("SBOM attestation predicate %v is not the SBOM referrer", sbom["predicate"])
			}
			subj := sbom["subject"].([]any)[0].(map[string]any)["digest"].(map[string]any)["sha256"]
			if "sha256:"+subj.(string) != ref.Digest {
				t.Errorf("statement subject %v, want %s", subj, ref.Digest)
			}
			prov, _ := json.Marshal(sts[signing.PredicateProvenance]["predicate"])
			for _, want := range []string{`"recipeDigest":"sha256:abab`, `"lockDigest":"sha256:cdcd`, `"gitCommit":"0123456789abcdef"`, `"buildType":"` + signing.BuildType, `"prebake":`} {
				if !strings.Contains(string(prov), want) {
					t.Errorf("provenance %s lacks %s", prov, want)
				}
			}

			// Again: nothing new. A new SBOM replaces ours; another key's
			// attestations sit beside them.
			again, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: key, Provenance: signing.Provenance{LockDigest: "sha256:" + strings.Repeat("cd", 32)}, Registry: ropts})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range again {
				if !a.Existed {
					t.Errorf("re-attesting %s wrote a new attestation", a.PredicateType)
				}
			}
			if _, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: key, SBOM: sbomDoc("replaced"), SkipProvenance: true, Registry: ropts}); err != nil {
				t.Fatal(err)
			}
			if n := countLayers(t, ref, attTag(ref)); n != 2 {
				t.Errorf("%d attestations after replacing the SBOM, want 2", n)
			}
			if got := statements(t, ref)[signing.PredicateSBOM]["predicate"].(map[string]any)["name"]; got != "replaced" {
				t.Errorf("SBOM attestation names %v after replacement", got)
			}
			if _, err := signing.Attest(ctx, ref, signing.AttestOptions{KeyOptions: signing.KeyOptions{Signer: s2}, SBOM: sbomDoc("second"), Registry: ropts}); err != nil {
				t.Fatal(err)
			}
			if n := countLayers(t, ref, attTag(ref)); n != 4 {
				t.Errorf("%d attestations with two keys, want 4", n)
			}
			if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Attestations: true, Registry: ropts}); err != nil {
				t.Errorf("first key after the second attested: %v", err)
			}
			// The second key attested but did not sign the image.
			if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v2, Attestations: true, Registry: ropts}); !errors.Is(err, signing.ErrWrongKey) {
				t.Errorf("second key: got %v, want ErrWrongKey (it signed no signature)", err)
			}
		})
	}
}

func TestSignAndAttest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: dir + "/k", Password: password("pw")})
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	pass := func(bool) ([]byte, error) { asked++; return []byte("pw"), nil }
	ref, idx := layoutIndex(t, t.TempDir(), "1.36.4")
	attachSBOM(t, ref, idx, sbomDoc("build"))
	res, err := signing.SignAndAttest(ctx, ref, signing.SignAndAttestOptions{KeyOptions: signing.KeyOptions{Key: kp.PrivateKey, Password: pass}, Registry: ropts})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signed) != 3 || len(res.Attested) != 2 {
		t.Errorf("signed %d and attested %d, want 3 and 2", len(res.Signed), len(res.Attested))
	}
	if asked != 1 {
		t.Errorf("password asked %d times, want once", asked)
	}
	if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Key: kp.PublicKey, Attestations: true, Registry: ropts}); err != nil {
		t.Fatal(err)
	}
}

func attTag(ref registry.Reference) string {
	h, _ := v1.NewHash(ref.Digest)
	return signing.AttestationTag(h)
}

// statements decodes the in-toto statements stored at ref's attestation
// tag, by predicate type (the last of each type wins).
func statements(t *testing.T, ref registry.Reference) map[string]map[string]any {
	t.Helper()
	a, _, err := registry.Get(context.Background(), ref.WithTag(attTag(ref)), ropts)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := a.(v1.Image).Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, l := range layers {
		rc, _ := l.Compressed()
		b, _ := io.ReadAll(rc)
		rc.Close()
		var env struct{ Payload string }
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(env.Payload)
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		out[st["predicateType"].(string)] = st
	}
	return out
}
