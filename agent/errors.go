package agent

import "errors"

// Sentinel errors. Every error the agent returns wraps one of these, so the
// command can tell "nothing for me here" (ErrNoPart, ErrNoUserData) from a
// bad document.
var (
	// ErrNoUserData: the datasource has no user-data for this machine.
	ErrNoUserData = errors.New("no user-data")
	// ErrNoPart: the user-data has no prebake agent block; cloud-init joins.
	ErrNoPart = errors.New("no prebake agent block in the user-data")
	// ErrMalformed: the prebake agent block (or the document carrying it)
	// cannot be read.
	ErrMalformed = errors.New("malformed prebake agent block")
	// ErrInvalid: the block reads but asks for something the agent refuses
	// (a relative path, a bad mode, an unknown join mode, a missing file).
	ErrInvalid = errors.New("invalid prebake agent config")
	// ErrJoined: the node joined already (a stamp or kubelet.conf exists).
	ErrJoined = errors.New("already joined")
)
