// Package atomicfile writes files so that a reader or a crash sees the old
// content or the new, never a mix: temp file in the same directory, fsync,
// rename, directory fsync. Every package that replaces a file prebake relies
// on (layouts, caches, locks, rendered secrets) goes through it; it knows
// nothing about what the files hold.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with data. The temp file gets perm before any byte
// is written, so a secret never exists with a wider mode; nothing is left
// behind on error.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit(perm)
}

// SyncDir fsyncs a directory so that renames and creations in it are
// durable. File systems that cannot sync a directory (EINVAL) are accepted.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Pending is a file being written in place of path: write to it, then Commit
// to fsync and rename it into place, or Abort (safe after Commit) to remove
// it. Readers never see it before Commit.
type Pending struct {
	*os.File
	path string
	done bool
}

// Create starts a Pending replacement of path, in path's directory.
func Create(path string) (*Pending, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &Pending{File: f, path: path}, nil
}

// Commit fsyncs the file, gives it perm, renames it to its path and fsyncs
// the directory.
func (p *Pending) Commit(perm os.FileMode) error {
	err := p.Sync()
	if err == nil {
		err = p.Chmod(perm)
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.Name(), p.path)
	}
	if err != nil {
		os.Remove(p.Name())
		p.done = true
		return fmt.Errorf("writing %s: %w", p.path, err)
	}
	p.done = true
	return SyncDir(filepath.Dir(p.path))
}

// Abort removes the unfinished file; after Commit it does nothing.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	p.Close()
	os.Remove(p.Name())
}
