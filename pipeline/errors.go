package pipeline

import (
	"errors"
	"fmt"
)

// Errors Run and Resolve return, wrapped with the value they are about;
// callers test them with errors.Is and phrase them in their own terms (a
// flag, a Packer option).
var (
	// ErrNoLockFile: a locked build (Locked) has no lock file.
	ErrNoLockFile = errors.New("no lock file for a locked build")
	// ErrOutputDigest: an output or push destination names a digest; the
	// digest is the build's, a destination is named by a tag or nothing.
	ErrOutputDigest = errors.New("a destination is named by a tag, not a digest")
	// ErrOutputRemote: the output names a registry; registries are push
	// destinations.
	ErrOutputRemote = errors.New("the output is a layout (oci:DIR[:TAG]) or the store (store:NAME[:TAG]), not a registry")
	// ErrPushLocal: the push destination is not a registry repository.
	ErrPushLocal = errors.New("push names a registry repository (HOST/REPO[:TAG]), not a layout or the store")
	// ErrSignWithoutPush: a signing key was given but nothing is pushed;
	// images are signed where they are published.
	ErrSignWithoutPush = errors.New("signing signs the pushed image: nothing is pushed")
)

// DestinationError is a bad output (Push false) or push destination.
type DestinationError struct {
	Push  bool
	Value string
	Err   error
}

func (e *DestinationError) Error() string { return fmt.Sprintf("%q: %v", e.Value, e.Err) }
func (e *DestinationError) Unwrap() error { return e.Err }
