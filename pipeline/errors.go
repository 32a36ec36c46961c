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
	// ErrNoMatrix: a matrix build of a recipe file has no matrix file; only
	// catalog recipes know their versions.
	ErrNoMatrix = errors.New("a recipe file's matrix comes from a matrix file (catalog recipes have their own)")
	// ErrEmptyMatrix: the version selection left no row.
	ErrEmptyMatrix = errors.New("the matrix selects no version")
	// ErrVersionRange: a version range does not parse or cannot select.
	ErrVersionRange = errors.New("bad version range")
	// ErrShard: a shard is not I/N with 1 <= I <= N.
	ErrShard = errors.New("bad shard")
	// ErrMatrixSet: a variable is set both by the matrix and by the caller.
	ErrMatrixSet = errors.New("variable set twice")
	// ErrMatrixVersion: two matrix rows give the same image version (tag).
	ErrMatrixVersion = errors.New("matrix rows share an image version")
	// ErrMatrixTag: a matrix build's destination names a tag; each image is
	// tagged its own version.
	ErrMatrixTag = errors.New("a matrix build tags each image with its version: name no tag")
	// ErrMatrixFailed: some images of a matrix build failed.
	ErrMatrixFailed = errors.New("matrix build failed")
)

// DestinationError is a bad output (Push false) or push destination.
type DestinationError struct {
	Push  bool
	Value string
	Err   error
}

func (e *DestinationError) Error() string { return fmt.Sprintf("%q: %v", e.Value, e.Err) }
func (e *DestinationError) Unwrap() error { return e.Err }

// ErrCacheRef: a layer cache is named by a repository, not a tag or digest.
var ErrCacheRef = errors.New("a layer cache is a repository (REGISTRY/REPO), without tag or digest")

// ErrPromoteFailed: some images of a matrix could not be promoted.
var ErrPromoteFailed = errors.New("promotion failed")
