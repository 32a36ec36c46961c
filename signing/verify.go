package signing

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prebake/prebake/internal/lazyre"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/registry"
)

// VerifyOptions configure Verify. The zero value (plus a key) checks the
// signature, the revocation status and every manifest and blob of the
// image against their digests.
type VerifyOptions struct {
	// Key is the public key reference: a PEM file, env://VAR or a KMS URI.
	// Ignored when Verifier is set.
	Key string
	// Verifier checks signatures instead of loading Key.
	Verifier Verifier
	// Annotations must all be present, with these values, in a verified
	// signature's payload (cosign verify -a).
	Annotations map[string]string
	// Attestations also requires an SBOM (SPDX) and a provenance (SLSA v1)
	// attestation of the digest verified by the same key.
	Attestations bool
	// SkipBlobs checks manifests only, not the config and layer contents
	// (what cosign verify checks). The signature still pins them by digest.
	SkipBlobs bool
	// AllowRevoked does not refuse a revoked digest; the revocations are
	// returned in VerifyResult.Revocations (prebake pull --allow-revoked).
	AllowRevoked bool
	// Registry reaches the image.
	Registry registry.Options
}

// VerifyResult is what Verify proved.
type VerifyResult struct {
	// Ref is the reference as given; Digest the manifest that was verified.
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	// Signatures is how many signatures on Digest verified with the key.
	Signatures int `json:"signatures"`
	// SignedAnnotations are the "optional" claims of the verified
	// signatures (cosign sign -a).
	SignedAnnotations map[string]string `json:"signedAnnotations,omitempty"`
	// Annotations are the manifest's own annotations, trusted because the
	// manifest hashes to the signed digest.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Manifests and Blobs count the contents checked against their digests.
	Manifests int `json:"manifests"`
	Blobs     int `json:"blobs"`
	// Attestations lists the verified attestations by predicate type.
	Attestations []VerifiedAttestation `json:"attestations,omitempty"`
	// Revocations of Digest, when AllowRevoked let them pass.
	Revocations []registry.Revocation `json:"revocations,omitempty"`
}

// VerifiedAttestation is one attestation whose envelope verified.
type VerifiedAttestation struct {
	PredicateType string `json:"predicateType"`
	// Digest is the sha256 of the in-toto statement.
	Digest string `json:"digest"`
}

// Verify proves that the image ref names is signed by the key and intact,
// reading nothing but the place it lives: it resolves ref once (a tag is
// allowed), refuses a revoked digest, checks that the manifest (and, unless
// SkipBlobs, every manifest and blob below it) hashes to its digest, and
// requires a signature on the digest that verifies with the key and claims
// that digest. No transparency log or certificate authority is consulted.
//
// A refusal is a *VerificationError matching ErrVerification and its reason
// (ErrNoSignature, ErrWrongKey, ErrSubjectMismatch, ErrAnnotationMismatch,
// ErrDigestMismatch, ErrRevoked, ErrNoAttestation); any other error means
// the image or key could not be read, and is never a success either.
func Verify(ctx context.Context, ref registry.Reference, o VerifyOptions) (*VerifyResult, error) {
	v := o.Verifier
	if v == nil {
		if o.Key == "" {
			return nil, fmt.Errorf("no public key given")
		}
		var err error
		if v, err = LoadVerifier(ctx, o.Key); err != nil {
			return nil, err
		}
	}
	a, desc, err := registry.Get(ctx, ref, o.Registry)
	if err != nil {
		if de := manifestMismatch(err, ref.Digest, ref.String()); de != nil {
			return nil, &VerificationError{Ref: ref.String(), Digest: ref.Digest, Reason: de}
		}
		return nil, err
	}
	pinned := ref.WithDigest(desc.Digest.String())
	res := &VerifyResult{Ref: ref.String(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	refuse := func(reason error, details ...string) error {
		return &VerificationError{Ref: ref.String(), Digest: res.Digest, Reason: reason, Details: details}
	}

	// The revocation records, the content and the signatures are read at
	// once; the verdict below takes them in a fixed order.
	var (
		wg                              sync.WaitGroup
		revs                            []registry.Revocation
		sigs, atts                      []*sigLayer
		revErr, contErr, sigErr, attErr error
		c                               = &contentChecker{skipBlobs: o.SkipBlobs, source: ref.String()}
	)
	wg.Go(func() { revs, revErr = registry.Revocations(ctx, pinned, o.Registry) })
	wg.Go(func() { contErr = c.check(ctx, desc, a) })
	wg.Go(func() { sigs, sigErr = readSignatures(ctx, pinned, SignatureTag(desc.Digest), o.Registry) })
	if o.Attestations {
		wg.Go(func() { atts, attErr = readSignatures(ctx, pinned, AttestationTag(desc.Digest), o.Registry) })
	}
	wg.Wait()

	if revErr != nil {
		return nil, fmt.Errorf("checking revocation of %s: %w", pinned, revErr)
	}
	res.Revocations = revs
	if len(revs) > 0 && !o.AllowRevoked {
		r := revs[0]
		return nil, refuse(fmt.Errorf("%w: %q (by %s at %s)", ErrRevoked, r.Reason, r.By, r.At.Format(time.RFC3339)))
	}
	if contErr != nil {
		if isDigestError(contErr) {
			return nil, refuse(contErr)
		}
		return nil, fmt.Errorf("reading %s: %w", pinned, contErr)
	}
	res.Manifests, res.Blobs = c.manifests, c.blobs
	res.Annotations = c.rootAnnotations

	for _, err := range []error{sigErr, attErr} {
		if err != nil {
			if isDigestError(err) {
				return nil, refuse(err)
			}
			return nil, err
		}
	}
	if len(sigs) == 0 {
		return nil, refuse(ErrNoSignature, "nothing at "+pinned.WithTag(SignatureTag(desc.Digest)).String())
	}
	var (
		reason  error = ErrWrongKey
		details []string
	)
	for i, s := range sigs {
		claims, err := checkSignature(ctx, s, desc.Digest, v, o.Annotations)
		if err != nil {
			details = append(details, fmt.Sprintf("signature %d %s", i+1, describe(err)))
			if rank(err) > rank(reason) {
				reason = err
				if ce := (*claimError)(nil); errors.As(err, &ce) {
					reason = ce.reason
				}
			}
			continue
		}
		res.Signatures++
		for k, val := range claims {
			if res.SignedAnnotations == nil {
				res.SignedAnnotations = map[string]string{}
			}
			res.SignedAnnotations[k] = val
		}
	}
	if res.Signatures == 0 {
		return nil, refuse(reason, details...)
	}

	if o.Attestations {
		res.Attestations = verifyAttestations(ctx, atts, desc.Digest, v)
		var missing []string
		for _, want := range []string{PredicateSBOM, PredicateProvenance} {
			if !slices.ContainsFunc(res.Attestations, func(a VerifiedAttestation) bool { return a.PredicateType == want }) {
				missing = append(missing, "no verified "+want+" attestation at "+pinned.WithTag(AttestationTag(desc.Digest)).String())
			}
		}
		if len(missing) > 0 {
			return nil, refuse(ErrNoAttestation, missing...)
		}
	}
	return res, nil
}

// rank orders the reasons a signature fails, most telling first: a valid
// signature over the wrong digest says more than a foreign key.
func rank(err error) int {
	switch {
	case errors.Is(err, ErrSubjectMismatch):
		return 3
	case errors.Is(err, ErrAnnotationMismatch):
		return 2
	case errors.Is(err, ErrWrongKey):
		return 1
	}
	return 0
}

// claimError is a signature's refusal with what it claimed instead.
type claimError struct {
	reason error
	detail string
}

func (e *claimError) Error() string { return e.reason.Error() + ": " + e.detail }
func (e *claimError) Unwrap() error { return e.reason }

// describe says why one signature was rejected, for VerificationError's
// details.
func describe(err error) string {
	var ce *claimError
	switch {
	case errors.As(err, &ce):
		return ce.detail
	case errors.Is(err, ErrWrongKey):
		return "does not verify with this key"
	}
	return err.Error()
}

// checkSignature verifies one simple-signing signature of digest h and
// returns its optional claims; the error is one of the sentinels.
func checkSignature(ctx context.Context, s *sigLayer, h v1.Hash, v Verifier, want map[string]string) (map[string]string, error) {
	if err := s.verifySimple(ctx, v); err != nil {
		return nil, ErrWrongKey
	}
	var sci payload.SimpleContainerImage
	if err := json.Unmarshal(s.payload, &sci); err != nil || sci.Critical.Type != payload.CosignSignatureType {
		return nil, ErrSubjectMismatch
	}
	if got := sci.Critical.Image.DockerManifestDigest; got != h.String() {
		return nil, &claimError{ErrSubjectMismatch, fmt.Sprintf("is valid but signs %s (%s)", got, sci.Critical.Identity.DockerReference)}
	}
	claims := map[string]string{}
	for k, v := range sci.Optional {
		if s, ok := v.(string); ok {
			claims[k] = s
		} else {
			b, _ := json.Marshal(v)
			claims[k] = string(b)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got, ok := claims[k]; !ok {
			return nil, &claimError{ErrAnnotationMismatch, fmt.Sprintf("is valid but does not claim %s", k)}
		} else if got != want[k] {
			return nil, &claimError{ErrAnnotationMismatch, fmt.Sprintf("is valid but claims %s=%s, not %s", k, got, want[k])}
		}
	}
	return claims, nil
}

// verifyAttestations returns the attestations of digest h that verify with
// v and name h as their subject, sorted by predicate type.
func verifyAttestations(ctx context.Context, atts []*sigLayer, h v1.Hash, v Verifier) []VerifiedAttestation {
	var out []VerifiedAttestation
	for _, a := range atts {
		st, raw, err := checkAttestation(ctx, a, h, v)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(raw)
		out = append(out, VerifiedAttestation{PredicateType: st.PredicateType, Digest: "sha256:" + hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PredicateType < out[j].PredicateType })
	return out
}

// checkAttestation verifies a DSSE envelope with v and returns its
// statement, which must name h as a subject.
func checkAttestation(ctx context.Context, a *sigLayer, h v1.Hash, v Verifier) (*in_toto.Statement, []byte, error) {
	if err := a.verifyEnvelope(ctx, v); err != nil {
		return nil, nil, ErrWrongKey
	}
	st, raw, err := statementOf(a)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range st.Subject {
		if "sha256:"+s.Digest["sha256"] == h.String() {
			return st, raw, nil
		}
	}
	return nil, nil, ErrSubjectMismatch
}

// statementOf decodes the in-toto statement inside an attestation envelope
// (without verifying it).
func statementOf(a *sigLayer) (*in_toto.Statement, []byte, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(a.payload, &env); err != nil {
		return nil, nil, fmt.Errorf("decoding envelope: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding envelope payload: %w", err)
	}
	var st in_toto.Statement
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, nil, fmt.Errorf("decoding statement: %w", err)
	}
	return &st, raw, nil
}

// ggcrMismatch is go-containerregistry's refusal of a manifest fetched by
// digest that hashes to something else.
var ggcrMismatch = lazyre.New(`manifest digest: "(sha256:[0-9a-f]{64})" does not match requested digest: "(sha256:[0-9a-f]{64})"`)

// manifestMismatch turns a registry client's refusal of a tampered manifest
// into a *registry.DigestError; nil when err is something else.
func manifestMismatch(err error, want, source string) *registry.DigestError {
	var de *registry.DigestError
	if errors.As(err, &de) {
		return de
	}
	if m := ggcrMismatch.FindStringSubmatch(err.Error()); m != nil && (want == "" || m[2] == want) {
		return &registry.DigestError{What: "manifest", Source: source, Expected: m[2], Actual: m[1]}
	}
	return nil
}

func isDigestError(err error) bool {
	var de *registry.DigestError
	return errors.As(err, &de)
}

// contentChecker hashes every manifest (and blob) below a root.
type contentChecker struct {
	skipBlobs       bool
	source          string
	manifests       int
	blobs           int
	rootAnnotations map[string]string
	jobs            []blobJob
	seen            map[v1.Hash]bool
}

type blobJob struct {
	d    v1.Descriptor
	open func() (io.ReadCloser, error)
}

// blobJobs is how many blobs are hashed at once.
const blobJobs = 4

// check walks the manifests below d (in order, one at a time) and then
// hashes the layers, blobJobs at a time; the error of the first blob in
// walk order wins, so the verdict does not depend on timing.
func (c *contentChecker) check(ctx context.Context, d v1.Descriptor, a registry.Artifact) error {
	c.seen = map[v1.Hash]bool{}
	if err := c.artifact(d, a); err != nil {
		return err
	}
	// Every job runs (no cancellation on the first error), so that the
	// error reported is the first in walk order.
	errs := make([]error, len(c.jobs))
	var g errgroup.Group
	g.SetLimit(blobJobs)
	for i, j := range c.jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return nil
			}
			errs[i] = hashBlob(j.open, j.d, c.source)
			return nil
		})
	}
	g.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	c.blobs += len(c.jobs)
	return nil
}

func (c *contentChecker) artifact(d v1.Descriptor, a registry.Artifact) error {
	raw, err := a.RawManifest()
	if err != nil {
		return err
	}
	if d.Size == 0 {
		d.Size = int64(len(raw))
	}
	if err := checkDigest("manifest", c.source, d, raw); err != nil {
		return err
	}
	c.manifests++
	root := c.manifests == 1
	switch v := a.(type) {
	case v1.ImageIndex:
		im, err := v.IndexManifest()
		if err != nil {
			return err
		}
		if root {
			c.rootAnnotations = im.Annotations
		}
		for _, cd := range im.Manifests {
			var child registry.Artifact
			switch {
			case cd.MediaType.IsIndex():
				child, err = v.ImageIndex(cd.Digest)
			case cd.MediaType.IsImage():
				child, err = v.Image(cd.Digest)
			default:
				continue
			}
			if err != nil {
				if de := manifestMismatch(err, cd.Digest.String(), c.source); de != nil {
					return de
				}
				return fmt.Errorf("reading %s: %w", cd.Digest, err)
			}
			if err := c.artifact(cd, child); err != nil {
				return err
			}
		}
	case v1.Image:
		m, err := v.Manifest()
		if err != nil {
			return err
		}
		if root {
			c.rootAnnotations = m.Annotations
		}
		cfg, err := v.RawConfigFile()
		if err != nil {
			return fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
		}
		if err := checkDigest("config", c.source, m.Config, cfg); err != nil {
			return err
		}
		c.blobs++
		if c.skipBlobs {
			return nil
		}
		for _, ld := range m.Layers {
			if c.seen[ld.Digest] {
				continue
			}
			c.seen[ld.Digest] = true
			l, err := v.LayerByDigest(ld.Digest)
			if err != nil {
				return fmt.Errorf("reading layer %s: %w", ld.Digest, err)
			}
			c.jobs = append(c.jobs, blobJob{d: ld, open: l.Compressed})
		}
	}
	return nil
}

// hashBlob streams a blob and compares it with its descriptor. A reader
// that fails at the end (go-containerregistry's own digest check) is
// reported as the digest mismatch it found when the bytes differ.
func hashBlob(open func() (io.ReadCloser, error), d v1.Descriptor, source string) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, rerr := io.Copy(h, io.LimitReader(rc, d.Size+1))
	if isDigestError(rerr) {
		return rerr
	}
	if rerr != nil && !strings.HasPrefix(rerr.Error(), "error verifying") {
		// A failed read, not content: go-containerregistry's checks say
		// "error verifying …" and are judged below.
		return fmt.Errorf("reading blob %s: %w", d.Digest, rerr)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got != d.Digest.String() || n != d.Size {
		return &registry.DigestError{What: "blob", Source: source, Expected: d.Digest.String(), Actual: got, ExpectedSize: d.Size, ActualSize: n}
	}
	if rerr != nil {
		return fmt.Errorf("reading blob %s: %w", d.Digest, rerr)
	}
	return nil
}
