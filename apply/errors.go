package apply

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrUnsigned: no verification key was given and verification was not
	// explicitly waived.
	ErrUnsigned = errors.New("refusing an unverified image")
	// ErrNoPrevious: there is no previous record to roll back to.
	ErrNoPrevious = errors.New("no previous record")
	// ErrUnsafePath: an image entry would land outside the root, or is a
	// device node.
	ErrUnsafePath = errors.New("unsafe path in image")
	// ErrCorrupt: a file or stored object does not hash to its recorded
	// digest, or a record cannot be read.
	ErrCorrupt = errors.New("corrupt state")
	// ErrNotRoot: applying needs root to give files their owners.
	ErrNotRoot = errors.New("apply must run as root")
)
