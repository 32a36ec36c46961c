package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/prebake/prebake/internal/atomicfile"
)

// On-disk layout of the root:
//
//	ROOT/<repo>/oci-layout, index.json, blobs/<alg>/<hex>   one OCI layout per repository (olareg's format)
//	ROOT/<repo>/_uploads/                                   olareg's upload sessions (temp files)
//	ROOT/.prebake/locks/<escaped repo>.lock                 flock per repository, shared by all processes
//	ROOT/.prebake/staging/<escaped repo>~<random>/          per-request shadow of a repository (see commit)
//	ROOT/.prebake/uploads/<random>/                         one server's upload sessions (flocked .owner)
const (
	metaDir     = ".prebake"
	indexFile   = "index.json"
	layoutFile  = "oci-layout"
	blobsDir    = "blobs"
	uploadsDir  = "_uploads"
	layoutJSON  = `{"imageLayoutVersion":"1.0.0"}`
	annotConv   = "org.olareg.referrer.convert"
	annotRef    = "org.opencontainers.image.ref.name"
	annotSubj   = "org.olareg.referrer.subject"
	maxManifest = 8 << 20 // olareg's default manifest limit
)

// emptyIndex is the index.json of a new repository, the same olareg writes:
// the annotation says no referrers tag schema entries are left to convert.
var emptyIndex = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"` + annotConv + `":"true"}}` + "\n")

var (
	repoPart = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	repoRE   = regexp.MustCompile(`^` + repoPart + `(?:/` + repoPart + `)*$`)
	digestRE = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// validRepo reports whether name is a repository this store can hold: the
// distribution-spec grammar, and no path element that collides with the
// layout's own files.
func validRepo(name string) bool {
	if !repoRE.MatchString(name) {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case indexFile, layoutFile, blobsDir, uploadsDir:
			return false
		}
	}
	return true
}

// blobPath is where blob dig ("sha256:hex") of repo lives; dig must be valid.
func (s *Server) blobPath(repo, dig string) string {
	alg, enc, _ := strings.Cut(dig, ":")
	return filepath.Join(s.root, filepath.FromSlash(repo), blobsDir, alg, enc)
}

func (s *Server) repoDir(repo string) string {
	return filepath.Join(s.root, filepath.FromSlash(repo))
}

// repoLock serialises index.json changes and gc of one repository: a mutex
// for the goroutines of this process and an flock for other processes on the
// same root (flock locks separate open files independently, so two Servers
// in one process exclude each other too).
type repoLock struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (s *Server) lock(repo string) (unlock func(), err error) {
	s.locks.mu.Lock()
	m := s.locks.locks[repo]
	if m == nil {
		m = &sync.Mutex{}
		s.locks.locks[repo] = m
	}
	s.locks.mu.Unlock()
	m.Lock()
	path := filepath.Join(s.root, metaDir, "locks", url.PathEscape(repo)+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		}
	}
	if err != nil {
		m.Unlock()
		return nil, fmt.Errorf("locking repository %s: %w", repo, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		m.Unlock()
		return nil, fmt.Errorf("locking repository %s: %w", repo, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		m.Unlock()
	}, nil
}

// repoExists reports whether repo has both layout files.
func (s *Server) repoExists(repo string) bool {
	dir := s.repoDir(repo)
	fi, err := os.Stat(filepath.Join(dir, indexFile))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, layoutFile))
	return err == nil && bytes.Contains(b, []byte(`"1.0.0"`))
}

// ensureRepo creates repo's layout durably if it does not exist yet. The
// caller holds the repository lock.
func (s *Server) ensureRepo(repo string) error {
	if s.repoExists(repo) {
		return nil
	}
	dir := s.repoDir(repo)
	if err := mkdirAllSync(filepath.Join(dir, blobsDir, "sha256"), s.root); err != nil {
		return fmt.Errorf("creating repository %s: %w", repo, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, layoutFile), []byte(layoutJSON), 0o644); err != nil {
		return fmt.Errorf("creating repository %s: %w", repo, err)
	}
	if _, err := os.Stat(filepath.Join(dir, indexFile)); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(filepath.Join(dir, indexFile), emptyIndex, 0o644); err != nil {
			return fmt.Errorf("creating repository %s: %w", repo, err)
		}
	}
	return nil
}

// mkdirAllSync creates dir and its missing parents below top, fsyncing each
// parent whose entries changed, so a new directory survives a crash.
func mkdirAllSync(dir, top string) error {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		if d == top || d == filepath.Dir(d) {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := atomicfile.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncFile fsyncs an existing file; a missing file is not an error (the
// caller's protocol checks existence where it matters).
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

// staging is a per-request shadow of one repository that olareg writes to:
// copies of oci-layout and index.json, and a symlink to the real blobs
// directory. olareg's blob writes (the manifest, referrers responses) land in
// the real blob store; its index.json write lands in the shadow, and commit
// makes the blobs durable before it replaces the real index.json atomically.
type staging struct {
	root     string // the staging root handed to olareg
	repoDir  string // root/<repo>
	oldIndex []byte
}

func (s *Server) newStaging(repo string) (*staging, error) {
	oldIndex, err := os.ReadFile(filepath.Join(s.repoDir(repo), indexFile))
	if err != nil {
		return nil, fmt.Errorf("reading repository %s: %w", repo, err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	st := &staging{root: filepath.Join(s.root, metaDir, "staging", stagingPrefix(repo)+hex.EncodeToString(rnd[:])), oldIndex: oldIndex}
	st.repoDir = filepath.Join(st.root, filepath.FromSlash(repo))
	if err := os.MkdirAll(st.repoDir, 0o755); err != nil {
		return nil, fmt.Errorf("staging %s: %w", repo, err)
	}
	ok := false
	defer func() {
		if !ok {
			st.remove()
		}
	}()
	if err := os.WriteFile(filepath.Join(st.repoDir, layoutFile), []byte(layoutJSON), 0o644); err != nil {
		return nil, fmt.Errorf("staging %s: %w", repo, err)
	}
	if err := os.WriteFile(filepath.Join(st.repoDir, indexFile), oldIndex, 0o644); err != nil {
		return nil, fmt.Errorf("staging %s: %w", repo, err)
	}
	realBlobs, err := filepath.Abs(filepath.Join(s.repoDir(repo), blobsDir))
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(realBlobs, filepath.Join(st.repoDir, blobsDir)); err != nil {
		return nil, fmt.Errorf("staging %s: %w", repo, err)
	}
	ok = true
	return st, nil
}

// stagingPrefix starts the names of repo's staging directories; "~" occurs
// in no escaped repository name, so prefixes of different repositories
// never match each other.
func stagingPrefix(repo string) string { return url.PathEscape(repo) + "~" }

// remove deletes the shadow; the symlink goes first so nothing can follow it.
func (st *staging) remove() {
	os.Remove(filepath.Join(st.repoDir, blobsDir))
	os.RemoveAll(st.root)
}

// commit makes olareg's changes to the shadow visible. The blobs olareg
// wrote through the shadow (the pushed manifest, given in written, and the
// ones the new index.json names and the old did not: referrers responses)
// are verified against their digests and fsynced, extra (the blobs the
// manifest references, promoted durably when uploaded) is fsynced, and then
// the real index.json is replaced atomically. Verification matters after a
// power loss: olareg renames before prebake fsyncs, so a manifest blob of a
// push that was never acknowledged can exist with torn content, and olareg
// skips writing a blob that exists. Such a blob is removed and the request
// fails; the client's retry writes it afresh. It reports whether index.json
// changed.
func (s *Server) commit(repo string, st *staging, written, extra []string) (bool, error) {
	newIndex, err := os.ReadFile(filepath.Join(st.repoDir, indexFile))
	if err != nil {
		return false, fmt.Errorf("reading staged index of %s: %w", repo, err)
	}
	toSync := map[string]bool{} // digest -> verify it too
	for _, d := range extra {
		toSync[d] = false
	}
	for _, d := range written {
		toSync[d] = true
	}
	if !bytes.Equal(newIndex, st.oldIndex) {
		var oldIdx, newIdx indexJSON
		if err := json.Unmarshal(newIndex, &newIdx); err != nil {
			return false, fmt.Errorf("staged index of %s: %w", repo, err)
		}
		_ = json.Unmarshal(st.oldIndex, &oldIdx)
		old := map[string]bool{}
		for _, d := range oldIdx.Manifests {
			old[d.Digest] = true
		}
		for _, d := range newIdx.Manifests {
			if !old[d.Digest] && isManifest(d.MediaType) {
				toSync[d.Digest] = true
			}
		}
	}
	dirs := map[string]bool{}
	for d, verify := range toSync {
		if !digestRE.MatchString(d) {
			continue
		}
		p := s.blobPath(repo, d)
		if verify {
			if _, err := readVerified(p, d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				os.Remove(p)
				atomicfile.SyncDir(filepath.Dir(p))
				return false, fmt.Errorf("blob %s of %s was corrupt (removed): %w", d, repo, err)
			}
		}
		if err := syncFile(p); err != nil {
			return false, err
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return false, err
		}
	}
	if bytes.Equal(newIndex, st.oldIndex) {
		return false, nil
	}
	return true, atomicfile.WriteFile(filepath.Join(s.repoDir(repo), indexFile), newIndex, 0o644)
}

// indexJSON is the part of index.json and of manifests that gc and commit read.
type indexJSON struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Blobs     []descriptor `json:"blobs"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	URLs        []string          `json:"urls"`
	Annotations map[string]string `json:"annotations"`
}

// children lists the descriptors a manifest or index points to.
func (m *indexJSON) children() []descriptor {
	var out []descriptor
	out = append(out, m.Manifests...)
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	out = append(out, m.Blobs...)
	return out
}
