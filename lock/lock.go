// Package lock finds the checksums of a recipe's downloads and records them
// in its lock file (prebake lock).
//
// Update resolves every source URL of a recipe for the requested variable
// values on every platform, reads the checksum file upstream publishes next
// to each new URL (dl.k8s.io: URL.sha256 holding the bare hex; GitHub
// releases: URL.sha256sum holding "hex  filename"), optionally downloads the
// source and checks it against that value, resolves the tag of every image
// (images components) without a digest to the digest it points to now, and
// only then writes the lock, atomically. A failure anywhere leaves the lock
// file as it was.
//
// The package trusts the upstream checksum files: it is how a new version
// gets into a lock, not a substitute for reviewing the lock's diff. It does
// not build images and does not print (progress goes to a progress.Func).
package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
)

// Suffixes are the checksum file names tried next to a download, in order:
// dl.k8s.io publishes URL.sha256, GitHub releases URL.sha256sum.
var Suffixes = []string{".sha256", ".sha256sum"}

// DirFiles are the checksum files of a whole release directory tried when no
// per-file one exists, after STEM.sha256sum (runc publishes runc.sha256sum
// for runc.amd64, runc.arm64, …: STEM is the file name up to its first dot).
// Only a "HEX  NAME" line for the download's own name counts in these.
var DirFiles = []string{"SHA256SUMS", "sha256sums.txt", "checksums.txt"}

// maxChecksumFile caps the size of a checksum file read.
const maxChecksumFile = 1 << 20

// DefaultJobs is the parallelism when Options.Jobs <= 0.
const DefaultJobs = 4

// Options adjust Update. Fetcher is required; every other zero value is
// documented on its field.
type Options struct {
	// Set gives variable values (prebake lock --update NAME=VERSION); the
	// others keep the recipe's defaults. Unknown names are errors.
	Set map[string]string
	// LockPath is the lock file to update. Default: recipes.LockPath of the
	// recipe's file. A missing file is created.
	LockPath string
	// Fetcher downloads the sources (when Verify is set) into its cache, and
	// its mirrors (fetch.WithMirrors) also rewrite the checksum files' URLs.
	Fetcher *fetch.Fetcher
	// Client reads checksum files over HTTP. Default: a client with a 60 s
	// timeout on http.DefaultTransport.
	Client *http.Client
	// Verify also downloads every new source and refuses it unless its
	// sha256 equals its checksum file's. Default: false (the CLI defaults to
	// true, --verify-downloads).
	Verify bool
	// ImageTransport carries registry requests that resolve image tags.
	// Default: remote.DefaultTransport (credentials from the Docker config).
	ImageTransport http.RoundTripper
	// RegistryMirrors resolve the tags of a registry's images at another
	// registry (and optional repository prefix) with the same repository
	// paths: registry.k8s.io -> 127.0.0.1:5000 for an air-gapped mirror.
	// The lock keeps the upstream reference; the digest is what the mirror
	// says the tag points to (builds pull by that digest).
	RegistryMirrors map[string]string
	// Jobs is how many URLs are worked on at once. Default: DefaultJobs.
	Jobs int
	// Progress receives events: Op "checksum", Name the source URL. Default:
	// nil (silent); downloads report through the Fetcher's own progress.
	Progress progress.Func
}

// Entry is one lock entry Update added.
type Entry struct {
	URL         string `json:"url"`
	SHA256      string `json:"sha256"`
	ChecksumURL string `json:"checksumURL"`    // where the sha256 came from
	Verified    bool   `json:"verified"`       // the download was hashed and matched
	Size        int64  `json:"size,omitempty"` // bytes, when verified
}

// Result is what Update did.
type Result struct {
	// LockPath is the lock file written (or that would have been: nothing is
	// written when Added is empty).
	LockPath string `json:"lockPath"`
	// Added are the new entries, sorted by URL.
	Added []Entry `json:"added"`
	// Known counts the source URLs whose checksum was already in the lock or
	// inline in the recipe.
	Known int `json:"known"`
	// AddedImages are the image references newly locked to the digest their
	// tag points to now, sorted by reference.
	AddedImages []ImageEntry `json:"addedImages,omitempty"`
	// KnownImages counts the image references already locked or with an
	// inline digest.
	KnownImages int `json:"knownImages"`
}

// ImageEntry is one image reference Update locked.
type ImageEntry struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"` // of the manifest or index the tag points to
}

// Update adds to r's lock file the checksum of every source URL the recipe
// fetches with o.Set, on every platform of the recipe, that the lock does not
// have yet. Each comes from the checksum file upstream publishes next to the
// URL (Suffixes, tried in order). Image references without a digest are
// locked to the digest their tag points to. Every problem is reported together, and
// the lock is written (temp file, fsync, rename, fsync of the directory) only
// when there is none.
func Update(ctx context.Context, r *recipes.Recipe, o Options) (*Result, error) {
	if o.Fetcher == nil {
		return nil, errors.New("lock: a Fetcher is required")
	}
	lockPath := o.LockPath
	if lockPath == "" {
		lockPath = recipes.LockPath(r.File())
	}
	l, err := recipes.LoadLock(lockPath, true)
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = &recipes.Lock{APIVersion: recipes.APIVersion, Kind: "Lock"}
	}
	res, err := r.Resolve(recipes.ResolveOptions{Set: o.Set, Lock: l, NoChecksums: true})
	if err != nil {
		return nil, err
	}
	out := &Result{LockPath: lockPath}
	seen := map[string]bool{}
	var todo, refs []string
	for _, b := range res.Builds {
		for _, c := range b.Components {
			for _, im := range c.Images {
				if seen["image:"+im.Ref] {
					continue
				}
				seen["image:"+im.Ref] = true
				if im.Digest != "" {
					out.KnownImages++
					continue
				}
				refs = append(refs, im.Ref)
			}
			for _, s := range c.Sources {
				if seen[s.URL] {
					continue
				}
				seen[s.URL] = true
				if s.SHA256 != "" {
					out.Known++
					continue
				}
				todo = append(todo, s.URL)
			}
		}
	}
	slices.Sort(todo)
	slices.Sort(refs)

	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	entries := make([]Entry, len(todo))
	images := make([]ImageEntry, len(refs))
	errs := make([]error, len(todo)+len(refs))
	// Every item reports its own error (all are joined), so the group's
	// goroutines return nil and only bound the concurrency.
	var g errgroup.Group
	g.SetLimit(jobs)
	for i, u := range todo {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[i] = fmt.Errorf("locking %s: %w", u, err)
				return nil
			}
			entries[i], errs[i] = lockOne(ctx, client, o, u)
			return nil
		})
	}
	for i, ref := range refs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[len(todo)+i] = fmt.Errorf("locking %s: %w", ref, err)
				return nil
			}
			images[i], errs[len(todo)+i] = lockImage(ctx, o, ref)
			return nil
		})
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out.Added, out.AddedImages = entries, images
	if len(entries) == 0 && len(images) == 0 {
		return out, nil
	}
	for _, e := range entries {
		l.Add(e.URL, e.SHA256)
		if e.Size > 0 {
			l.SetSize(e.URL, e.Size)
		}
	}
	for _, e := range images {
		l.AddImage(e.Ref, e.Digest)
	}
	b, err := l.Marshal()
	if err != nil {
		return nil, fmt.Errorf("writing lock file: %w", err)
	}
	b = append(headerComment(lockPath), b...)
	if err := atomicfile.WriteFile(lockPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("writing lock file: %w", err)
	}
	return out, nil
}

// lockOne finds u's checksum file and, with o.Verify, checks the download.
func lockOne(ctx context.Context, client *http.Client, o Options, u string) (Entry, error) {
	e := Entry{URL: u}
	var tried []string
	base := path.Base(urlPath(u))
	type candidate struct {
		url     string
		perFile bool // may hold just the bare hex
	}
	var cands []candidate
	for _, suffix := range Suffixes {
		cands = append(cands, candidate{u + suffix, true})
	}
	dir := u[:strings.LastIndex(u, "/")+1]
	if stem, _, ok := strings.Cut(base, "."); ok && stem != "" {
		cands = append(cands, candidate{dir + stem + ".sha256sum", false})
	}
	for _, n := range DirFiles {
		cands = append(cands, candidate{dir + n, false})
	}
	for _, c := range cands {
		cu := c.url
		loc, err := o.Fetcher.Locate(cu)
		if err != nil {
			return e, fmt.Errorf("reading checksum file: %w", err)
		}
		src := loc.URL
		body, err := get(ctx, client, o.Fetcher, loc)
		if errors.Is(err, fs.ErrNotExist) {
			tried = append(tried, src)
			continue
		}
		if err != nil {
			return e, fmt.Errorf("reading checksum file %s: %w", src, err)
		}
		sum, err := parseChecksumFile(body, base, c.perFile)
		if err != nil && !c.perFile {
			tried = append(tried, src+" (no line for "+base+")")
			continue
		}
		if err != nil {
			return e, fmt.Errorf("checksum file %s: %w", src, err)
		}
		e.SHA256, e.ChecksumURL = sum, cu
		break
	}
	if e.SHA256 == "" {
		return e, fmt.Errorf("%w for %s (tried %s)", ErrNoChecksumFile, u, strings.Join(tried, ", "))
	}
	o.Progress.Report(progress.Event{Op: "checksum", Name: u, Done: int64(len(e.SHA256)), Finished: true})
	if !o.Verify {
		return e, nil
	}
	p, err := o.Fetcher.Fetch(ctx, fetch.Request{URL: u, SHA256: e.SHA256})
	if err != nil {
		var ce *fetch.ChecksumError
		if errors.As(err, &ce) {
			return e, &MismatchError{URL: u, ChecksumURL: e.ChecksumURL, Mirror: ce.Mirror, Expected: ce.Expected, Actual: ce.Actual}
		}
		return e, err
	}
	if fi, err := os.Stat(p); err == nil {
		e.Size = fi.Size()
	}
	e.Verified = true
	return e, nil
}

// lockImage resolves the tag ref to the digest of what it points to now
// (an index for a multi-platform image, so every platform builds from it).
func lockImage(ctx context.Context, o Options, ref string) (ImageEntry, error) {
	e := ImageEntry{Ref: ref}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return e, err
	}
	if m, ok := o.RegistryMirrors[tag.RegistryStr()]; ok {
		mt, err := name.NewTag(strings.TrimSuffix(m, "/")+"/"+tag.RepositoryStr()+":"+tag.TagStr(), name.StrictValidation)
		if err != nil {
			return e, fmt.Errorf("registry mirror %s=%s: %w", tag.RegistryStr(), m, err)
		}
		tag = mt
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if o.ImageTransport != nil {
		opts = append(opts, remote.WithTransport(o.ImageTransport))
	}
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		// Some registries answer HEAD without a digest; GET always has one.
		d, gerr := remote.Get(tag, opts...)
		if gerr != nil {
			return e, fmt.Errorf("resolving image %s: %w", ref, gerr)
		}
		desc = &d.Descriptor
	}
	e.Digest = desc.Digest.String()
	o.Progress.Report(progress.Event{Op: "resolve", Name: ref, Finished: true})
	return e, nil
}

// headerComment returns the comment lines an existing lock file starts with,
// kept when it is rewritten.
func headerComment(p string) []byte {
	old, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var out []byte
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		out = append(out, line...)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

func urlPath(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Path
	}
	return u
}

// parseChecksumFile finds the sha256 of the file named name: the only word
// of a file holding bare hex (dl.k8s.io; only when perFile), or the
// "hex  name" (or "hex *name") line for name in sha256sum output (GitHub
// releases, one or many files).
func parseChecksumFile(b []byte, name string, perFile bool) (string, error) {
	var lines [][]string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	if perFile && len(lines) == 1 && len(lines[0]) == 1 {
		return checkHex(lines[0][0])
	}
	for _, f := range lines {
		if len(f) == 2 && path.Base(strings.TrimPrefix(f[1], "*")) == name {
			return checkHex(f[0])
		}
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("%w: empty", ErrBadChecksumFile)
	}
	return "", fmt.Errorf("%w: no line for %s (want bare hex, or \"HEX  %s\")", ErrBadChecksumFile, name, name)
}

func checkHex(s string) (string, error) {
	s = strings.ToLower(s)
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %q is not a sha256 (64 hex digits)", ErrBadChecksumFile, s)
	}
	return s, nil
}

// get reads a small file over http(s) or from a file:// URL (inside its
// mirror, see fetch.Fetcher.OpenLocal); a 404 or a missing file is
// fs.ErrNotExist.
func get(ctx context.Context, client *http.Client, fetcher *fetch.Fetcher, loc fetch.Location) ([]byte, error) {
	src := loc.URL
	u, err := url.Parse(src)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		f, err := fetcher.OpenLocal(loc)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readCapped(f)
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "prebake")
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return readCapped(resp.Body)
		case http.StatusNotFound:
			return nil, fs.ErrNotExist
		default:
			return nil, fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q (want http, https or file)", u.Scheme)
	}
}

func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxChecksumFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxChecksumFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadChecksumFile, maxChecksumFile)
	}
	return b, nil
}
