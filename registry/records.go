package registry

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/records"
)

// Record types and annotations (see package records).
const (
	ArtifactTypeChannel    = records.ArtifactTypeChannel
	ArtifactTypeRevocation = records.ArtifactTypeRevocation
	AnnotationCreated      = records.AnnotationCreated
	AnnotationBy           = records.AnnotationBy
	AnnotationReason       = records.AnnotationReason
	AnnotationChannel      = records.AnnotationChannel
	AnnotationDigest       = records.AnnotationDigest
	AnnotationPrevious     = records.AnnotationPrevious
	AnnotationAction       = records.AnnotationAction
	AnnotationUndoes       = records.AnnotationUndoes
)

// Assignment is one channel move.
type Assignment = records.Assignment

// Revocation is one revocation record of a digest.
type Revocation = records.Revocation

// PromoteOptions configure Promote and Rollback.
type PromoteOptions struct {
	Options
	// By names who promotes; empty means LocalActor(). Callers that honour
	// $PREBAKE_ACTOR read it and pass it here.
	By string
	// At is the time recorded; zero means now.
	At time.Time
	// AllowRevoked promotes a revoked digest anyway.
	AllowRevoked bool
}

func (o PromoteOptions) records() records.PromoteOptions {
	by := o.By
	if by == "" {
		by = LocalActor()
	}
	return records.PromoteOptions{By: by, At: o.At, AllowRevoked: o.AllowRevoked}
}

// RevokeOptions configure Revoke.
type RevokeOptions struct {
	Options
	// Reason is required.
	Reason string
	// By names who revokes; empty means LocalActor().
	By string
	// At is the revocation time; zero means now.
	At time.Time
}

// LocalActor is who prebake records as having promoted or revoked when the
// caller names no one: this process's user@host. It reads no environment
// variable; the CLI's $PREBAKE_ACTOR is read by the CLI and passed as By.
func LocalActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		return name + "@" + h
	}
	return name
}

// Promote points the tag channel of ref's repository at ref's digest, after
// recording the assignment as a referrer artifact (see records.Promote).
func Promote(ctx context.Context, ref Reference, channel string, o PromoteOptions) (Assignment, error) {
	if ref.Digest == "" {
		return Assignment{}, fmt.Errorf("promoting %s: %w (name the image as REF@sha256:…)", ref, ErrDigestRequired)
	}
	if err := records.CheckChannel(channel); err != nil {
		return Assignment{}, err
	}
	s, err := Open(ctx, ref, o.Options, true)
	if err != nil {
		return Assignment{}, err
	}
	return records.Promote(ctx, s, ref.Digest, channel, o.records())
}

// Rollback undoes the promotion that put the channel on its current digest
// (see records.Rollback).
func Rollback(ctx context.Context, repo Reference, channel string, o PromoteOptions) (Assignment, error) {
	if err := records.CheckChannel(channel); err != nil {
		return Assignment{}, err
	}
	s, err := Open(ctx, repo, o.Options, true)
	if err != nil {
		return Assignment{}, err
	}
	return records.Rollback(ctx, s, channel, o.records())
}

// ChannelHistory returns the channel's assignments in repo, newest first.
func ChannelHistory(ctx context.Context, repo Reference, channel string, o Options) ([]Assignment, error) {
	if err := records.CheckChannel(channel); err != nil {
		return nil, err
	}
	s, err := Open(ctx, repo, o, false)
	if err != nil {
		return nil, err
	}
	return records.ChannelHistory(ctx, s, channel)
}

// Revoke records that the image ref names (by digest) must no longer be
// used (see records.Revoke). Pulls of that digest then fail with ErrRevoked.
func Revoke(ctx context.Context, ref Reference, o RevokeOptions) (Revocation, error) {
	if ref.Digest == "" {
		return Revocation{}, fmt.Errorf("revoking %s: %w (name the image as REF@sha256:…)", ref, ErrDigestRequired)
	}
	if o.Reason == "" {
		return Revocation{}, fmt.Errorf("revoking %s: a reason is required", ref)
	}
	s, err := Open(ctx, ref, o.Options, true)
	if err != nil {
		return Revocation{}, err
	}
	by := o.By
	if by == "" {
		by = LocalActor()
	}
	r, err := records.Revoke(ctx, s, ref.Digest, records.RevokeOptions{Reason: o.Reason, By: by, At: o.At})
	if err != nil {
		return Revocation{}, fmt.Errorf("revoking %s: %w", ref, err)
	}
	return r, nil
}

// Revocations lists the revocation records of the image ref names.
func Revocations(ctx context.Context, ref Reference, o Options) ([]Revocation, error) {
	s, d, err := openResolved(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	return records.Revocations(ctx, s, d)
}

// Referrers lists the manifests whose subject is the manifest ref names
// (SBOMs, signatures, channel records, revocations), optionally only those of
// artifactType. On a registry it uses the OCI 1.1 referrers API when the
// registry answers it, else the "sha256-<hex>" tag fallback index; in a layout
// or the store it scans index.json for manifests with that subject.
func Referrers(ctx context.Context, ref Reference, artifactType string, o Options) ([]v1.Descriptor, error) {
	s, d, err := openResolved(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	return s.Referrers(ctx, d, artifactType)
}
