package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// File is one file of WriteFiles: a name in the directory and its content.
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
	for i, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) {
			return fmt.Errorf("writing %s in %s: not a file name", f.Name, dir)
		}
		path := filepath.Join(dir, f.Name)
		tmp, err := writeTemp(dir, fmt.Sprintf(".%s.tmp-%d-%d", f.Name, pid, i), f.Data, perm)
		if tmp != "" {
			tmps = append(tmps, tmp)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := SyncFS(dir); err != nil {
		return err
	}
	for i, f := range files {
		path := filepath.Join(dir, f.Name)
		if err := os.Rename(tmps[i], path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		tmps[i] = ""
	}
	return SyncDir(dir)
}

// writeTemp creates dir/name (which must not exist: a leftover of a killed
// process with the same PID gets a random name instead) with data and mode
// perm, through plain system calls: os.File's poller set-up is most of the
// cost of a small file. It returns the path it created, if any.
func writeTemp(dir, name string, data []byte, perm os.FileMode) (string, error) {
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm))
	if err == unix.EEXIST {
		t, err := os.CreateTemp(dir, name+"-*")
		if err != nil {
			return "", err
		}
		t.Close()
		path = t.Name()
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
		if err != nil {
			return path, err
		}
	} else if err != nil {
		return "", err
	}
	err = unix.Fchmod(fd, uint32(perm)) // exactly perm, whatever the umask
	for b := data; err == nil && len(b) > 0; {
		var n int
		n, err = unix.Write(fd, b)
		if err == unix.EINTR {
			err = nil
			continue
		}
		if err == nil {
			b = b[n:]
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return path, err
}

// SyncFS makes every file written to dir's file system durable with one
// syncfs(2): file data, and the creations and renames that name it.
func SyncFS(dir string) error {
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
