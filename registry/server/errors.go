package server

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrHtpasswd: the htpasswd file is unreadable or has an entry prebake
	// cannot check (only bcrypt hashes, `htpasswd -B`, are accepted).
	ErrHtpasswd = errors.New("invalid htpasswd file")
	// ErrRoot: the store root cannot be used.
	ErrRoot = errors.New("invalid store root")
	// ErrCorrupt: a manifest reachable from a tag is missing or does not
	// match its digest; gc leaves such a repository alone.
	ErrCorrupt = errors.New("corrupt repository")
)
