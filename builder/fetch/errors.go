package fetch

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors. Test for them with errors.Is; the typed errors below
// unwrap to them.
var (
	// ErrChecksumMismatch: the downloaded bytes do not hash to the requested
	// sha256. Nothing is cached.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrNotCached: the fetcher is offline and the digest is not in the cache.
	ErrNotCached = errors.New("not in the cache (offline)")
	// ErrHTTPStatus: the server answered with a status other than 200.
	ErrHTTPStatus = errors.New("unexpected HTTP status")
	// ErrTooLarge: the response is larger than the fetcher's size limit.
	ErrTooLarge = errors.New("download too large")
	// ErrInvalidRequest: the request has no usable URL or sha256.
	ErrInvalidRequest = errors.New("invalid fetch request")
	// ErrStalled: no byte arrived for the stall timeout (retried; returned
	// when the retries are used up).
	ErrStalled = errors.New("download stalled")
	// ErrDeadline: the whole fetch took longer than its timeout.
	ErrDeadline = errors.New("download deadline exceeded")
	// ErrSizeMismatch: the download's size differs from the lock's.
	ErrSizeMismatch = errors.New("size differs from the lock")
	// ErrOutsideMirror: a source URL rewritten by a mirror leaves the
	// mirror's root ("..", a symlink in a file:// mirror).
	ErrOutsideMirror = errors.New("outside the mirror")
	// ErrFileSource: a file:// source no mirror rewrote, without
	// WithFileSources.
	ErrFileSource = errors.New("file:// source not allowed")
)

// ChecksumError reports a download whose content does not match the
// requested digest. It unwraps to ErrChecksumMismatch.
type ChecksumError struct {
	URL      string // URL as requested
	Mirror   string // URL actually downloaded when a mirror rewrote URL; "" otherwise
	Expected string // requested sha256, lowercase hex
	Actual   string // sha256 of the downloaded bytes, lowercase hex
}

func (e *ChecksumError) Error() string {
	from := e.URL
	if e.Mirror != "" && e.Mirror != e.URL {
		from = fmt.Sprintf("%s (mirror %s)", e.URL, e.Mirror)
	}
	return fmt.Sprintf("checksum mismatch for %s: expected sha256:%s, got sha256:%s", from, e.Expected, e.Actual)
}

func (e *ChecksumError) Unwrap() error { return ErrChecksumMismatch }

// StatusError reports a non-200 HTTP answer. It unwraps to ErrHTTPStatus.
// The error message leaves the URL to the wrapping "fetching URL" context.
type StatusError struct {
	URL  string // URL actually requested (after mirror rewriting)
	Code int    // HTTP status code

	retryAfter time.Duration // parsed Retry-After, 0 when absent
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
}

func (e *StatusError) Unwrap() error { return ErrHTTPStatus }

// Temporary reports whether the status is worth retrying (5xx and 429).
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests
}
