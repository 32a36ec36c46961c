package ospkg

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrNoDatabase: the root has no package database ospkg knows
	// (/var/lib/dpkg/status, or an RPM database).
	ErrNoDatabase = errors.New("no package database")
	// ErrUnsupported: the root's package database is of a kind ospkg does
	// not read yet (RPM).
	ErrUnsupported = errors.New("package database not supported")
	// ErrMissing: declared packages are not installed in the root. The
	// error is a *MissingError naming them.
	ErrMissing = errors.New("missing OS packages")
	// ErrSyntax: the package database is malformed.
	ErrSyntax = errors.New("malformed package database")
)
