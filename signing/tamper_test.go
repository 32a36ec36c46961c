package signing_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// TestTamperMatrix: every way an image can fail verification is refused,
// with its own reason, in a registry and in an OCI layout.
func TestTamperMatrix(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	_, otherV := newKey(t)
	sign := func(t *testing.T, ref registry.Reference) {
		t.Helper()
		if _, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}, Registry: ropts}); err != nil {
			t.Fatal(err)
		}
	}
	type env struct {
		ref registry.Reference
		idx v1.ImageIndex
		// other is a second signed image in the same place.
		other registry.Reference
		// tamper replaces the content of a manifest or blob.
		tamper func(t *testing.T, d v1.Hash, body []byte)
	}
	registryEnv := func(t *testing.T, reg *testRegistry) env {
		ref, idx := pushIndex(t, reg.Host, "nodes/k8s", "1.36.4")
		other, _ := pushIndex(t, reg.Host, "nodes/k8s", "1.36.5")
		return env{ref: ref, idx: idx, other: other, tamper: func(t *testing.T, d v1.Hash, body []byte) {
			reg.Tamper("/"+d.String(), body)
		}}
	}
	setups := map[string]func(t *testing.T) env{
		"prebake-serve": func(t *testing.T) env { return registryEnv(t, newTestRegistry(t)) },
		"ggcr-registry": func(t *testing.T) env { return registryEnv(t, newGGCRRegistry(t)) },
		"layout": func(t *testing.T) env {
			dir := t.TempDir()
			ref, idx := layoutIndex(t, dir, "1.36.4")
			other, _ := layoutIndex(t, dir, "1.36.5")
			return env{ref: ref, idx: idx, other: other, tamper: func(t *testing.T, d v1.Hash, body []byte) {
				if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Hex), body, 0o644); err != nil {
					t.Fatal(err)
				}
			}}
		},
	}
	cases := []struct {
		name   string
		reason error
		want   string // in the message
		setup  func(t *testing.T, e env) registry.Reference
	}{
		{"good", nil, "", func(t *testing.T, e env) registry.Reference {
			sign(t, e.ref)
			return e.ref
		}},
		{"no signature", signing.ErrNoSignature, "no signature", func(t *testing.T, e env) registry.Reference {
			return e.ref
		}},
		{"wrong key", signing.ErrWrongKey, "no signature verifies", func(t *testing.T, e env) registry.Reference {
			o := signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: otherSigner(t)}, Registry: ropts}
			if _, err := signing.Sign(ctx, e.ref, o); err != nil {
				t.Fatal(err)
			}
			return e.ref
		}},
		{"signature over another digest", signing.ErrSubjectMismatch, "another digest", func(t *testing.T, e env) registry.Reference {
			sign(t, e.other)
			copySignatures(t, e.other, e.ref)
			return e.ref
		}},
		{"altered signature payload", signing.ErrWrongKey, "no signature verifies", func(t *testing.T, e env) registry.Reference {
			sign(t, e.ref)
			alterPayload(t, e.ref)
			return e.ref
		}},
		{"tampered manifest", signing.ErrDigestMismatch, "manifest digest mismatch", func(t *testing.T, e env) registry.Reference {
			sign(t, e.ref)
			im, _ := e.idx.IndexManifest()
			child, _ := e.idx.Image(im.Manifests[1].Digest)
			raw, _ := child.RawManifest()
			e.tamper(t, im.Manifests[1].Digest, bytes.Replace(raw, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2,"annotations":{"x":"y"}`), 1))
			return e.ref
		}},
		{"tampered layer", signing.ErrDigestMismatch, "blob digest mismatch", func(t *testing.T, e env) registry.Reference {
			sign(t, e.ref)
			im, _ := e.idx.IndexManifest()
			img, _ := e.idx.Image(im.Manifests[0].Digest)
			layers, _ := img.Layers()
			d, _ := layers[1].Digest()
			size, _ := layers[1].Size()
			e.tamper(t, d, bytes.Repeat([]byte{'x'}, int(size)))
			return e.ref
		}},
		{"revoked", signing.ErrRevoked, "CVE-2026-0001", func(t *testing.T, e env) registry.Reference {
			sign(t, e.ref)
			if _, err := registry.Revoke(ctx, e.ref, registry.RevokeOptions{Options: ropts, Reason: "CVE-2026-0001 in containerd"}); err != nil {
				t.Fatal(err)
			}
			return e.ref
		}},
	}
	for where, setup := range setups {
		for _, c := range cases {
			t.Run(where+"/"+c.name, func(t *testing.T) {
				ref := c.setup(t, setup(t))
				res, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Registry: ropts})
				if c.reason == nil {
					if err != nil {
						t.Fatalf("untouched signed image: %v", err)
					}
					if res.Digest != ref.Digest {
						t.Fatalf("verified %s, want %s", res.Digest, ref.Digest)
					}
					return
				}
				if err == nil {
					t.Fatalf("verification passed, want %v", c.reason)
				}
				if !errors.Is(err, c.reason) || !errors.Is(err, signing.ErrVerification) {
					t.Fatalf("got %v, want a refusal for %v", err, c.reason)
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("message %q does not say %q", err, c.want)
				}
				if res != nil {
					t.Errorf("a refusal returned a result %+v", res)
				}
			})
		}
	}
	// Another key's verifier refuses prebake's own good signature too.
	t.Run("verifier of another key", func(t *testing.T) {
		e := setups["layout"](t)
		sign(t, e.ref)
		if _, err := signing.Verify(ctx, e.ref, signing.VerifyOptions{Verifier: otherV, Registry: ropts}); !errors.Is(err, signing.ErrWrongKey) {
			t.Fatalf("got %v, want ErrWrongKey", err)
		}
	})
}

func otherSigner(t *testing.T) signing.Signer {
	s, _ := newKey(t)
	return s
}

// copySignatures copies the signature image of from to the signature tag of
// to, as an attacker replaying another image's signature would.
func copySignatures(t *testing.T, from, to registry.Reference) {
	t.Helper()
	ctx := context.Background()
	a, _, err := registry.Get(ctx, from.WithTag(sigTag(from)), ropts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Write(ctx, to.WithTag(sigTag(to)), a, nil, ropts); err != nil {
		t.Fatal(err)
	}
}

// alterPayload rewrites the signed payload of ref's signature (the digest
// claim stays; the optional section gains a field) and keeps the signature.
func alterPayload(t *testing.T, ref registry.Reference) {
	t.Helper()
	ctx := context.Background()
	a, _, err := registry.Get(ctx, ref.WithTag(sigTag(ref)), ropts)
	if err != nil {
		t.Fatal(err)
	}
	img := a.(v1.Image)
	layers, _ := img.Layers()
	rc, _ := layers[0].Compressed()
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	m, _ := img.Manifest()
	altered := bytes.Replace(buf.Bytes(), []byte(`"optional":null`), []byte(`"optional":{"release":"forged"}`), 1)
	if bytes.Equal(altered, buf.Bytes()) {
		t.Fatalf("payload %s has no optional section to alter", buf.Bytes())
	}
	forged := forgedSignatures(t, altered, m.Layers[0].Annotations)
	if _, err := registry.Write(ctx, ref.WithTag(sigTag(ref)), forged, nil, ropts); err != nil {
		t.Fatal(err)
	}
}

func sigTag(ref registry.Reference) string {
	h, _ := v1.NewHash(ref.Digest)
	return signing.SignatureTag(h)
}

// TestAllowRevoked: a revoked digest passes only when the caller allows it,
// and the revocation is reported.
func TestAllowRevoked(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	ref, _ := layoutIndex(t, t.TempDir(), "1.36.4")
	if _, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}}); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Revoke(ctx, ref, registry.RevokeOptions{Reason: "superseded"}); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v}); !errors.Is(err, signing.ErrRevoked) {
		t.Fatalf("got %v, want ErrRevoked", err)
	}
	res, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, AllowRevoked: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revocations) != 1 || res.Revocations[0].Reason != "superseded" {
		t.Errorf("revocations %+v, want the one record", res.Revocations)
	}
}
