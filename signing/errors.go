package signing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prebake/prebake/registry"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrVerification matches every refusal of Verify (as opposed to an
	// error reaching the image or loading the key).
	ErrVerification = errors.New("verification failed")
	// ErrNoSignature: the digest has no signature at all.
	ErrNoSignature = errors.New("no signature")
	// ErrWrongKey: the digest has signatures, but none verifies with the
	// key (signed with another key, or the signature or payload was altered).
	ErrWrongKey = errors.New("no signature verifies with the key")
	// ErrBadSignature is ErrWrongKey: a signature that does not verify.
	ErrBadSignature = ErrWrongKey
	// ErrSubjectMismatch: a signature verifies with the key but was made
	// over another digest (copied from another image).
	ErrSubjectMismatch = errors.New("signature is for another digest")
	// ErrAnnotationMismatch: a valid signature lacks an annotation the
	// caller requires.
	ErrAnnotationMismatch = errors.New("signed annotations do not match")
	// ErrDigestMismatch: a manifest or blob does not hash to the digest that
	// names it (tampered content). It is registry.ErrDigestMismatch, and
	// the error is a *registry.DigestError saying what and where.
	ErrDigestMismatch = registry.ErrDigestMismatch
	// ErrRevoked: the digest was revoked (prebake revoke); it is
	// registry.ErrRevoked and the reason a *registry.RevokedError.
	ErrRevoked = registry.ErrRevoked
	// ErrNoAttestation: a required attestation (SBOM, provenance) is
	// missing or none of its kind verifies with the key.
	ErrNoAttestation = errors.New("missing attestation")
	// ErrTagReference: signing needs a digest; the error is a
	// *TagReferenceError carrying the digest the tag resolves to.
	ErrTagReference = errors.New("reference is not a digest")
	// ErrKeyExists: key generation refuses to replace existing key files.
	ErrKeyExists = errors.New("key file exists")
	// ErrNoSBOM: attest found no SBOM referrer and was given no SBOM file.
	ErrNoSBOM = errors.New("no SBOM")
	// ErrNoKMS: a KMS key reference in a program built without the KMS
	// providers (signing/kms is imported by the kms build of prebake).
	ErrNoKMS = errors.New("no KMS provider in this build")
)

// TagReferenceError refuses to sign a tag and tells which digest to sign.
type TagReferenceError struct {
	Ref    string // the reference as given
	Digest string // what it resolves to now
	Fix    string // the reference to use instead
}

func (e *TagReferenceError) Error() string {
	return fmt.Sprintf("%s is not pinned to a digest (it resolves to %s now); sign by digest: %s", e.Ref, e.Digest, e.Fix)
}

// Unwrap matches ErrTagReference and registry.ErrDigestRequired.
func (e *TagReferenceError) Unwrap() []error {
	return []error{ErrTagReference, registry.ErrDigestRequired}
}

// VerificationError is a refusal of Verify: Reason is one of the sentinels
// above, Digest what was being verified, and Details says why each
// signature was rejected.
type VerificationError struct {
	Ref     string
	Digest  string
	Reason  error
	Details []string
}

func (e *VerificationError) Error() string {
	s := fmt.Sprintf("verifying %s", e.Ref)
	if e.Digest != "" && !strings.Contains(e.Ref, e.Digest) {
		s += " (" + e.Digest + ")"
	}
	s += ": " + e.Reason.Error()
	if len(e.Details) > 0 {
		s += ": " + strings.Join(e.Details, "; ")
	}
	return s
}

// Unwrap matches both the reason and ErrVerification.
func (e *VerificationError) Unwrap() []error { return []error{e.Reason, ErrVerification} }
