package records

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrRevoked: the digest carries a revocation; errors wrapping it are
	// *RevokedError.
	ErrRevoked = errors.New("revoked")
	// ErrNoReason: a revocation without a reason.
	ErrNoReason = errors.New("a reason is required")
	// ErrNoActor: a record without who made it (PromoteOptions.By,
	// RevokeOptions.By).
	ErrNoActor = errors.New("who made the record is required")
)
