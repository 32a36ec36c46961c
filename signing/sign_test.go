package signing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// places returns one reference by digest to a fresh random index in each
// transport: a registry, an oci: layout and the store.
func places(t *testing.T) map[string]registry.Reference {
	t.Helper()
	reg := newTestRegistry(t)
	remoteRef, _ := pushIndex(t, reg.Host, "nodes/k8s", "1.36.4")
	greg := newGGCRRegistry(t)
	ggcrRef, _ := pushIndex(t, greg.Host, "nodes/k8s", "1.36.4")
	layoutRef, _ := layoutIndex(t, t.TempDir(), "1.36.4")
	storeDir := t.TempDir()
	sl, _ := layoutIndex(t, storeDir, "node:1.36.4")
	storeRef, err := registry.ParseReference("store:node@"+sl.Digest, registry.ParseOptions{StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]registry.Reference{"prebake-serve": remoteRef, "ggcr-registry": ggcrRef, "layout": layoutRef, "store": storeRef}
}

func TestSignVerifyEveryTransport(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	for where, ref := range places(t) {
		t.Run(where, func(t *testing.T) {
			signed, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}, Annotations: map[string]string{"release": "2026.05"}, Registry: ropts})
			if err != nil {
				t.Fatal(err)
			}
			// The index and its two platform manifests.
			if len(signed) != 3 || signed[0].Digest != ref.Digest {
				t.Fatalf("signed %+v, want the index %s and its 2 manifests", signed, ref.Digest)
			}
			res, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Registry: ropts})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != ref.Digest || res.Signatures != 1 {
				t.Errorf("verified %s with %d signatures, want %s with 1", res.Digest, res.Signatures, ref.Digest)
			}
			if diff := cmp.Diff(map[string]string{"release": "2026.05"}, res.SignedAnnotations); diff != "" {
				t.Errorf("signed annotations (-want +got):\n%s", diff)
			}
			// 3 manifests; per image a config and 2 layers.
			if res.Manifests != 3 || res.Blobs != 6 {
				t.Errorf("checked %d manifests and %d blobs, want 3 and 6", res.Manifests, res.Blobs)
			}
			// Each platform manifest verifies on its own.
			for _, sd := range signed[1:] {
				if _, err := signing.Verify(ctx, ref.WithDigest(sd.Digest), signing.VerifyOptions{Verifier: v, Registry: ropts}); err != nil {
					t.Errorf("platform manifest %s: %v", sd.Digest, err)
				}
			}
			// A required annotation must be in the signed payload.
			if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Registry: ropts, Annotations: map[string]string{"release": "2026.05"}}); err != nil {
				t.Errorf("required annotation present: %v", err)
			}
			_, err = signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: v, Registry: ropts, Annotations: map[string]string{"release": "2025.01"}})
			if !errors.Is(err, signing.ErrAnnotationMismatch) || !errors.Is(err, signing.ErrVerification) {
				t.Errorf("wrong required annotation: got %v, want ErrAnnotationMismatch", err)
			}
		})
	}
}

func TestSignRefusesTags(t *testing.T) {
	ctx := context.Background()
	s, _ := newKey(t)
	reg := newTestRegistry(t)
	ref, _ := pushIndex(t, reg.Host, "nodes/k8s", "1.36.4")
	tagged := ref.WithTag("1.36.4")
	_, err := signing.Sign(ctx, tagged, signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}, Registry: ropts})
	var te *signing.TagReferenceError
	if !errors.As(err, &te) || !errors.Is(err, signing.ErrTagReference) || !errors.Is(err, registry.ErrDigestRequired) {
		t.Fatalf("signing a tag: got %v, want a TagReferenceError", err)
	}
	if te.Digest != ref.Digest || te.Fix != ref.String() {
		t.Errorf("error names digest %s and fix %s, want %s and %s", te.Digest, te.Fix, ref.Digest, ref)
	}
	_, err = signing.Attest(ctx, tagged, signing.AttestOptions{KeyOptions: signing.KeyOptions{Signer: s}, SBOM: sbomDoc("x"), Registry: ropts})
	if !errors.Is(err, signing.ErrTagReference) {
		t.Fatalf("attesting a tag: got %v, want ErrTagReference", err)
	}
}

func TestResignDoesNotDuplicate(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	s2, v2 := newKey(t)
	for where, ref := range places(t) {
		t.Run(where, func(t *testing.T) {
			o := signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}, Registry: ropts}
			if _, err := signing.Sign(ctx, ref, o); err != nil {
				t.Fatal(err)
			}
			again, err := signing.Sign(ctx, ref, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, sd := range again {
				if !sd.Existed {
					t.Errorf("re-signing %s wrote a new signature", sd.Digest)
				}
			}
			// A second key adds its own signature; both verify.
			o.Signer = s2
			if _, err := signing.Sign(ctx, ref, o); err != nil {
				t.Fatal(err)
			}
			for _, vv := range []signing.Verifier{v, v2} {
				res, err := signing.Verify(ctx, ref, signing.VerifyOptions{Verifier: vv, Registry: ropts})
				if err != nil {
					t.Fatal(err)
				}
				if res.Signatures != 1 {
					t.Errorf("%d signatures verify with one key, want 1", res.Signatures)
				}
			}
			n := countLayers(t, ref, signing.SignatureTag(v1.Hash{Algorithm: "sha256", Hex: ref.Digest[7:]}))
			if n != 2 {
				t.Errorf("signature image has %d signatures, want 2 (one per key)", n)
			}
		})
	}
}

func TestSignTopOnly(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	reg := newTestRegistry(t)
	ref, idx := pushIndex(t, reg.Host, "nodes/k8s", "1.36.4")
	signed, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Signer: s}, TopOnly: true, Registry: ropts})
	if err != nil {
		t.Fatal(err)
	}
	if len(signed) != 1 {
		t.Fatalf("signed %d manifests, want only the index", len(signed))
	}
	im, _ := idx.IndexManifest()
	_, err = signing.Verify(ctx, ref.WithDigest(im.Manifests[0].Digest.String()), signing.VerifyOptions{Verifier: v, Registry: ropts})
	if !errors.Is(err, signing.ErrNoSignature) {
		t.Errorf("unsigned platform manifest: got %v, want ErrNoSignature", err)
	}
}

func countLayers(t *testing.T, ref registry.Reference, tag string) int {
	t.Helper()
	a, _, err := registry.Get(context.Background(), ref.WithTag(tag), ropts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.(v1.Image).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}
