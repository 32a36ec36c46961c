package records

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/store"
)

// ArtifactTypeRevocation is the artifact type of revocation records.
const ArtifactTypeRevocation = "application/vnd.prebake.revocation.v1+json"

// Annotations on prebake's record artifacts (channel assignments and
// revocations), so that a referrers listing alone tells the story.
const (
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationBy       = "dev.prebake.by"
	AnnotationReason   = "dev.prebake.revocation.reason"
	AnnotationChannel  = "dev.prebake.channel"
	AnnotationDigest   = "dev.prebake.channel.digest"
	AnnotationPrevious = "dev.prebake.channel.previous"
	AnnotationAction   = "dev.prebake.channel.action"
	AnnotationUndoes   = "dev.prebake.channel.undoes"
)

// Revocation is one revocation record of a digest.
type Revocation struct {
	Digest string    `json:"digest"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	// Record is the digest of the revocation artifact.
	Record string `json:"record,omitempty"`
}

// RevokedError is returned (wrapping ErrRevoked) when a revoked digest is
// pulled or promoted.
type RevokedError struct {
	Ref         string
	Revocations []Revocation
}

func (e *RevokedError) Error() string {
	r := e.Revocations[0]
	return fmt.Sprintf("%s is revoked: %q (by %s at %s)", e.Ref, r.Reason, r.By, r.At.Format(time.RFC3339))
}

func (e *RevokedError) Unwrap() error { return ErrRevoked }

// RevokeOptions configure Revoke.
type RevokeOptions struct {
	// Reason is required.
	Reason string
	// By names who revokes (required).
	By string
	// At is the revocation time; zero means now.
	At time.Time
}

// Revoke records that digest in e must no longer be used: a referrer
// artifact of type ArtifactTypeRevocation carrying the reason, who and when.
// Pulls of that digest then fail with ErrRevoked. Revoking twice adds a
// second record.
func Revoke(ctx context.Context, e store.Store, digest string, o RevokeOptions) (Revocation, error) {
	if o.Reason == "" {
		return Revocation{}, fmt.Errorf("revoking %s: %w", digest, ErrNoReason)
	}
	if o.By == "" {
		return Revocation{}, fmt.Errorf("revoking %s: %w", digest, ErrNoActor)
	}
	d, err := e.Resolve(ctx, "", digest)
	if err != nil {
		return Revocation{}, err
	}
	r := Revocation{Digest: d.Digest.String(), Reason: o.Reason, By: o.By, At: o.At}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = r.At.UTC()
	payload, err := json.Marshal(r)
	if err != nil {
		return Revocation{}, err
	}
	ann := map[string]string{AnnotationCreated: r.At.Format(time.RFC3339Nano), AnnotationBy: r.By, AnnotationReason: r.Reason}
	rd, err := Push(ctx, e, ArtifactTypeRevocation, d, ArtifactTypeRevocation, payload, ann)
	if err != nil {
		return Revocation{}, err
	}
	r.Record = rd.Digest.String()
	return r, nil
}

// Revocations lists the revocation records of d in e.
func Revocations(ctx context.Context, e store.Store, d v1.Descriptor) ([]Revocation, error) {
	rs, err := e.Referrers(ctx, d, ArtifactTypeRevocation)
	if err != nil {
		return nil, fmt.Errorf("checking revocations of %s: %w", d.Digest, err)
	}
	var out []Revocation
	for _, r := range rs {
		ann, err := recordAnnotations(ctx, e, r)
		if err != nil {
			return nil, err
		}
		at, _ := time.Parse(time.RFC3339Nano, ann[AnnotationCreated])
		out = append(out, Revocation{Digest: d.Digest.String(), Reason: ann[AnnotationReason], By: ann[AnnotationBy], At: at, Record: r.Digest.String()})
	}
	return out, nil
}

// CheckRevoked fails with a *RevokedError when d carries a revocation.
func CheckRevoked(ctx context.Context, e store.Store, name string, d v1.Descriptor) error {
	rs, err := Revocations(ctx, e, d)
	if err != nil {
		return err
	}
	if len(rs) > 0 {
		return &RevokedError{Ref: name + "@" + d.Digest.String(), Revocations: rs}
	}
	return nil
}

// recordAnnotations returns a referrer's annotations, from the listing when
// the registry copied them there, else from the manifest itself.
func recordAnnotations(ctx context.Context, e store.Store, d v1.Descriptor) (map[string]string, error) {
	if d.Annotations[AnnotationCreated] != "" {
		return d.Annotations, nil
	}
	raw, err := e.Manifest(ctx, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
	if err != nil {
		return nil, fmt.Errorf("reading record %s: %w", d.Digest, err)
	}
	m, err := store.ParseManifest(d, raw)
	if err != nil {
		return nil, err
	}
	if m.Annotations == nil {
		return map[string]string{}, nil
	}
	return m.Annotations, nil
}
