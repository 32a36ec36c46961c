package signing_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// cosign runs the cosign CLI with a private HOME (no TUF cache, no
// credentials) and COSIGN_PASSWORD set.
func cosign(t *testing.T, home string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "cosign"), args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=pw", "COSIGN_YES=true", "SIGSTORE_NO_CACHE=true")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCosignInterop: signatures and attestations made by prebake pass the
// cosign CLI, and cosign's pass prebake, on a real registry (Debian's
// docker-registry), also after a restart and after `prebake copy`.
func TestCosignInterop(t *testing.T) {
	testenv.Tool(t, "cosign")
	ctx := context.Background()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	reg := testenv.StartDockerRegistry(t, filepath.Join(dir, "registry"))

	// Keys from both tools.
	pk, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: filepath.Join(dir, "prebake"), Password: password("pw")})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Tool(t, "cosign"), "generate-key-pair", "--output-key-prefix", "cosign")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=pw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	cosignKey, cosignPub := filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")

	a, idxA := pushIndex(t, reg.Host, "nodes/k8s", "a")
	b, _ := pushIndex(t, reg.Host, "nodes/k8s", "b")
	cverify := func(pub string, ref string, extra ...string) (string, error) {
		return cosign(t, home, append([]string{"verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry"}, append(extra, ref)...)...)
	}

	t.Run("cosign verifies prebake signatures", func(t *testing.T) {
		signed, err := signing.Sign(ctx, a, signing.SignOptions{KeyOptions: signing.KeyOptions{Key: pk.PrivateKey, Password: password("pw")}, Annotations: map[string]string{"release": "2026.05"}, Registry: ropts})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range signed {
			if out, err := cverify(pk.PublicKey, a.WithDigest(s.Digest).String(), "-a", "release=2026.05"); err != nil {
				t.Fatalf("cosign verify %s: %v\n%s", s.Digest, err, out)
			}
		}
		if out, err := cverify(cosignPub, a.String()); err == nil {
			t.Fatalf("cosign verify with another key passed:\n%s", out)
		}
	})

	t.Run("prebake verifies cosign signatures", func(t *testing.T) {
		if out, err := cosign(t, home, "sign", "--key", cosignKey, "--tlog-upload=false", "--allow-http-registry", b.String()); err != nil {
			t.Fatalf("cosign sign: %v\n%s", err, out)
		}
		res, err := signing.Verify(ctx, b, signing.VerifyOptions{Key: cosignPub, Registry: ropts})
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != b.Digest || res.Signatures != 1 {
			t.Errorf("verified %+v", res)
		}
		if _, err := signing.Verify(ctx, b, signing.VerifyOptions{Key: pk.PublicKey, Registry: ropts}); !errors.Is(err, signing.ErrWrongKey) {
			t.Errorf("cosign's signature with prebake's key: got %v, want ErrWrongKey", err)
		}
		// prebake signs with cosign's key file; cosign accepts it.
		if _, err := signing.Sign(ctx, a, signing.SignOptions{KeyOptions: signing.KeyOptions{Key: cosignKey, Password: password("pw")}, TopOnly: true, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
		if out, err := cverify(cosignPub, a.String()); err != nil {
			t.Fatalf("cosign verify of prebake's signature with cosign's key: %v\n%s", err, out)
		}
	})

	sbomFile := filepath.Join(dir, "sbom.spdx.json")
	os.WriteFile(sbomFile, sbomDoc("interop"), 0o644)
	cverifyAtt := func(pub, typ, ref string) (string, error) {
		return cosign(t, home, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", typ, ref)
	}

	t.Run("cosign verifies prebake attestations", func(t *testing.T) {
		attachSBOM(t, a, idxA, sbomDoc("interop"))
		if _, err := signing.Attest(ctx, a, signing.AttestOptions{KeyOptions: signing.KeyOptions{Key: pk.PrivateKey, Password: password("pw")}, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"spdxjson", "slsaprovenance1"} {
			if out, err := cverifyAtt(pk.PublicKey, typ, a.String()); err != nil {
				t.Fatalf("cosign verify-attestation --type %s: %v\n%s", typ, err, out)
			}
		}
		if _, err := signing.Verify(ctx, a, signing.VerifyOptions{Key: pk.PublicKey, Attestations: true, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("prebake verifies cosign attestations", func(t *testing.T) {
		prov := filepath.Join(dir, "provenance.json")
		os.WriteFile(prov, []byte(`{"buildDefinition":{"buildType":"https://example.com/ci","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/ci"}}}`), 0o644)
		for typ, pred := range map[string]string{"spdxjson": sbomFile, "slsaprovenance1": prov} {
			if out, err := cosign(t, home, "attest", "--key", cosignKey, "--tlog-upload=false", "--allow-http-registry", "--type", typ, "--predicate", pred, b.String()); err != nil {
				t.Fatalf("cosign attest --type %s: %v\n%s", typ, err, out)
			}
		}
		res, err := signing.Verify(ctx, b, signing.VerifyOptions{Key: cosignPub, Attestations: true, Registry: ropts})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Attestations) != 2 {
			t.Errorf("verified attestations %+v, want 2", res.Attestations)
		}
	})

	t.Run("signatures survive a registry restart", func(t *testing.T) {
		reg.Restart(t)
		if _, err := signing.Verify(ctx, a, signing.VerifyOptions{Key: pk.PublicKey, Attestations: true, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
		if out, err := cverify(pk.PublicKey, a.String()); err != nil {
			t.Fatalf("cosign verify after restart: %v\n%s", err, out)
		}
	})

	t.Run("prebake copy carries signatures and attestations", func(t *testing.T) {
		layout := filepath.Join(dir, "copied")
		dst := registry.MustParse("oci:" + layout + ":copied")
		if _, err := registry.Copy(ctx, a, dst, ropts); err != nil {
			t.Fatal(err)
		}
		res, err := signing.Verify(ctx, dst, signing.VerifyOptions{Key: pk.PublicKey, Attestations: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != a.Digest {
			t.Errorf("copy verified as %s, want %s", res.Digest, a.Digest)
		}
		// And on to another registry, where cosign finds them.
		other := testenv.StartDockerRegistry(t, filepath.Join(dir, "registry2"))
		to := registry.MustParse(other.Host + "/mirror/k8s:copied")
		if _, err := registry.Copy(ctx, dst, to, ropts); err != nil {
			t.Fatal(err)
		}
		if out, err := cverify(pk.PublicKey, to.WithDigest(a.Digest).String()); err != nil {
			t.Fatalf("cosign verify of the copy: %v\n%s", err, out)
		}
		if _, err := signing.Verify(ctx, to, signing.VerifyOptions{Key: pk.PublicKey, Attestations: true, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
	})
}
