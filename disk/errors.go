package disk

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrNoKernel: the base (with the image applied) has no kernel and
	// initrd under /boot to put in the EFI partition.
	ErrNoKernel = errors.New("no kernel in base")
	// ErrTooSmall: the root filesystem does not fit the requested disk size.
	ErrTooSmall = errors.New("disk too small")
	// ErrNotRoot: export runs as a user that cannot give files their owners.
	ErrNotRoot = errors.New("export must run as root")
	// ErrMissingTool: a program export runs is not on PATH.
	ErrMissingTool = errors.New("missing tool")
)
