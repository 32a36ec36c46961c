package store

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrDigestMismatch: content did not hash to the digest that named it.
	// Errors wrapping it are *DigestError.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNotFound: the reference, tag or blob does not exist.
	ErrNotFound = errors.New("not found")
	// ErrReadOnly: a write to a store that only serves (Memory).
	ErrReadOnly = errors.New("read-only source")
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
