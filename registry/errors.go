package registry

import (
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/unpack"
)

// Sentinel errors; test with errors.Is. Most are defined by the package that
// returns them and repeated here so that callers of this package need no
// other import.
var (
	// ErrDigestMismatch: content did not hash to the digest that named it.
	// Errors wrapping it are *DigestError.
	ErrDigestMismatch = store.ErrDigestMismatch
	// ErrNotFound: the reference, tag or blob does not exist.
	ErrNotFound = store.ErrNotFound
	// ErrRevoked: the digest carries a revocation (see Revoke); pulls refuse
	// it unless told otherwise. Errors wrapping it are *RevokedError.
	ErrRevoked = records.ErrRevoked
	// ErrDigestRequired: a tag was given where only a digest is accepted.
	ErrDigestRequired = errors.New("digest required")
	// ErrUnsafePath: an archive entry would land outside the target
	// directory, or is a device node.
	ErrUnsafePath = unpack.ErrUnsafePath
)

// DigestError reports content whose digest or size differs from its descriptor.
type DigestError = store.DigestError

// RevokedError is returned (wrapping ErrRevoked) when a revoked digest is
// pulled or promoted.
type RevokedError = records.RevokedError

// IsNotFound reports whether err says a reference, tag or blob does not
// exist: ErrNotFound from a layout or the store, or a registry's 404 (a
// cache miss, not a failure).
func IsNotFound(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
