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
	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) {
			return fmt.Errorf("writing %s in %s: not a file name", f.Name, dir)
		}
		path := filepath.Join(dir, f.Name)
		t, err := os.CreateTemp(dir, "."+f.Name+".tmp-*")
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		tmps = append(tmps, t.Name())
		err = t.Chmod(perm)
		if err == nil {
			_, err = t.Write(f.Data)
		}
		if cerr := t.Close(); err == nil {
			err = cerr
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
		if err := os.Rename(tmps[i], path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		tmps[i] = ""
	}
	return SyncDir(dir)
}

// syncFS makes every file written to dir's file system durable with one
// syncfs(2).
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
