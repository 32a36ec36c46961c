package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// File is one file of WriteFiles and WriteDir: a name in the directory and
// its content.
type File struct {
	Name string
	Data []byte
}

// WriteFiles writes many files into dir with one sync for all of them
// instead of WriteFile's two per file: every file is written to a temp
// file (mode perm from the start), the file system is synced once
// (syncfs), the temp files are renamed to their names, and the directory
// is synced once. A crash or kill -9 at any point leaves each name with its
// old content or its complete new content (a rename only ever moves a
// synced file), plus at most some hidden .NAME.tmp-* files; on error the
// files not yet renamed are removed. Names must be plain file names.
func WriteFiles(dir string, files []File, perm os.FileMode) error {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, t := range tmps {
			if t != "" {
				os.Remove(t)
			}
		}
	}()
	pid := os.Getpid()
	chmod := needChmod(perm)
	for i, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) {
			return fmt.Errorf("writing %s in %s: not a file name", f.Name, dir)
		}
		path := filepath.Join(dir, f.Name)
		tmp, err := writeTemp(dir, fmt.Sprintf(".%s.tmp-%d-%d", f.Name, pid, i), f.Data, perm, chmod)
		if tmp != "" {
			tmps = append(tmps, tmp)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := syncFS(dir); err != nil {
		return err
	}
	for i, f := range files {
		path := filepath.Join(dir, f.Name)
		// unix.Rename, not os.Rename: that one stats the target first.
		if err := unix.Rename(tmps[i], path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		tmps[i] = ""
	}
	return SyncDir(dir)
}

// WriteDir writes files into dir with one sync: a new dir through NewDir
// (each file written once, under its own name), an existing one with
// WriteFiles.
func WriteDir(dir string, files []File, perm os.FileMode) error {
	d, err := CreateDir(dir, perm)
	if errors.Is(err, fs.ErrExist) {
		return WriteFiles(dir, files, perm)
	}
	if err != nil {
		return err
	}
	defer d.Abort()
	for _, f := range files {
		if err := d.Write(f.Name, f.Data); err != nil {
			return err
		}
	}
	err = d.Commit()
	if errors.Is(err, fs.ErrExist) {
		return WriteFiles(dir, files, perm) // created meanwhile
	}
	return err
}

// NewDir is a directory being created with its files: they are written
// under their own names into a hidden sibling (.NAME.tmp-*), and Commit
// syncs the file system once and renames the directory into place (never
// over one that appeared meanwhile), then syncs its parent. A crash or
// kill -9 at any point leaves the directory absent or complete, plus at
// most the hidden sibling. No temp file and no rename per file: for a
// fleet of small files that is most of the cost.
type NewDir struct {
	dir, stage string
	perm       os.FileMode
	chmod      bool
	done       bool
}

// CreateDir starts dir, which must not exist (an error wrapping
// fs.ErrExist if it does), whose files get mode perm.
func CreateDir(dir string, perm os.FileMode) (*NewDir, error) {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("writing %s: %w", dir, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("writing %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("writing %s: %w", dir, err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", dir, err)
	}
	return &NewDir{dir: dir, stage: stage, perm: perm, chmod: needChmod(perm)}, nil
}

// Write adds the file name (a plain file name, not written before) with
// data. It may be called from several goroutines at once.
func (d *NewDir) Write(name string, data []byte) error {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("writing %s in %s: not a file name", name, d.dir)
	}
	if err := writeNew(filepath.Join(d.stage, name), data, d.perm, d.chmod); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(d.dir, name), err)
	}
	return nil
}

// Commit makes the directory durable and puts it in place. An error
// wrapping fs.ErrExist means the directory appeared meanwhile; nothing was
// written to it.
func (d *NewDir) Commit() error {
	// The directory's mode is what os.MkdirAll(dir, 0o755) would give.
	m, _ := readUmask()
	if err := os.Chmod(d.stage, 0o755&^m); err != nil {
		return fmt.Errorf("writing %s: %w", d.dir, err)
	}
	if err := syncFS(d.stage); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, d.stage, unix.AT_FDCWD, d.dir, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE on this file system: a plain rename does
		// not replace a directory that has entries, only an empty one.
		err = unix.Rename(d.stage, d.dir)
	}
	switch {
	case err == nil:
		d.done = true
		return SyncDir(filepath.Dir(d.dir))
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("writing %s: %w", d.dir, fs.ErrExist)
	}
	return fmt.Errorf("writing %s: %w", d.dir, err)
}

// Abort removes what was written; after Commit it does nothing.
func (d *NewDir) Abort() {
	if !d.done {
		d.done = true
		os.RemoveAll(d.stage)
	}
}

// writeTemp creates dir/name (which must not exist: a leftover of a killed
// process with the same PID gets a random name instead) with data and mode
// perm. It returns the path it created, if any.
func writeTemp(dir, name string, data []byte, perm os.FileMode, chmod bool) (string, error) {
	path := filepath.Join(dir, name)
	err := writeNew(path, data, perm, chmod)
	if err == nil {
		return path, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return "", err
	}
	t, err := os.CreateTemp(dir, name+"-*")
	if err != nil {
		return "", err
	}
	t.Close()
	path = t.Name()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return path, err
	}
	err = unix.Fchmod(fd, uint32(perm))
	if err == nil {
		err = writeAll(fd, data)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return path, err
}

// writeNew creates path, which must not exist, with data and mode perm,
// through plain system calls (os.File's poller set-up is most of the cost
// of a small file). chmod (see needChmod) makes the mode exactly perm when
// the umask would take bits of it away.
func writeNew(path string, data []byte, perm os.FileMode, chmod bool) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		return err
	}
	if chmod {
		err = unix.Fchmod(fd, uint32(perm))
	}
	if err == nil {
		err = writeAll(fd, data)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlink(path)
	}
	return err
}

func writeAll(fd int, data []byte) error {
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readUmask reads the process's umask from /proc/self/status (setting it
// to read it would race with other goroutines creating files).
func readUmask() (os.FileMode, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			return os.FileMode(m) & 0o777, err == nil
		}
	}
	return 0, false
}

// needChmod reports whether files created with mode perm need a chmod to
// get exactly perm: whether the umask takes bits of perm away (or cannot
// be read).
func needChmod(perm os.FileMode) bool {
	m, ok := readUmask()
	return !ok || m&perm != 0
}

// syncFS makes every file written to dir's file system durable with one
// syncfs(2): file data, and the creations and renames that name it.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
