package signing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prebake/prebake/internal/lazyre"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/prebake/prebake/registry"
)

// KeyOptions name the private key of Sign, Attest and SignAndAttest.
type KeyOptions struct {
	// Key is the key reference: a cosign key file, env://VAR, or a KMS URI.
	// Ignored when Signer is set.
	Key string
	// Password returns the password of an encrypted key file; nil means the
	// empty password.
	Password PassFunc
	// Signer signs instead of loading Key (load it once with LoadSigner to
	// sign many images).
	Signer Signer
}

func (k KeyOptions) signer(ctx context.Context) (Signer, error) {
	if k.Signer != nil {
		return k.Signer, nil
	}
	if k.Key == "" {
		return nil, fmt.Errorf("no signing key given")
	}
	return LoadSigner(ctx, k.Key, k.Password)
}

// keys is the signer and the verifier of its public key, which recognises
// the signatures and attestations it made before (so they are not added
// twice).
func (k KeyOptions) keys(ctx context.Context) (Signer, Verifier, error) {
	s, err := k.signer(ctx)
	if err != nil {
		return nil, nil, err
	}
	v, err := verifierOf(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	return s, v, nil
}

// SignOptions configure Sign. The zero value (plus a key) signs the manifest
// and, for an index, every manifest it lists, with no annotations.
type SignOptions struct {
	KeyOptions
	// TopOnly signs only the named manifest, not the manifests an index
	// lists (cosign sign --recursive=false).
	TopOnly bool
	// Annotations are signed into the payload's "optional" section (cosign
	// sign -a); Verify returns them and can require them.
	Annotations map[string]string
	// Identity is the docker-reference the payload claims. Empty means the
	// repository (registry), the store name, or the layout directory's
	// base name.
	Identity string
	// Registry reaches the image.
	Registry registry.Options
}

// Signed reports one manifest Sign signed.
type Signed struct {
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	// Signatures is where the signature is stored (REPO:sha256-<hex>.sig).
	Signatures string `json:"signatures"`
	// Existed is true when an identical signature by the same key was
	// already there, so nothing was written.
	Existed bool `json:"existed"`
}

// Sign signs the manifest ref names, which must be given by digest (a tag
// is a *TagReferenceError naming the digest it resolves to), and for an
// index every manifest below it. Signatures are cosign simple-signing
// payloads stored under the sha256-<hex>.sig tag; a signature identical to
// one already there (same key, same payload) is not added again. Nothing is
// sent anywhere but to where the image lives.
func Sign(ctx context.Context, ref registry.Reference, o SignOptions) ([]Signed, error) {
	root, desc, err := resolveDigest(ctx, ref, o.Registry)
	if err != nil {
		return nil, err
	}
	s, v, err := o.keys(ctx)
	if err != nil {
		return nil, err
	}
	targets := []v1.Descriptor{desc}
	if !o.TopOnly {
		if idx, ok := root.(v1.ImageIndex); ok {
			children, err := manifestsBelow(idx)
			if err != nil {
				return nil, fmt.Errorf("signing %s: %w", ref, err)
			}
			targets = append(targets, children...)
		}
	}
	ann := map[string]interface{}{}
	for k, val := range o.Annotations {
		ann[k] = val
	}
	if len(ann) == 0 {
		ann = nil
	}
	id := identity(ref, o.Identity)
	var out []Signed
	for _, d := range targets {
		res, err := signOne(ctx, ref, d, s, v, id, ann, o.Registry)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// resolveDigest gets the artifact ref names, insisting that ref is pinned
// by digest and that the manifest hashes to it.
func resolveDigest(ctx context.Context, ref registry.Reference, o registry.Options) (registry.Artifact, v1.Descriptor, error) {
	a, desc, err := registry.Get(ctx, ref, o)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if ref.Digest == "" {
		return nil, v1.Descriptor{}, &TagReferenceError{Ref: ref.String(), Digest: desc.Digest.String(), Fix: ref.WithDigest(desc.Digest.String()).String()}
	}
	raw, err := a.RawManifest()
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("reading %s: %w", ref, err)
	}
	if desc.Size == 0 {
		desc.Size = int64(len(raw))
	}
	if err := checkDigest("manifest", ref.String(), desc, raw); err != nil {
		return nil, v1.Descriptor{}, err
	}
	return a, desc, nil
}

// manifestsBelow lists every manifest an index lists, depth first.
func manifestsBelow(idx v1.ImageIndex) ([]v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			out = append(out, d)
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading index %s: %w", d.Digest, err)
			}
			below, err := manifestsBelow(child)
			if err != nil {
				return nil, err
			}
			out = append(out, below...)
		case d.MediaType.IsImage():
			out = append(out, d)
		}
	}
	return out, nil
}

var unsafeName = lazyre.New(`[^a-z0-9._-]+`)

// identity is the docker-reference a signature of ref claims: given, else
// the repository or store name, else the layout directory's base name.
func identity(ref registry.Reference, given string) string {
	if given != "" {
		return given
	}
	switch ref.Transport {
	case registry.TransportRemote, registry.TransportStore:
		return ref.Name
	}
	n := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(filepath.Base(ref.Dir)), "-"), "-._")
	if n == "" {
		n = "layout"
	}
	return n
}

// simplePayload is cosign's payload for the manifest digest d.
func simplePayload(d v1.Hash, id string, ann map[string]interface{}) ([]byte, error) {
	return json.Marshal(payload.SimpleContainerImage{
		Critical: payload.Critical{
			Identity: payload.Identity{DockerReference: id},
			Image:    payload.Image{DockerManifestDigest: d.String()},
			Type:     payload.CosignSignatureType,
		},
		Optional: ann,
	})
}

func signOne(ctx context.Context, ref registry.Reference, d v1.Descriptor, s Signer, v Verifier, id string, ann map[string]interface{}, o registry.Options) (Signed, error) {
	tag := SignatureTag(d.Digest)
	res := Signed{Digest: d.Digest.String(), MediaType: string(d.MediaType), Signatures: ref.WithTag(tag).String()}
	msg, err := simplePayload(d.Digest, id, ann)
	if err != nil {
		return res, err
	}
	existing, err := readSignatures(ctx, ref, tag, o)
	if err != nil {
		return res, err
	}
	for _, e := range existing {
		if sameSignature(ctx, e, msg, v) {
			res.Existed = true
			return res, nil
		}
	}
	raw, err := s.SignMessage(ctx, msg)
	if err != nil {
		return res, fmt.Errorf("signing %s: %w", d.Digest, err)
	}
	sig := newSigLayer(simpleSigningMediaType, msg, base64.StdEncoding.EncodeToString(raw), nil)
	if err := writeSignatures(ctx, ref, tag, append(existing, sig), o); err != nil {
		return res, err
	}
	return res, nil
}

// sameSignature reports whether e is a simple-signing signature of msg that
// v verifies (cosign's duplicate detection).
func sameSignature(ctx context.Context, e *sigLayer, msg []byte, v Verifier) bool {
	return e.mediaType == simpleSigningMediaType && bytes.Equal(e.payload, msg) && e.verifySimple(ctx, v) == nil
}
