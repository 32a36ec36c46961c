package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/prebake/prebake/internal/atomicfile"
)

// How a layout makes an operation durable with one sync, not one per blob:
// a blob is written (or linked) to a temp file in blobs/sha256, verified,
// and left pending. Before index.json changes (the one place that makes
// content reachable) Sync flushes the whole file system once (syncfs),
// renames the pending files to their digests — blobs before manifests, in
// the order they were written — and syncs the blob directory once. A kill
// at any point leaves index.json naming only content that is complete and
// durable; what it leaves behind is temp files (".*.tmp-*"), never a blob
// under its digest that holds anything else, even after a power loss.

// pendingBlobs are the blobs of the running operation not yet renamed.
type pendingBlobs struct {
	mu    sync.Mutex
	order []string          // final paths, in write order
	temp  map[string]string // final path → temp file
}

// OpenScratch opens (creating) a layout that is thrown away after the
// operation (a pull's staging area): nothing in it is ever synced.
func OpenScratch(dir string) (*Layout, error) { return openLayout(dir, true) }

// Discard removes the blobs written through l since the last Sync: an
// operation that fails leaves nothing half-written behind.
func (l *Layout) Discard() {
	l.pending.mu.Lock()
	temp := l.pending.temp
	l.pending.order, l.pending.temp = nil, nil
	l.pending.mu.Unlock()
	for _, t := range temp {
		os.Remove(t)
	}
}

// writeFile replaces a file of the layout: atomically and durably, or for a
// scratch layout just atomically.
func (l *Layout) writeFile(path string, data []byte) error {
	if !l.scratch {
		return atomicfile.WriteFile(path, data, 0o644)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// path is where blob h can be read: its pending temp file while the
// operation runs, else its place under blobs/.
func (l *Layout) path(h v1.Hash) string {
	final := l.blobPath(h)
	l.pending.mu.Lock()
	defer l.pending.mu.Unlock()
	if t, ok := l.pending.temp[final]; ok {
		return t
	}
	return final
}

func (l *Layout) addPending(h v1.Hash, tmp string) {
	final := l.blobPath(h)
	l.pending.mu.Lock()
	defer l.pending.mu.Unlock()
	if l.pending.temp == nil {
		l.pending.temp = map[string]string{}
	}
	if old, ok := l.pending.temp[final]; ok {
		os.Remove(old) // written twice at once: same content, keep one
	} else {
		l.pending.order = append(l.pending.order, final)
	}
	l.pending.temp[final] = tmp
}

// createTemp starts blob h's temp file.
func (l *Layout) createTemp(h v1.Hash) (*os.File, error) {
	if h.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: unsupported digest algorithm", h)
	}
	f, err := os.CreateTemp(filepath.Join(l.dir, "blobs", "sha256"), "."+h.Hex+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing blob %s: %w", h, err)
	}
	return f, nil
}

// Sync makes every blob written through l so far durable and visible under
// its digest (see above). Layout calls it before every index.json change;
// callers call it when an operation ends without one (a failure after some
// blobs were written, a staging layout about to be read or merged).
func (l *Layout) Sync() error {
	l.pending.mu.Lock()
	order, temp := l.pending.order, l.pending.temp
	l.pending.order, l.pending.temp = nil, nil
	l.pending.mu.Unlock()
	if len(order) == 0 {
		return nil
	}
	if !l.scratch {
		if err := syncFS(l.dir, temp); err != nil {
			return err
		}
	}
	for _, final := range order {
		if err := os.Rename(temp[final], final); err != nil {
			return fmt.Errorf("writing %s: %w", final, err)
		}
	}
	if l.scratch {
		return nil
	}
	return atomicfile.SyncDir(filepath.Join(l.dir, "blobs", "sha256"))
}

// syncFS flushes the file system holding dir once; where syncfs(2) is not
// available it fsyncs each file.
func syncFS(dir string, files map[string]string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err == nil {
		return nil
	}
	for _, t := range files {
		f, err := os.Open(t)
		if err != nil {
			return fmt.Errorf("syncing %s: %w", t, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", t, err)
		}
	}
	return nil
}

// linkBlob puts the file src (a build's layer cache entry, another layout's
// blob) in place of blob h without writing its bytes again: a reflink where
// the file system has them, else a hard link; it fails on another device,
// where the caller copies. The result is hashed before it is accepted.
func (l *Layout) linkBlob(h v1.Hash, size int64, src *os.File) error {
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() || (size >= 0 && fi.Size() != size) {
		return errors.New("not a regular file of the blob's size")
	}
	tmp, err := l.createTemp(h)
	if err != nil {
		return err
	}
	name := tmp.Name()
	err = unix.IoctlFileClone(int(tmp.Fd()), int(src.Fd()))
	tmp.Close()
	if err != nil {
		os.Remove(name)
		if err := os.Link(src.Name(), name); err != nil {
			return err
		}
	}
	if err := checkFile(name, h, size); err != nil {
		os.Remove(name)
		return err
	}
	l.addPending(h, name)
	return nil
}

// checkFile hashes file and compares it with h and size.
func checkFile(file string, h v1.Hash, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	hasher := sha256.New()
	n, err := io.Copy(hasher, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h.Hex || (size >= 0 && n != size) {
		return &DigestError{What: "blob", Source: file, Expected: h.String(), Actual: "sha256:" + got, ExpectedSize: size, ActualSize: n}
	}
	return nil
}
