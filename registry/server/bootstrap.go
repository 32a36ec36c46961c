package server

import (
	"net/http"
	"time"

	"github.com/prebake/prebake/registry/server/bootstrap"
)

// The one-time bootstrap documents live in registry/server/bootstrap (so
// that `prebake render` issues tokens without linking the registry server);
// these names keep the server's API.

var (
	// ErrBootstrapDir is bootstrap.ErrDir.
	ErrBootstrapDir = bootstrap.ErrDir
	// ErrBootstrapTTL is bootstrap.ErrTTL.
	ErrBootstrapTTL = bootstrap.ErrTTL
)

// MaxBootstrapTTL is bootstrap.MaxTTL.
const MaxBootstrapTTL = bootstrap.MaxTTL

// MaxBootstrapDocument is bootstrap.MaxDocument.
const MaxBootstrapDocument = bootstrap.MaxDocument

// BootstrapOption is bootstrap.Option.
type BootstrapOption = bootstrap.Option

// WithBootstrapClock is bootstrap.WithClock.
func WithBootstrapClock(now func() time.Time) BootstrapOption { return bootstrap.WithClock(now) }

// IssueBootstrapToken is bootstrap.Issue.
func IssueBootstrapToken(dir string, doc []byte, ttl time.Duration, opts ...BootstrapOption) (string, error) {
	return bootstrap.Issue(dir, doc, ttl, opts...)
}

// NewBootstrapHandler is bootstrap.NewHandler.
func NewBootstrapHandler(dir string, opts ...BootstrapOption) (http.Handler, error) {
	return bootstrap.NewHandler(dir, opts...)
}

// RedactBootstrapPath is bootstrap.RedactPath.
func RedactBootstrapPath(p string) string { return bootstrap.RedactPath(p) }
