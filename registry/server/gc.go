package server

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prebake/prebake/internal/atomicfile"
)

// DefaultGracePeriod is how young a blob must be for gc to keep it although
// nothing references it yet: a push uploads blobs first and references them
// with its manifest last.
const DefaultGracePeriod = time.Hour

// GCOptions tune Server.GC.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// GracePeriod keeps unreferenced blobs and upload leftovers modified
	// less than this long ago. Zero means DefaultGracePeriod; a negative
	// value keeps none (only safe when nothing is pushing).
	GracePeriod time.Duration
}

// GCResult is what a garbage collection removed (or would remove).
type GCResult struct {
	// Removed lists the unreferenced blobs, by repository and digest.
	Removed []RemovedBlob
	// Leftovers lists abandoned temp files and directories (interrupted
	// uploads and requests), relative to the root.
	Leftovers []string
	// BytesFreed counts the blobs' and leftovers' sizes.
	BytesFreed int64
	// Repositories is how many repositories were scanned.
	Repositories int
}

// RemovedBlob is one blob gc removed.
type RemovedBlob struct {
	Repo   string
	Digest string
	Size   int64
}

// GC removes every blob that no manifest reachable from a repository's
// index.json (tags, untagged manifests, referrers) references, and the
// leftovers of interrupted uploads. Each repository is collected under its
// lock, so a manifest push in any process either completes before (and its
// blobs are kept) or starts after (and finds the blobs it checks gone, and
// fails cleanly); blobs younger than the grace period, which includes every
// blob whose upload just finished or that a client just checked with HEAD,
// are kept. A repository whose reachable manifests are missing or corrupt is
// left untouched and reported as ErrCorrupt. Errors of single repositories
// are joined; the result covers the rest.
func (s *Server) GC(ctx context.Context, o GCOptions) (GCResult, error) {
	grace := o.GracePeriod
	if grace == 0 {
		grace = DefaultGracePeriod
	}
	cutoff := time.Now().Add(-grace)
	var res GCResult
	var errs []error
	repos, err := s.repositories()
	if err != nil {
		return res, err
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Repositories++
		if err := s.gcRepo(ctx, repo, cutoff, o.DryRun, &res); err != nil {
			errs = append(errs, err)
		}
	}
	s.gcLeftovers(cutoff, o.DryRun, &res)
	sort.Slice(res.Removed, func(i, j int) bool {
		a, b := res.Removed[i], res.Removed[j]
		return a.Repo < b.Repo || a.Repo == b.Repo && a.Digest < b.Digest
	})
	sort.Strings(res.Leftovers)
	return res, errors.Join(errs...)
}

// repositories lists the repositories under the root, sorted.
func (s *Server) repositories() ([]string, error) {
	var repos []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != s.root && (d.Name() == metaDir || d.Name() == blobsDir || d.Name() == uploadsDir || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil || rel == "." {
			return nil
		}
		repo := filepath.ToSlash(rel)
		if validRepo(repo) && s.repoExists(repo) {
			repos = append(repos, repo)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing repositories in %s: %w", s.root, err)
	}
	return repos, nil
}

func (s *Server) gcRepo(ctx context.Context, repo string, cutoff time.Time, dryRun bool, res *GCResult) error {
	unlock, err := s.lock(repo)
	if err != nil {
		return err
	}
	defer unlock()
	// Staging directories of this repository are only used under its lock:
	// any left now belongs to a request that died with its process.
	staging := filepath.Join(s.root, metaDir, "staging")
	if ents, err := os.ReadDir(staging); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), stagingPrefix(repo)) {
				s.removeLeftover(filepath.Join(staging, e.Name()), dryRun, res)
			}
		}
	}
	keep, err := s.reachable(repo)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.repoDir(repo), blobsDir)
	algs, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("gc %s: %w", repo, err)
	}
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		algDir := filepath.Join(dir, alg.Name())
		ents, err := os.ReadDir(algDir)
		if err != nil {
			return fmt.Errorf("gc %s: %w", repo, err)
		}
		removed := false
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(cutoff) {
				continue
			}
			dig := alg.Name() + ":" + e.Name()
			p := filepath.Join(algDir, e.Name())
			switch {
			case digestRE.MatchString(dig):
				if keep[dig] {
					continue
				}
				if !dryRun {
					if err := os.Remove(p); err != nil {
						return fmt.Errorf("gc %s: %w", repo, err)
					}
					removed = true
				}
				res.Removed = append(res.Removed, RemovedBlob{Repo: repo, Digest: dig, Size: fi.Size()})
				res.BytesFreed += fi.Size()
			case strings.HasPrefix(e.Name(), ".mount-") || strings.HasPrefix(e.Name(), ".tmp-"):
				if !dryRun {
					os.Remove(p)
				}
				rel, _ := filepath.Rel(s.root, p)
				res.Leftovers = append(res.Leftovers, filepath.ToSlash(rel))
				res.BytesFreed += fi.Size()
			}
		}
		if removed {
			if err := atomicfile.SyncDir(algDir); err != nil {
				return err
			}
		}
	}
	return nil
}

// reachable walks repo's index.json and every manifest below it, verifying
// each manifest's digest, and returns the digests of everything referenced.
func (s *Server) reachable(repo string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(s.repoDir(repo), indexFile))
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", repo, err)
	}
	var idx indexJSON
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: %s: index.json: %v", ErrCorrupt, repo, err)
	}
	keep := map[string]bool{}
	queue := append([]descriptor(nil), idx.Manifests...)
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if keep[d.Digest] {
			continue
		}
		keep[d.Digest] = true
		if !isManifest(d.MediaType) || !digestRE.MatchString(d.Digest) {
			continue
		}
		raw, err := readVerified(s.blobPath(repo, d.Digest), d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: manifest %s: %v", ErrCorrupt, repo, d.Digest, err)
		}
		var m indexJSON
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%w: %s: manifest %s: %v", ErrCorrupt, repo, d.Digest, err)
		}
		queue = append(queue, m.children()...)
	}
	return keep, nil
}

func isManifest(mt string) bool {
	switch mt {
	case "application/vnd.oci.image.index.v1+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

// readVerified reads the (manifest-sized) blob at p and checks it hashes to dig.
func readVerified(p, dig string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	alg, want, _ := strings.Cut(dig, ":")
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	}
	h.Write(raw)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return nil, fmt.Errorf("content is %s:%s", alg, got)
	}
	return raw, nil
}

// gcLeftovers removes upload roots that no live process owns any more, and
// old staging directories of repositories that no longer exist.
func (s *Server) gcLeftovers(cutoff time.Time, dryRun bool, res *GCResult) {
	staging := filepath.Join(s.root, metaDir, "staging")
	ents, _ := os.ReadDir(staging)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		escaped, _, _ := strings.Cut(e.Name(), "~")
		if repo, err := url.PathUnescape(escaped); err == nil && validRepo(repo) && s.repoExists(repo) {
			continue // collected under the repository's lock
		}
		s.removeLeftover(filepath.Join(staging, e.Name()), dryRun, res)
	}
	uploads := filepath.Join(s.root, metaDir, "uploads")
	ents, _ = os.ReadDir(uploads)
	for _, e := range ents {
		dir := filepath.Join(uploads, e.Name())
		f, err := os.OpenFile(filepath.Join(dir, ".owner"), os.O_RDWR, 0)
		if err != nil {
			if fi, serr := e.Info(); serr == nil && fi.ModTime().Before(cutoff) {
				s.removeLeftover(dir, dryRun, res) // its process died before locking it
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			s.removeLeftover(dir, dryRun, res) // its process is gone
		}
		f.Close()
	}
}

// removeLeftover removes dir (symlinks inside are removed, not followed)
// and accounts for the regular files in it.
func (s *Server) removeLeftover(dir string, dryRun bool, res *GCResult) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				res.BytesFreed += fi.Size()
			}
		}
		return nil
	})
	rel, _ := filepath.Rel(s.root, dir)
	res.Leftovers = append(res.Leftovers, filepath.ToSlash(rel))
	if !dryRun {
		os.RemoveAll(dir)
	}
}
