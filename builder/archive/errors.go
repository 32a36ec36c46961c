package archive

import (
	"errors"
	"fmt"
)

// Sentinel errors. Extract's errors unwrap to one of them (through
// *EntryError where an entry or a rule is to blame); test with errors.Is.
var (
	// ErrUnsafeEntry: an entry that could write outside the root or create
	// something an image must not carry: an absolute or escaping path, a
	// symlink leaving the root, a hardlink to something not extracted, a
	// device node, fifo or socket, a path through a symlink.
	ErrUnsafeEntry = errors.New("unsafe archive entry")
	// ErrTooLarge: a decompression bomb or an archive beyond Limits.
	ErrTooLarge = errors.New("archive too large")
	// ErrNoMatch: a rule's pattern matches no entry.
	ErrNoMatch = errors.New("pattern matches nothing")
	// ErrBadRule: a rule is malformed, or a file destination (no trailing
	// "/") does not match exactly one regular file.
	ErrBadRule = errors.New("bad extract rule")
	// ErrConflict: two entries or rules produce the same destination, or the
	// destination already exists in the root.
	ErrConflict = errors.New("conflicting destination")
	// ErrFormat: an unknown format or a malformed archive.
	ErrFormat = errors.New("unsupported or malformed archive")
)

// EntryError names the archive and the entry (or rule) that Extract refused,
// and why. It unwraps to one of the sentinels above.
type EntryError struct {
	Archive string // archive file path as given to Extract
	Entry   string // entry name as stored in the archive; "" for rule and limit errors
	Pattern string // rule pattern for rule errors; "" otherwise
	Reason  string // what is wrong, in words
	Err     error  // sentinel
}

func (e *EntryError) Error() string {
	switch {
	case e.Entry != "":
		return fmt.Sprintf("%s: entry %q: %s: %s", e.Archive, e.Entry, e.Err, e.Reason)
	case e.Pattern != "":
		return fmt.Sprintf("%s: rule %q: %s: %s", e.Archive, e.Pattern, e.Err, e.Reason)
	default:
		return fmt.Sprintf("%s: %s: %s", e.Archive, e.Err, e.Reason)
	}
}

func (e *EntryError) Unwrap() error { return e.Err }
