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
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/prebake/prebake/internal/atomicfile"
)

// How a layout makes an operation durable without a sync per blob at the
// end: a blob is written (or linked) to a temp file in blobs/sha256,
// verified, and left pending. While the operation still runs, each pending
// file's data is flushed in the background (fdatasync every 2 MiB written
// and once the file is complete), so the disk — and a virtual disk's host,
// which writes out only when asked to flush — works while the network
// still delivers. Before index.json changes (the one place that makes
// content reachable) Sync waits for those flushes, renames the pending
// files to their digests — blobs before manifests, in the order they were
// written — and syncs the blob directory once. A kill at any point leaves
// index.json naming only content that is complete and durable; what it
// leaves behind is temp files (".*.tmp-*"), never a blob under its digest
// that holds anything else, even after a power loss. Unlike syncfs(2),
// nothing waits for other programs' unwritten data on the same file system
// (on a CI machine, a build's gigabytes).

// pendingBlobs are the blobs of the running operation not yet renamed.
type pendingBlobs struct {
	mu    sync.Mutex
	order []string                // final paths, in write order
	temp  map[string]*pendingFile // final path → its temp file
	// flushing are a stage's blobs already renamed (within the stage)
	// whose flushes SyncStage waits for.
	flushing []*pendingFile
}

// pendingFile is a complete temp file whose data is being flushed.
type pendingFile struct {
	name string
	done chan struct{} // closed when the flush ended (nil: nothing to wait for)
	err  error
}

// wait returns once the file's data is durable.
func (p *pendingFile) wait() error {
	if p.done != nil {
		<-p.done
	}
	return p.err
}

// syncMode says what a layout makes durable.
type syncMode int

const (
	durable syncMode = iota // everything, as it goes (OpenLayout)
	scratch                 // nothing (OpenScratch)
	stage                   // blobs as they go, the rest in SyncStage (OpenStage)
)

// OpenScratch opens (creating) a layout that is thrown away after the
// operation (the blobs staged for unpacking an image): nothing in it is
// ever synced.
func OpenScratch(dir string) (*Layout, error) { return openLayout(dir, scratch) }

// OpenStage opens (creating) a layout that is renamed into place once
// complete (a pull's staging area): its blobs' data is made durable while
// they are written, as in any layout; its index.json, oci-layout and
// directories only when SyncStage is called, before the rename.
func OpenStage(dir string) (*Layout, error) { return openLayout(dir, stage) }

// SyncStage makes a stage layout durable as a whole: the blobs written
// (see Sync), its two files and its directories, synced concurrently (one
// journal commit where the file system batches them).
func (l *Layout) SyncStage() error {
	if err := l.Sync(); err != nil {
		return err
	}
	l.pending.mu.Lock()
	flushing := l.pending.flushing
	l.pending.flushing = nil
	l.pending.mu.Unlock()
	var g errgroup.Group
	for _, f := range []string{"oci-layout", "index.json"} {
		g.Go(func() error { return syncFile(filepath.Join(l.dir, f)) })
	}
	for _, d := range []string{"blobs/sha256", "blobs", "."} {
		g.Go(func() error { return atomicfile.SyncDir(filepath.Join(l.dir, d)) })
	}
	for _, f := range flushing {
		g.Go(f.wait)
	}
	return g.Wait()
}

// syncFile fsyncs the file at p.
func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return nil
}

// Discard removes the blobs written through l since the last Sync: an
// operation that fails leaves nothing half-written behind.
func (l *Layout) Discard() {
	l.pending.mu.Lock()
	temp, flushing := l.pending.temp, l.pending.flushing
	l.pending.order, l.pending.temp, l.pending.flushing = nil, nil, nil
	l.pending.mu.Unlock()
	for _, t := range temp {
		t.wait()
		os.Remove(t.name)
	}
	for _, f := range flushing {
		f.wait() // a stage's: removed with the stage
	}
}

// writeFile replaces a file of the layout: atomically and durably, or for a
// scratch or stage layout just atomically.
func (l *Layout) writeFile(path string, data []byte) error {
	if l.mode == durable {
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
		return t.name
	}
	return final
}

// addPending records f, complete and verified, as blob h's temp file,
// flushing its data in the background unless the layout is scratch; f is
// closed when that ends.
func (l *Layout) addPending(h v1.Hash, f *os.File) {
	p := &pendingFile{name: f.Name()}
	if l.mode == scratch {
		f.Close()
	} else {
		p.done = make(chan struct{})
		flushSlots <- struct{}{} // waits while too many flushes run
		go func() {
			defer close(p.done)
			defer func() { <-flushSlots }()
			if err := fdatasync(f); err != nil {
				p.err = fmt.Errorf("syncing %s: %w", f.Name(), err)
			}
			f.Close()
		}()
	}
	final := l.blobPath(h)
	l.pending.mu.Lock()
	defer l.pending.mu.Unlock()
	if l.pending.temp == nil {
		l.pending.temp = map[string]*pendingFile{}
	}
	if old, ok := l.pending.temp[final]; ok {
		old.wait() // written twice at once: same content, keep one
		os.Remove(old.name)
	} else {
		l.pending.order = append(l.pending.order, final)
	}
	l.pending.temp[final] = p
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
	if l.mode == stage {
		// Invisible until SyncStage: rename now, wait for the flushes
		// there, alongside the syncs of the stage's files.
		l.pending.mu.Lock()
		for _, final := range order {
			l.pending.flushing = append(l.pending.flushing, temp[final])
		}
		l.pending.mu.Unlock()
	} else {
		var errs []error
		for _, final := range order {
			errs = append(errs, temp[final].wait())
		}
		if err := errors.Join(errs...); err != nil {
			for _, t := range temp {
				os.Remove(t.name)
			}
			return err
		}
	}
	for _, final := range order {
		if err := os.Rename(temp[final].name, final); err != nil {
			return fmt.Errorf("writing %s: %w", final, err)
		}
	}
	if l.mode != durable {
		return nil
	}
	return atomicfile.SyncDir(filepath.Join(l.dir, "blobs", "sha256"))
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
	if err := unix.IoctlFileClone(int(tmp.Fd()), int(src.Fd())); err != nil {
		tmp.Close()
		os.Remove(name)
		if err := os.Link(src.Name(), name); err != nil {
			return err
		}
		if tmp, err = os.Open(name); err != nil {
			os.Remove(name)
			return err
		}
	}
	if err := checkFile(tmp, h, size); err != nil {
		tmp.Close()
		os.Remove(name)
		return err
	}
	l.addPending(h, tmp)
	return nil
}

// checkFile hashes f from its start and compares it with h and size.
func checkFile(f *os.File, h v1.Hash, size int64) error {
	hasher := sha256.New()
	n, err := io.Copy(hasher, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h.Hex || (size >= 0 && n != size) {
		return &DigestError{What: "blob", Source: f.Name(), Expected: h.String(), Actual: "sha256:" + got, ExpectedSize: size, ActualSize: n}
	}
	return nil
}

// writeback writes to f and, every 2 MiB, flushes what was written so far
// in the background (at most one flush at a time), so that the flush once
// the file is complete finds little left to write. 2 MiB measured best for
// a 64 MiB pull here: 8 MiB left a longer tail, 1 MiB made more flushes.
type writeback struct {
	f       *os.File
	off     int64
	flushed int64
	running chan struct{} // closed when the background flush ends
	err     error         // the last background flush's error, read after running closed
}

func (w *writeback) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.off += int64(n)
	if w.off-w.flushed >= 2<<20 && w.idle() {
		if w.err != nil {
			return n, fmt.Errorf("syncing %s: %w", w.f.Name(), w.err)
		}
		w.flushed = w.off
		done := make(chan struct{})
		w.running = done
		go func() {
			w.err = fdatasync(w.f)
			close(done)
		}()
	}
	return n, err
}

// idle reports whether no background flush runs.
func (w *writeback) idle() bool {
	if w.running == nil {
		return true
	}
	select {
	case <-w.running:
		return true
	default:
		return false
	}
}

// wait waits for the running background flush and returns its error.
func (w *writeback) wait() error {
	if w.running != nil {
		<-w.running
	}
	return w.err
}

// flushSlots bounds the completed files being flushed at once (each holds
// an open file): writing thousands of small blobs faster than the disk
// flushes them waits here rather than running out of file descriptors.
var flushSlots = make(chan struct{}, 32)

// fdatasync flushes f's data (and the size that reads need) to the disk; a
// variable so that a test can watch and fail it.
var fdatasync = func(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
