package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
)

// fileMode converts Unix mode bits to an os.FileMode.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// unixMode converts an os.FileMode to Unix mode bits.
func unixMode(fm os.FileMode) uint32 {
	m := uint32(fm.Perm())
	if fm&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fm&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fm&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// tmpName is the name a path is written under before the rename. It is
// fixed, so an interrupted apply's leftover is overwritten or removed by
// the next.
func tmpName(p string) string {
	dir, base := path.Split(p)
	return dir + "." + base + ".prebake-new"
}

// inspect reads what is at p on the root as a record entry (Digest only
// for regular files when hash is set). ok is false when nothing is there.
func inspect(root *os.Root, p string, hash bool) (File, bool, error) {
	fi, err := root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return File{}, false, nil
	}
	if err != nil {
		return File{}, false, err
	}
	f := File{Path: p, Mode: unixMode(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode().IsRegular():
		f.Type, f.Size = TypeFile, fi.Size()
		if hash {
			if f.Digest, err = digestOf(root, p); err != nil {
				return f, true, err
			}
		}
	case fi.IsDir():
		f.Type = TypeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		f.Type = TypeSymlink
		if f.Link, err = root.Readlink(p); err != nil {
			return f, true, err
		}
		f.Mode = 0o777
	default:
		f.Type = "special"
	}
	return f, true, nil
}

func digestOf(root *os.Root, p string) (string, error) {
	r, err := root.Open(p)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// matches reports whether the root already holds f at its path.
func matches(root *os.Root, f File) (bool, error) {
	have, ok, err := inspect(root, f.Path, false)
	if err != nil || !ok {
		return false, err
	}
	switch f.Type {
	case TypeHardlink:
		// A hard link matches when it is the same inode as its target.
		a, err1 := root.Lstat(f.Path)
		b, err2 := root.Lstat(f.Link)
		return err1 == nil && err2 == nil && os.SameFile(a, b), nil
	case TypeSymlink:
		return have.Type == TypeSymlink && have.Link == f.Link && have.UID == f.UID && have.GID == f.GID, nil
	case TypeDir:
		return have.Type == TypeDir && have.Mode == f.Mode && have.UID == f.UID && have.GID == f.GID, nil
	}
	if have.Type != TypeFile || have.Size != f.Size || have.Mode != f.Mode || have.UID != f.UID || have.GID != f.GID {
		return false, nil
	}
	d, err := digestOf(root, f.Path)
	return d == f.Digest, err
}

// writeFile writes r (which must hash to f.Digest) to f.Path: into the
// fixed temporary name, owner and mode set, synced, then renamed over the
// path.
func writeFile(root *os.Root, f File, r io.Reader, mtime time.Time) error {
	tmp := tmpName(f.Path)
	w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(w, h), r)
	if err == nil {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != f.Digest {
			err = fmt.Errorf("%w: %s is %s, recorded %s", ErrCorrupt, f.Path, got, f.Digest)
		}
	}
	if err == nil {
		err = w.Chown(f.UID, f.GID)
	}
	if err == nil {
		err = w.Chmod(fileMode(f.Mode)) // after chown, which clears setuid
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = root.Chtimes(tmp, mtime, mtime)
	}
	if err == nil {
		step() // written, not yet in place
		err = rename(root, tmp, f.Path)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("writing /%s: %w", f.Path, err)
	}
	return nil
}

// rename moves tmp over p; a directory at p (the image replaces it with a
// file) is removed first.
func rename(root *os.Root, tmp, p string) error {
	err := root.Rename(tmp, p)
	if err != nil && (errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
		if rerr := root.RemoveAll(p); rerr != nil {
			return rerr
		}
		err = root.Rename(tmp, p)
	}
	return err
}

func writeSymlink(root *os.Root, f File) error {
	tmp := tmpName(f.Path)
	root.Remove(tmp)
	err := root.Symlink(f.Link, tmp)
	if err == nil {
		err = root.Lchown(tmp, f.UID, f.GID)
	}
	if err == nil {
		err = rename(root, tmp, f.Path)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("writing /%s: %w", f.Path, err)
	}
	return nil
}

func writeHardlink(root *os.Root, f File) error {
	tmp := tmpName(f.Path)
	root.Remove(tmp)
	err := root.Link(f.Link, tmp)
	if err == nil {
		err = rename(root, tmp, f.Path)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("linking /%s to /%s: %w", f.Path, f.Link, err)
	}
	return nil
}

// ensureDir makes p a directory. A directory already there (or a symlink to
// one, such as /lib on a merged-/usr system) is left as it is unless
// created is set (apply made it: its mode and owner are the image's).
func ensureDir(root *os.Root, f File, created bool) error {
	fi, err := root.Stat(f.Path)
	switch {
	case err == nil && fi.IsDir():
		if !created {
			return nil
		}
	case err == nil:
		if err := root.Remove(f.Path); err != nil {
			return fmt.Errorf("replacing /%s with a directory: %w", f.Path, err)
		}
		fallthrough
	case errors.Is(err, fs.ErrNotExist):
		if err := root.MkdirAll(f.Path, 0o755); err != nil {
			return fmt.Errorf("creating /%s: %w", f.Path, err)
		}
	default:
		return err
	}
	if err := root.Chown(f.Path, f.UID, f.GID); err != nil {
		return err
	}
	return root.Chmod(f.Path, fileMode(f.Mode))
}

// remove deletes p (a whole tree for a directory); absent is fine.
func remove(root *os.Root, p string) error {
	root.Remove(tmpName(p))
	if err := root.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing /%s: %w", p, err)
	}
	return nil
}
