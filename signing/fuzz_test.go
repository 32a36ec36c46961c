package signing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
)

// fuzzKey is one signing key for a fuzz target's seeds and checks.
func fuzzKey(f *testing.F) (Signer, Verifier) {
	f.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	return s, v
}

var fuzzDigest = v1.Hash{Algorithm: "sha256", Hex: "4a8c3f6ec8e5a7e1c2bb6d2a1f3e5d7c9b0a1f2e3d4c5b6a7980fedcba987654"}

// FuzzCheckSignature feeds signature layers read from a registry — the
// payload and the base64 signature annotation, both outside bytes — to the
// check verify runs. Nothing may panic, every refusal has a reason, and
// nothing but the payload the key signed verifies: a changed payload or
// claim is refused.
func FuzzCheckSignature(f *testing.F) {
	s, v := fuzzKey(f)
	ctx := context.Background()
	signed, err := simplePayload(fuzzDigest, "registry.example/nodes/k8s", map[string]interface{}{"channel": "stable"})
	if err != nil {
		f.Fatal(err)
	}
	raw, err := s.SignMessage(ctx, signed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed, []byte(base64.StdEncoding.EncodeToString(raw)))
	f.Add(signed, []byte{})
	f.Add(bytes.Replace(signed, []byte("stable"), []byte("stab1e"), 1), []byte(base64.StdEncoding.EncodeToString(raw)))
	f.Add([]byte(`{"critical":{"type":"cosign container image signature"}}`), []byte("MEUCIQ=="))
	f.Add([]byte("not json"), []byte("not base64!"))
	want := map[string]string{"channel": "stable"}
	f.Fuzz(func(t *testing.T, p, b64sig []byte) {
		l := newSigLayer(simpleSigningMediaType, p, string(b64sig), nil)
		claims, err := checkSignature(ctx, l, fuzzDigest, v, want)
		if err != nil {
			for _, sentinel := range []error{ErrWrongKey, ErrSubjectMismatch, ErrAnnotationMismatch} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("refusal without a reason: %v", err)
		}
		if !bytes.Equal(p, signed) {
			t.Fatalf("a payload the key never signed verified: %q", p)
		}
		if claims["channel"] != "stable" {
			t.Fatalf("claims = %v", claims)
		}
	})
}

// FuzzCheckAttestation feeds attestation layers (DSSE envelopes read from a
// registry) to the check verify and attest run: errors, never a panic, and
// only the statement the key signed is accepted.
func FuzzCheckAttestation(f *testing.F) {
	s, v := fuzzKey(f)
	ctx := context.Background()
	stmt := []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"name":"x","digest":{"sha256":"` + fuzzDigest.Hex + `"}}],"predicate":{}}`)
	env, err := dsse.WrapSigner(sigstoreSigner(ctx, s), intotoPayloadType).SignMessage(bytes.NewReader(stmt), sigopts.WithContext(ctx))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	var e map[string]any
	if err := json.Unmarshal(env, &e); err != nil {
		f.Fatal(err)
	}
	e["payloadType"] = "application/json"
	other, _ := json.Marshal(e)
	f.Add(other)
	f.Add([]byte(`{"payload":"!!!"}`))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"bnVsbA==","signatures":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, envelope []byte) {
		l := newSigLayer(dssePayloadType, envelope, "", nil)
		if st, raw, err := statementOf(l); err == nil && (st == nil || raw == nil) {
			t.Fatal("statementOf: no error and no statement")
		}
		st, raw, err := checkAttestation(ctx, l, fuzzDigest, v)
		if err != nil {
			return
		}
		if !bytes.Equal(raw, stmt) || st.PredicateType != "https://spdx.dev/Document" {
			t.Fatalf("a statement the key never signed verified: %q", raw)
		}
	})
}
