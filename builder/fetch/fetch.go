// Package fetch downloads sources into a content-addressed cache.
//
// Every download is verified against its sha256 before it is cached or
// returned, so a path handed out by a Fetcher always holds exactly the
// requested bytes. The cache is <dir>/sources/sha256/<hex>; files are written
// to a temporary name in the same directory, fsynced and renamed, so readers
// (other goroutines or other processes) never see a partial file and
// concurrent downloads of the same digest need no lock.
//
// The package only downloads and verifies: it does not unpack archives
// (see builder/archive), does not print (progress goes to a progress.Func) and
// never uses a file whose digest it has not checked.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/internal/safepath"
)

// Defaults for the options.
const (
	DefaultRetries = 4                      // retries after the first attempt
	DefaultBackoff = 500 * time.Millisecond // first retry delay; doubles each retry
	DefaultMaxSize = int64(4) << 30         // 4 GiB per download
	DefaultJobs    = 4                      // FetchAll parallelism when jobs <= 0
	// DefaultStallTimeout: an attempt that receives no byte (headers or
	// body) for this long is abandoned and retried.
	DefaultStallTimeout = 60 * time.Second
	// DefaultTimeout bounds one Fetch, every attempt and wait included.
	DefaultTimeout = time.Hour

	// maxDelay caps a single wait between attempts, including a server's
	// Retry-After.
	maxDelay = time.Minute
)

// Request names one source: where to get it and what it must hash to.
type Request struct {
	URL    string // http://, https:// or file:// URL
	SHA256 string // expected digest, 64 lowercase hex characters; required
	// Size is the expected size in bytes when known (from the lock): a
	// download of any other size fails with ErrSizeMismatch, and no more
	// than Size+1 bytes are read. 0: unknown (the fetcher's max size caps).
	Size int64
}

// Mirror rewrites URLs starting with From so that they start with To.
type Mirror struct {
	From, To string
}

// ParseMirror parses "FROM=TO", e.g.
// "https://dl.k8s.io/=file:///srv/mirror/k8s/". Both sides must be URLs with
// a scheme; the split is at the first "=".
func ParseMirror(s string) (Mirror, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return Mirror{}, fmt.Errorf("mirror %q: want FROM=TO", s)
	}
	for _, side := range []string{from, to} {
		u, err := url.Parse(side)
		if err != nil || u.Scheme == "" || !strings.Contains(side, "://") {
			return Mirror{}, fmt.Errorf("mirror %q: %q is not a URL prefix (want scheme://…)", s, side)
		}
	}
	return Mirror{From: from, To: to}, nil
}

// Option configures a Fetcher.
type Option func(*Fetcher)

// WithCacheDir sets the cache directory. Default: $XDG_CACHE_HOME/prebake,
// or ~/.cache/prebake when XDG_CACHE_HOME is unset or not absolute.
func WithCacheDir(dir string) Option { return func(f *Fetcher) { f.cacheDir = dir } }

// WithHTTPClient sets the HTTP client. Default: a client on a clone of
// http.DefaultTransport (proxy from the environment) with a 60 s
// response-header timeout. WithStallTimeout and WithTimeout apply on top
// of any client.
func WithHTTPClient(c *http.Client) Option { return func(f *Fetcher) { f.client = c } }

// WithMirrors adds URL prefix rewrites; when several match, the longest From
// wins. Default: none.
func WithMirrors(ms ...Mirror) Option {
	return func(f *Fetcher) { f.mirrors = append(f.mirrors, ms...) }
}

// WithOffline makes the fetcher answer from the cache only; a miss is
// ErrNotCached. Default: false.
func WithOffline(offline bool) Option { return func(f *Fetcher) { f.offline = offline } }

// WithRetries sets how many times a failed download is retried after the
// first attempt (5xx, 429, timeouts, connection resets and truncated bodies
// only; never 4xx or a checksum mismatch). Default: DefaultRetries (4).
func WithRetries(n int) Option { return func(f *Fetcher) { f.retries = n } }

// WithBackoff sets the delay before the first retry. Each further retry
// doubles it, with random jitter in [d/2, d], capped at one minute; a
// server's Retry-After is honoured (also capped at one minute) when it is
// longer. Default: DefaultBackoff (500 ms).
func WithBackoff(base time.Duration) Option { return func(f *Fetcher) { f.backoff = base } }

// WithMaxSize caps the size of one download in bytes; larger responses fail
// with ErrTooLarge. Default: DefaultMaxSize (4 GiB).
func WithMaxSize(n int64) Option { return func(f *Fetcher) { f.maxSize = n } }

// WithStallTimeout abandons an attempt that receives no byte for d, while
// waiting for the response or in the middle of the body; the attempt is
// retried like a timeout (ErrStalled when the retries are used up).
// Default: DefaultStallTimeout (60 s).
func WithStallTimeout(d time.Duration) Option { return func(f *Fetcher) { f.stall = d } }

// WithTimeout bounds one Fetch, every attempt and backoff included.
// Default: DefaultTimeout (1 h).
func WithTimeout(d time.Duration) Option { return func(f *Fetcher) { f.timeout = d } }

// WithFileSources lets source URLs that no mirror rewrote use file://, i.e.
// read any local file the recipe or lock names. Without it only a mirror
// (WithMirrors, whose To is file://) reads local files, and only inside the
// mirror's directory. Default: false.
func WithFileSources(allow bool) Option { return func(f *Fetcher) { f.fileSources = allow } }

// WithProgress reports downloads to p: Op "download", Name the request URL,
// Finished on the last event, Skipped on a cache hit. Default: nil (silent).
func WithProgress(p progress.Func) Option { return func(f *Fetcher) { f.progress = p } }

// Fetcher downloads Requests into its cache. It is safe for concurrent use.
type Fetcher struct {
	cacheDir string
	client   *http.Client
	mirrors  []Mirror
	offline  bool
	retries  int
	backoff  time.Duration
	maxSize  int64
	progress progress.Func

	stall       time.Duration
	timeout     time.Duration
	fileSources bool
}

// New returns a Fetcher configured by opts.
func New(opts ...Option) (*Fetcher, error) {
	f := &Fetcher{retries: DefaultRetries, backoff: DefaultBackoff, maxSize: DefaultMaxSize, stall: DefaultStallTimeout, timeout: DefaultTimeout}
	for _, o := range opts {
		o(f)
	}
	if f.cacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		f.cacheDir = dir
	}
	if f.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 60 * time.Second
		f.client = &http.Client{Transport: t}
	}
	if f.retries < 0 {
		return nil, fmt.Errorf("retries %d: must not be negative", f.retries)
	}
	if f.backoff < 0 {
		return nil, fmt.Errorf("backoff %s: must not be negative", f.backoff)
	}
	if f.stall <= 0 || f.timeout <= 0 {
		return nil, fmt.Errorf("stall timeout %s, timeout %s: must be positive", f.stall, f.timeout)
	}
	if f.maxSize <= 0 {
		return nil, fmt.Errorf("max size %d: must be positive", f.maxSize)
	}
	for _, m := range f.mirrors {
		if m.From == "" || m.To == "" {
			return nil, fmt.Errorf("mirror %q=%q: both sides are required", m.From, m.To)
		}
		if _, err := mirrorRoot(m.To); err != nil {
			return nil, fmt.Errorf("mirror %q=%q: %w", m.From, m.To, err)
		}
	}
	// Longest From first, so the first match is the longest prefix.
	sort.SliceStable(f.mirrors, func(i, j int) bool { return len(f.mirrors[i].From) > len(f.mirrors[j].From) })
	return f, nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/prebake, or ~/.cache/prebake.
func DefaultCacheDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "prebake"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "prebake"), nil
}

// CacheDir returns the cache directory in use.
func (f *Fetcher) CacheDir() string { return f.cacheDir }

func (f *Fetcher) blobDir() string { return filepath.Join(f.cacheDir, "sources", "sha256") }

// Path returns where the blob with the given digest lives in the cache and
// whether it is there.
func (f *Fetcher) Path(sha256 string) (string, bool) {
	if !validHex(sha256) {
		return "", false
	}
	p := filepath.Join(f.blobDir(), sha256)
	fi, err := os.Stat(p)
	return p, err == nil && fi.Mode().IsRegular()
}

// Location is where a source URL is read from.
type Location struct {
	// URL is the cleaned source URL after the longest matching mirror
	// rewrote it.
	URL string
	// Mirrored reports whether a mirror applied.
	Mirrored bool

	root, name string // file URLs: the directory the file must stay in, and its name there
}

// Locate parses and cleans u (dot segments removed, so that "..", also
// percent-encoded, cannot climb out of a mirror), applies the longest
// mirror whose From is a prefix of it at a path boundary, and checks that
// the result stays under the mirror's root. A file:// result is allowed only
// through a mirror (read inside the mirror's directory, symlinks followed
// but contained) or with WithFileSources.
func (f *Fetcher) Locate(u string) (Location, error) {
	cu, err := cleanURL(u)
	if err != nil {
		return Location{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	for _, m := range f.mirrors {
		if !strings.HasPrefix(cu.String(), m.From) {
			continue
		}
		rest := cu.String()[len(m.From):]
		if !strings.HasSuffix(m.From, "/") && rest != "" && !strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "?") {
			continue // https://dl.k8s.io must not match https://dl.k8s.io.example.com
		}
		root, _ := mirrorRoot(m.To)
		ru, err := cleanURL(m.To + rest)
		if err != nil {
			return Location{}, fmt.Errorf("%w: %s through mirror %s: %v", ErrInvalidRequest, u, m.To, err)
		}
		if ru.Scheme != root.Scheme || ru.Host != root.Host || (ru.Path != root.Path && !strings.HasPrefix(ru.Path, strings.TrimSuffix(root.Path, "/")+"/")) {
			return Location{}, fmt.Errorf("%w: %s rewritten to %s, outside mirror %s", ErrOutsideMirror, u, ru, m.To)
		}
		loc := Location{URL: ru.String(), Mirrored: true}
		if ru.Scheme == "file" {
			base := strings.TrimSuffix(root.Path, "/")
			if base == "" {
				base = "/"
			}
			loc.root = filepath.FromSlash(base)
			loc.name = strings.TrimPrefix(strings.TrimPrefix(ru.Path, base), "/")
			if loc.name == "" {
				return Location{}, fmt.Errorf("%w: %s rewritten to the mirror directory %s itself", ErrInvalidRequest, u, ru)
			}
		}
		return loc, nil
	}
	if cu.Scheme == "file" && !f.fileSources {
		return Location{}, fmt.Errorf("%w: %s: a file:// source reads the build machine's files; serve it through a mirror (--mirror FROM=file:///DIR/) or allow it explicitly (--allow-file-sources)", ErrFileSource, u)
	}
	return Location{URL: cu.String()}, nil
}

// cleanURL parses an http, https or file URL and removes dot segments
// from its path (after percent-decoding). A file URL must be file:///path.
func cleanURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%q has no host", raw)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URL with host %q (want file:///path)", u.Host)
		}
		if u.Opaque != "" || !path.IsAbs(u.Path) {
			return nil, fmt.Errorf("file URL %q has no absolute path (want file:///path)", raw)
		}
		u.Host = ""
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q (want http, https or file)", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("%q is not a hierarchical URL", raw)
	}
	u.Fragment, u.RawFragment = "", ""
	p := u.Path
	if p == "" {
		p = "/"
	}
	clean := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != u.Path {
		// Re-encoded from the cleaned path: "%2e%2e" and "..%2f" are gone.
		u.Path, u.RawPath = clean, ""
	}
	return u, nil
}

// mirrorRoot parses a mirror's To: the URL everything it serves must stay
// under.
func mirrorRoot(to string) (*url.URL, error) {
	u, err := cleanURL(to)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("mirror target %q has a query", to)
	}
	return u, nil
}

// Fetch returns the path of a cached file holding exactly the bytes of r,
// downloading and verifying them first when they are not cached. Callers must
// only read the file.
func (f *Fetcher) Fetch(ctx context.Context, r Request) (string, error) {
	if err := r.validate(); err != nil {
		return "", err
	}
	final := filepath.Join(f.blobDir(), r.SHA256)
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() {
		f.progress.Report(progress.Event{Op: "download", Name: r.URL, Done: fi.Size(), Total: fi.Size(), Finished: true, Skipped: true})
		return final, nil
	}
	if f.offline {
		return "", fmt.Errorf("fetching %s: sha256:%s %w", r.URL, r.SHA256, ErrNotCached)
	}
	loc, err := f.Locate(r.URL)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", r.URL, err)
	}
	src, mirrored := loc.URL, loc.Mirrored
	what := r.URL
	if mirrored {
		what = fmt.Sprintf("%s (mirror %s)", r.URL, src)
	}
	if err := os.MkdirAll(f.blobDir(), 0o755); err != nil {
		return "", fmt.Errorf("fetching %s: creating cache: %w", what, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, f.timeout, fmt.Errorf("%w (%s)", ErrDeadline, f.timeout))
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := f.try(ctx, r, loc, final)
		if err == nil {
			return final, nil
		}
		var ce *ChecksumError
		if errors.As(err, &ce) {
			if mirrored {
				ce.Mirror = src
			}
			return "", ce
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("fetching %s: %w", what, context.Cause(ctx))
		}
		if !retryable(err) {
			return "", fmt.Errorf("fetching %s: %w", what, err)
		}
		if attempt >= f.retries {
			return "", fmt.Errorf("fetching %s: giving up after %d attempts: %w", what, attempt+1, err)
		}
		if err := sleep(ctx, f.delay(attempt, err)); err != nil {
			return "", fmt.Errorf("fetching %s: %w", what, context.Cause(ctx))
		}
	}
}

// FetchAll fetches rs with up to jobs downloads at a time (DefaultJobs when
// jobs <= 0). Requests with the same sha256 are downloaded once: their URLs
// are tried in order until one succeeds. The returned paths are in the order
// of rs ("" for a failed request); the error joins every failure.
func (f *Fetcher) FetchAll(ctx context.Context, rs []Request, jobs int) ([]string, error) {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	type group struct {
		idx  []int
		path string
		err  error
	}
	var groups []*group
	bySHA := map[string]*group{}
	for i, r := range rs {
		if err := r.validate(); err != nil {
			groups = append(groups, &group{idx: []int{i}, err: err})
			continue
		}
		g := bySHA[r.SHA256]
		if g == nil {
			g = &group{}
			bySHA[r.SHA256] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	// Each group keeps its own error (all are joined), so the goroutines
	// return nil and eg only bounds the concurrency.
	var eg errgroup.Group
	eg.SetLimit(jobs)
	for _, g := range groups {
		if g.err != nil {
			continue
		}
		eg.Go(func() error {
			if err := ctx.Err(); err != nil {
				g.err = fmt.Errorf("fetching %s: %w", rs[g.idx[0]].URL, err)
				return nil
			}
			tried := map[string]bool{}
			var errs []error
			for _, i := range g.idx {
				if tried[rs[i].URL] {
					continue
				}
				tried[rs[i].URL] = true
				p, err := f.Fetch(ctx, rs[i])
				if err == nil {
					g.path, errs = p, nil
					break
				}
				errs = append(errs, err)
				if ctx.Err() != nil {
					break
				}
			}
			g.err = errors.Join(errs...)
			return nil
		})
	}
	eg.Wait()
	paths := make([]string, len(rs))
	var errs []error
	for _, g := range groups {
		if g.err != nil {
			errs = append(errs, g.err)
			continue
		}
		for _, i := range g.idx {
			paths[i] = g.path
		}
	}
	return paths, errors.Join(errs...)
}

func (r Request) validate() error {
	if r.URL == "" {
		return fmt.Errorf("%w: empty URL", ErrInvalidRequest)
	}
	if !validHex(r.SHA256) {
		return fmt.Errorf("%w: %s: sha256 %q is not 64 lowercase hex characters", ErrInvalidRequest, r.URL, r.SHA256)
	}
	return nil
}

func validHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// try makes one attempt: download src into a temporary file next to final,
// verify it and rename it into place. The temporary file is gone when it
// returns, whatever happened.
func (f *Fetcher) try(ctx context.Context, r Request, loc Location, final string) (err error) {
	// A watchdog cancels the attempt when no byte arrives for f.stall,
	// before the headers or in the middle of the body.
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("%w: no data for %s", ErrStalled, f.stall)
	watchdog := time.AfterFunc(f.stall, func() { cancel(stalled) })
	defer watchdog.Stop()
	defer func() {
		if err != nil && context.Cause(actx) == stalled && ctx.Err() == nil {
			err = stalled
		}
	}()

	limit := f.maxSize
	if r.Size > 0 {
		limit = min(limit, r.Size)
	}
	body, total, err := f.open(actx, loc, limit)
	if err != nil {
		if r.Size > 0 && limit == r.Size && errors.Is(err, ErrTooLarge) {
			err = fmt.Errorf("%w (the lock expects %d bytes): %w", ErrSizeMismatch, r.Size, err)
		}
		return err
	}
	defer body.Close()
	if r.Size > 0 && total > 0 && total != r.Size {
		return fmt.Errorf("%w: %d bytes, the lock expects %d", ErrSizeMismatch, total, r.Size)
	}

	tmp, err := os.CreateTemp(filepath.Dir(final), ".tmp-"+r.SHA256[:16]+"-*")
	if err != nil {
		return fmt.Errorf("creating cache file: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	var done int64
	defer func() {
		f.progress.Report(progress.Event{Op: "download", Name: r.URL, Done: done, Total: total, Finished: true})
	}()
	h := sha256.New()
	in := f.progress.Reader(&kickReader{r: io.LimitReader(body, limit+1), t: watchdog, d: f.stall}, "download", r.URL, total)
	done, err = copyHashing(tmp, h, in)
	if err != nil {
		return err
	}
	if done > limit {
		if r.Size > 0 && limit == r.Size {
			return fmt.Errorf("%w: more than the %d bytes the lock expects", ErrSizeMismatch, r.Size)
		}
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if r.Size > 0 && done != r.Size {
		return fmt.Errorf("%w: %d bytes, the lock expects %d", ErrSizeMismatch, done, r.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
		return &ChecksumError{URL: r.URL, Expected: r.SHA256, Actual: got}
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("writing cache file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing cache file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing cache file: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("writing cache file: %w", err)
	}
	renamed = true
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("writing cache file: %w", err)
	}
	return nil
}

// writeError marks a failure writing the cache file (not worth retrying),
// as opposed to a failure reading the download.
type writeError struct{ err error }

func (e writeError) Error() string { return "writing cache file: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// copyHashing copies src to dst and h, telling read errors from write errors.
func copyHashing(dst *os.File, h hash.Hash, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			h.Write(buf[:nr])
			if _, werr := dst.Write(buf[:nr]); werr != nil {
				return n, writeError{werr}
			}
			n += int64(nr)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// kickReader pushes the stall watchdog back whenever bytes arrive.
type kickReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.t.Reset(k.d)
	}
	return n, err
}

// open starts reading loc and returns its body and size (0 when unknown).
// limit is the most bytes the caller accepts.
func (f *Fetcher) open(ctx context.Context, loc Location, limit int64) (io.ReadCloser, int64, error) {
	src := loc.URL
	u, err := url.Parse(src)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	switch u.Scheme {
	case "file":
		fh, err := f.OpenLocal(loc)
		if err != nil {
			return nil, 0, err
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, 0, err
		}
		if fi.Size() > limit {
			fh.Close()
			return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, fi.Size(), limit)
		}
		return &ctxReader{ctx: ctx, ReadCloser: fh}, fi.Size(), nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		// Identity: hash the bytes the server stores, never a transparently
		// decompressed variant.
		req.Header.Set("Accept-Encoding", "identity")
		req.Header.Set("User-Agent", "prebake")
		resp, err := f.client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL is already in the caller's context
			}
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return nil, 0, &StatusError{URL: src, Code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		if resp.ContentLength > limit {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("%w: Content-Length %d, limit %d", ErrTooLarge, resp.ContentLength, limit)
		}
		total := resp.ContentLength
		if total < 0 {
			total = 0
		}
		return resp.Body, total, nil
	default:
		return nil, 0, fmt.Errorf("%w: unsupported URL scheme %q (want http, https or file)", ErrInvalidRequest, u.Scheme)
	}
}

// OpenLocal opens a file:// Location: inside its mirror's directory (the
// containment rule of internal/safepath: symlinks followed, never out of
// it), or anywhere when it came from an unmirrored source allowed by
// WithFileSources. The caller closes the file.
func (f *Fetcher) OpenLocal(loc Location) (*os.File, error) {
	u, err := url.Parse(loc.URL)
	if err != nil || u.Scheme != "file" {
		return nil, fmt.Errorf("%w: %s is not a file URL", ErrInvalidRequest, loc.URL)
	}
	if loc.root != "" {
		fh, err := safepath.Open(loc.root, loc.name)
		var esc *safepath.EscapeError
		if errors.As(err, &esc) {
			return nil, fmt.Errorf("%w: %s resolves to %s", ErrOutsideMirror, loc.URL, esc.Target)
		}
		return fh, err
	}
	if !f.fileSources {
		return nil, fmt.Errorf("%w: %s", ErrFileSource, loc.URL)
	}
	fh, err := os.Open(filepath.FromSlash(u.Path))
	if err != nil {
		return nil, err
	}
	if fi, err := fh.Stat(); err != nil || !fi.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%s is not a regular file", u.Path)
	}
	return fh, nil
}

// ctxReader stops a local file copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	io.ReadCloser
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadCloser.Read(p)
}

// retryable reports whether err is a transient failure worth another attempt.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var we writeError
	if errors.As(err, &we) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrChecksumMismatch) ||
		errors.Is(err, ErrSizeMismatch) || errors.Is(err, ErrOutsideMirror) || errors.Is(err, ErrFileSource) {
		return false
	}
	if errors.Is(err, ErrStalled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// delay is the wait before retry number attempt+1: exponential backoff with
// jitter, at least the server's Retry-After, at most maxDelay.
func (f *Fetcher) delay(attempt int, err error) time.Duration {
	d := f.backoff
	for i := 0; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	var se *StatusError
	if errors.As(err, &se) && se.retryAfter > d {
		d = min(se.retryAfter, maxDelay)
	}
	return d
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, int(maxDelay/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
