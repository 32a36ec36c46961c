package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrDigestMismatch: content did not hash to the digest that named it.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNotFound: the reference, tag or blob does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRevoked: the digest carries a revocation (see Revoke); pulls refuse
	// it unless told otherwise. Errors wrapping it are *RevokedError.
	ErrRevoked = errors.New("revoked")
	// ErrDigestRequired: a tag was given where only a digest is accepted.
	ErrDigestRequired = errors.New("digest required")
	// ErrUnsafePath: an archive entry would land outside the target
	// directory, or is a device node.
	ErrUnsafePath = errors.New("unsafe path")
)

// DigestError reports content whose digest or size differs from its descriptor.
type DigestError struct {
	What                     string // "blob", "manifest", …
	Source                   string // where it came from (URL, path), if known
	Expected, Actual         string
	ExpectedSize, ActualSize int64
}

func (e *DigestError) Error() string {
	s := fmt.Sprintf("%s digest mismatch: expected %s, got %s", e.What, e.Expected, e.Actual)
	if e.Expected == e.Actual && e.ExpectedSize != e.ActualSize {
		s = fmt.Sprintf("%s %s size mismatch: expected %d bytes, got %d", e.What, e.Expected, e.ExpectedSize, e.ActualSize)
	}
	if e.Source != "" {
		s += " (" + e.Source + ")"
	}
	return s
}

func (e *DigestError) Unwrap() error { return ErrDigestMismatch }
