// Package safepath is prebake's one containment rule for files named by
// untrusted input: a recipe's from: paths, a node spec's caCertFile,
// bootstrapTokenFile and contentFile, and the files a file:// mirror serves.
//
// A name is resolved inside a base directory by the kernel-backed os.Root
// (openat with every symlink followed component by component, the
// RESOLVE_BENEATH rule): relative symlinks and ".." are allowed as long as
// every step stays inside the base; a symlink with an absolute target is
// refused even when it points inside. Absolute names, and names that resolve outside it
// (through a symlinked file or a symlinked folder), are refused with an
// *EscapeError that says where the name pointed. Only regular files are
// opened, so a FIFO or a device cannot hang or flood a build.
//
// The package only opens and reads; it knows nothing about recipes or specs.
package safepath

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrEscapes: the name resolves outside its base directory.
	ErrEscapes = errors.New("points outside its directory")
	// ErrNotRegular: the name is a directory, device, FIFO or socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is over the caller's size limit.
	ErrTooLarge = errors.New("file too large")
)

// EscapeError reports a name that leaves its base directory. It unwraps to
// ErrEscapes.
type EscapeError struct {
	Name   string // the name as given
	Base   string // the directory it must stay in
	Target string // where it resolves (best effort: the path after following symlinks)
	// Absolute: the name goes through a symlink with an absolute target.
	// Even one that lands inside Base is refused: only relative symlinks
	// are followed.
	Absolute bool
}

func (e *EscapeError) Error() string {
	if e.Absolute {
		return fmt.Sprintf("%q goes through a symlink with an absolute target (to %s); inside %s only relative symlinks are followed", e.Name, e.Target, e.Base)
	}
	if e.Target != "" && e.Target != e.Name {
		return fmt.Sprintf("%q resolves to %s, outside %s", e.Name, e.Target, e.Base)
	}
	return fmt.Sprintf("%q is outside %s", e.Name, e.Base)
}

func (e *EscapeError) Unwrap() error { return ErrEscapes }

// Open opens the regular file name (relative, '/'-separated or OS-separated)
// for reading, inside base. The caller closes it.
func Open(base, name string) (*os.File, error) {
	if name == "" {
		return nil, fmt.Errorf("empty file name: %w", ErrNotRegular)
	}
	if filepath.IsAbs(name) || path.IsAbs(filepath.ToSlash(name)) {
		return nil, &EscapeError{Name: name, Base: base, Target: filepath.Clean(name)}
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
	// as not regular right after.
	f, err := root.OpenFile(filepath.FromSlash(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if esc := escapes(base, name); esc != nil {
			return nil, esc
		}
		if link := absoluteLink(base, name); link != "" {
			// Resolves inside, but only through an absolute symlink:
			// RESOLVE_BENEATH follows relative symlinks only.
			return nil, &EscapeError{Name: name, Base: base, Target: link, Absolute: true}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, fi.Mode().Type())
	}
	return f, nil
}

// ReadFile reads the regular file name inside base (see Open). limit > 0
// caps its size: a larger file is ErrTooLarge, checked before reading and
// while reading (the file may grow).
func ReadFile(base, name string, limit int64) ([]byte, error) {
	f, err := Open(base, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, name, limit)
}

// ReadFileFS reads name from fsys (an embedded catalog), which must be a
// valid fs path: relative, clean, no "..". fs.FS implementations without
// symlinks (embed.FS) need nothing more; for a directory on disk use
// ReadFile.
func ReadFileFS(fsys fs.FS, name string, limit int64) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &EscapeError{Name: name, Base: "the catalog"}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, name, limit)
}

func readAll(f fs.File, name string, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, fi.Mode().Type())
	}
	if limit > 0 && fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes: %w (limit %d)", name, fi.Size(), ErrTooLarge, limit)
	}
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, fmt.Errorf("%s grew over %d bytes: %w", name, limit, ErrTooLarge)
	}
	return b, nil
}

// Within reports whether name, a path relative to base, stays inside base
// after following the symlinks that exist now. It is for checks that must
// not open the file (validation); readers use Open, which holds the rule
// while opening.
func Within(base, name string) error {
	if filepath.IsAbs(name) || path.IsAbs(filepath.ToSlash(name)) {
		return &EscapeError{Name: name, Base: base, Target: filepath.Clean(name)}
	}
	if esc := escapes(base, name); esc != nil {
		return esc
	}
	return nil
}

// escapes explains why name leaves base, or returns nil when it does not
// (or when that cannot be told, e.g. the file is missing inside base).
func escapes(base, name string) *EscapeError {
	absBase, err := filepath.Abs(base)
	if err != nil {
		return nil
	}
	realBase, err := filepath.EvalSymlinks(absBase)
	if err != nil {
		return nil
	}
	target := resolve(filepath.Join(absBase, filepath.FromSlash(name)))
	rel, err := filepath.Rel(realBase, target)
	if err != nil || rel == ".." || len(rel) > 3 && rel[:3] == ".."+string(filepath.Separator) {
		return &EscapeError{Name: name, Base: base, Target: target}
	}
	return nil
}

// absoluteLink returns the target of the first symlink with an absolute
// target on name's path inside base, or "".
func absoluteLink(base, name string) string {
	cur := base
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(name)), "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return ""
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if t, err := os.Readlink(cur); err == nil && filepath.IsAbs(t) {
				return t
			}
		}
	}
	return ""
}

// resolve follows symlinks as far as they exist: the longest existing
// prefix of p is resolved and the rest appended.
func resolve(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
