package signing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/in-toto/in-toto-golang/in_toto"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/prebake/prebake/registry"
)

// cosign's storage format, written and read here against the formats
// themselves rather than through cosign's Go packages: those link cosign's
// transparency-log, Fulcio, TUF and Kubernetes clients (~800 packages) into
// every prebake command for the few dozen lines below. The cosign CLI tests
// (cosign_test.go) check that both directions still interoperate.
const (
	// simpleSigningMediaType is the layer media type of a signature.
	simpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// dssePayloadType is the layer media type of an attestation.
	dssePayloadType types.MediaType = "application/vnd.dsse.envelope.v1+json"
	// intotoPayloadType is the payload type of an attestation's envelope.
	intotoPayloadType = "application/vnd.in-toto+json"
	// annSignature holds a signature's base64 signature (empty on
	// attestations, whose envelope carries it).
	annSignature = "dev.cosignproject.cosign/signature"
	// annCertificate and annChain hold a keyless signature's certificate
	// and chain (kept as found; prebake verifies with keys only).
	annCertificate = "dev.sigstore.cosign/certificate"
	annChain       = "dev.sigstore.cosign/chain"
)

// sigLayer is one signature or attestation: one layer of the .sig or .att
// image, with the annotations of its descriptor.
type sigLayer struct {
	mediaType types.MediaType
	payload   []byte
	ann       map[string]string
}

// newSigLayer is a layer as cosign builds it: the signature annotation is
// always present (empty for attestations), and a certificate brings its
// chain annotation along.
func newSigLayer(mt types.MediaType, payload []byte, b64sig string, ann map[string]string) *sigLayer {
	m := make(map[string]string, len(ann)+1)
	for k, v := range ann {
		m[k] = v
	}
	if m[annCertificate] != "" {
		m[annChain] = ann[annChain]
	}
	m[annSignature] = b64sig
	return &sigLayer{mediaType: mt, payload: payload, ann: m}
}

// signature is the raw signature of a simple-signing layer.
func (s *sigLayer) signature() ([]byte, error) {
	return base64.StdEncoding.DecodeString(s.ann[annSignature])
}

// verifySimple checks a simple-signing layer's signature over its payload.
func (s *sigLayer) verifySimple(ctx context.Context, v Verifier) error {
	raw, err := s.signature()
	if err != nil {
		return err
	}
	return v.VerifyMessage(ctx, s.payload, raw)
}

// verifyEnvelope checks an attestation layer's DSSE envelope (payload type
// in-toto) with v.
func (s *sigLayer) verifyEnvelope(ctx context.Context, v Verifier) error {
	var env ssldsse.Envelope
	if err := json.Unmarshal(s.payload, &env); err != nil {
		return err
	}
	if env.PayloadType != intotoPayloadType {
		return fmt.Errorf("envelope payload type %s, expected %s", env.PayloadType, intotoPayloadType)
	}
	ev, err := ssldsse.NewEnvelopeVerifier(&dsse.VerifierAdapter{SignatureVerifier: sigstoreVerifier(ctx, v)})
	if err != nil {
		return err
	}
	_, err = ev.Verify(ctx, &env)
	return err
}

// sigImage is the image cosign stores signatures in: an empty OCI image
// with one layer per signature, each descriptor carrying its annotations.
func sigImage(sigs []*sigLayer) (registry.Artifact, error) {
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	adds := make([]mutate.Addendum, 0, len(sigs))
	for _, s := range sigs {
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(s.payload, s.mediaType), Annotations: s.ann})
	}
	return mutate.Append(base, adds...)
}

// statementHeader is the in-toto header cosign attest writes: one subject,
// the repository, by sha256.
func statementHeader(hex, repo, predicateType string) in_toto.StatementHeader {
	return in_toto.StatementHeader{
		Type:          in_toto.StatementInTotoV01,
		PredicateType: predicateType,
		Subject:       []in_toto.Subject{{Name: repo, Digest: map[string]string{"sha256": hex}}},
	}
}

// inTotoStatement is the in-toto statement `cosign attest --type kind` makes of
// predicate for the manifest with sha256 hex (kinds spdxjson and
// slsaprovenance1, the two prebake attests).
func inTotoStatement(kind string, predicate []byte, hex, repo string) (any, error) {
	switch kind {
	case "spdxjson":
		var data any
		if err := json.Unmarshal(predicate, &data); err != nil {
			return nil, err
		}
		return in_toto.SPDXStatement{StatementHeader: statementHeader(hex, repo, in_toto.PredicateSPDX), Predicate: data}, nil
	case "slsaprovenance1":
		var p slsa1.ProvenancePredicate
		if err := json.Unmarshal(predicate, &p); err != nil {
			return nil, fmt.Errorf("provenance predicate: %w", err)
		}
		return in_toto.ProvenanceStatementSLSA1{StatementHeader: statementHeader(hex, repo, slsa1.PredicateSLSAProvenance), Predicate: p}, nil
	}
	return nil, fmt.Errorf("unknown predicate kind %s", kind)
}
