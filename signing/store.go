package signing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry"
)

// Where signatures live. cosign's convention, used unchanged so that the
// cosign CLI, policy controllers and `prebake copy` (which copies these tags
// with the image) all find them:
//
//	registry  REPO:sha256-<hex>.sig   one image manifest; one layer per signature
//	          REPO:sha256-<hex>.att   one image manifest; one layer per attestation
//	oci:DIR   the same names as org.opencontainers.image.ref.name in index.json
//	store:    NAME:sha256-<hex>.sig / .att in the store's index.json
const (
	sigSuffix = "sig"
	attSuffix = "att"
)

// SignatureTag is the tag (or layout ref name) holding the signatures of
// the manifest with digest d.
func SignatureTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + "." + sigSuffix }

// AttestationTag is the tag (or layout ref name) holding the attestations
// of the manifest with digest d.
func AttestationTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + "." + attSuffix }

// maxLayerSize caps what is read of one signature or attestation layer and
// of an SBOM: a descriptor's size is whatever the registry says.
const maxLayerSize = 64 << 20

// maxLayers caps the signatures read from one tag (cosign's limit).
const maxLayers = 1000

// readSignatures returns the signatures (or attestations) stored under tag
// next to ref, each checked against its descriptor's digest and size; a
// missing tag is no signatures.
func readSignatures(ctx context.Context, ref registry.Reference, tag string, o registry.Options) ([]*sigLayer, error) {
	at := ref.WithTag(tag)
	a, _, err := registry.Get(ctx, at, o)
	if registry.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading signatures %s: %w", at, err)
	}
	img, ok := a.(v1.Image)
	if !ok {
		return nil, fmt.Errorf("reading signatures %s: not an image manifest", at)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading signatures %s: %w", at, err)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("reading signatures %s: %d layers, more than %d", at, len(m.Layers), maxLayers)
	}
	var out []*sigLayer
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading signature %s of %s: %w", d.Digest, at, err)
		}
		payload, err := readVerified(l.Compressed, d, at.String())
		if err != nil {
			return nil, fmt.Errorf("reading signature %s of %s: %w", d.Digest, at, err)
		}
		out = append(out, newSigLayer(d.MediaType, payload, d.Annotations[annSignature], d.Annotations))
	}
	return out, nil
}

// writeSignatures stores sigs as the image under tag next to ref,
// replacing what was there.
func writeSignatures(ctx context.Context, ref registry.Reference, tag string, sigs []*sigLayer, o registry.Options) error {
	img, err := sigImage(sigs)
	if err != nil {
		return err
	}
	at := ref.WithTag(tag)
	if _, err := registry.Write(ctx, at, img, nil, o); err != nil {
		return fmt.Errorf("writing signatures %s: %w", at, err)
	}
	return nil
}

// readVerified reads a blob through open, refusing more than maxLayerSize
// bytes and content that differs from d's digest or size.
func readVerified(open func() (io.ReadCloser, error), d v1.Descriptor, source string) ([]byte, error) {
	if d.Size < 0 || d.Size > maxLayerSize {
		return nil, fmt.Errorf("blob %s: size %d outside 0..%d", d.Digest, d.Size, maxLayerSize)
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, err
	}
	return b, checkDigest("blob", source, d, b)
}

// checkDigest compares b with descriptor d.
func checkDigest(what, source string, d v1.Descriptor, b []byte) error {
	sum := sha256.Sum256(b)
	got := "sha256:" + hex.EncodeToString(sum[:])
	if got != d.Digest.String() || int64(len(b)) != d.Size {
		return &registry.DigestError{What: what, Source: source, Expected: d.Digest.String(), Actual: got, ExpectedSize: d.Size, ActualSize: int64(len(b))}
	}
	return nil
}
