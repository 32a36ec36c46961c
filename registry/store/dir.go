package store

import (
	"os"
	"path/filepath"

	"github.com/prebake/prebake/registry/reference"
)

// DefaultDir is $PREBAKE_STORE, else $XDG_DATA_HOME/prebake/store, else
// ~/.local/share/prebake/store. It is read when a store reference without a
// directory is opened, never while parsing.
func DefaultDir() string {
	if d := os.Getenv("PREBAKE_STORE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "prebake", "store")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "prebake", "store")
	}
	return filepath.Join(home, ".local", "share", "prebake", "store")
}

// Dir is the directory of the OCI layout a layout or store reference names:
// ref.Dir, or for the store without one, DefaultDir().
func Dir(ref reference.Reference) string {
	if ref.Transport == reference.TransportStore && ref.Dir == "" {
		return DefaultDir()
	}
	return ref.Dir
}
