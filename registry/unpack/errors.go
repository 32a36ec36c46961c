package unpack

import "errors"

// ErrUnsafePath: an archive entry would land outside the target directory,
// or is a device node. Test with errors.Is.
var ErrUnsafePath = errors.New("unsafe path")
