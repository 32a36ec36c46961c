// Package version holds the build's version and commit, stamped by the
// Makefile with -ldflags "-X github.com/prebake/prebake/internal/version.Version=…".
// It must not import anything outside the standard library.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile.
var (
	Version = "" // module version, e.g. v0.1.0; "(devel)" when unset
	Commit  = "" // source revision
)

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// Get returns the version information, falling back to the module's build
// info when the binary was not built by the Makefile.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if i.Version == "" {
		i.Version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}
