package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"

	"github.com/prebake/prebake/internal/atomicfile"
)

// Server is an OCI distribution registry over the directory root. It is an
// http.Handler; Serve runs it on a listener. See the package doc for what it
// adds to olareg.
type Server struct {
	root    string
	log     *slog.Logger
	delete  bool
	auth    *htpasswd
	anonRO  bool
	tls     *tls.Config
	locks   repoLock
	uploads *olareg.Server // long-lived: upload sessions live in its memory
	upRoot  string         // its private root, see prepareUploads
	upLock  *os.File       // flock held while this process owns upRoot
	upRepos sync.Map       // repo -> *sync.Once preparing upRoot/<repo>
	extra   http.Handler   // mounted under /bootstrap/ when set
	closed  sync.Once
}

type options struct {
	log      *slog.Logger
	delete   bool
	htpasswd string
	anonPull bool
	tlsCert  string
	tlsKey   string

	bootstrapDir string
}

// Option configures New.
type Option func(*options)

// WithLogger logs requests (debug) and server-side failures (error) to l.
// Default: discard everything.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithDelete enables the DELETE endpoints for manifests, tags and blobs.
// Default: disabled (405 Method Not Allowed), as a release registry should
// only grow; `prebake gc` still reclaims unreferenced blobs.
func WithDelete(enabled bool) Option { return func(o *options) { o.delete = enabled } }

// WithHtpasswd requires HTTP basic authentication against file, an Apache
// htpasswd file with bcrypt entries (`htpasswd -B`). Any valid user may pull
// and push. Default: no authentication, everyone may pull and push.
func WithHtpasswd(file string) Option { return func(o *options) { o.htpasswd = file } }

// WithAnonymousPull lets requests without credentials pull (GET and HEAD)
// when WithHtpasswd is set; pushes and deletes still need a valid user.
// Wrong credentials are refused either way. Default: false.
func WithAnonymousPull(enabled bool) Option { return func(o *options) { o.anonPull = enabled } }

// WithTLS makes Serve speak HTTPS with the PEM certificate and key files.
// Default: plain HTTP (fine on loopback, nowhere else).
func WithTLS(certFile, keyFile string) Option {
	return func(o *options) { o.tlsCert, o.tlsKey = certFile, keyFile }
}

// WithBootstrapDir serves the one-time bootstrap documents in dir (see
// NewBootstrapHandler) under /bootstrap/, outside htpasswd authentication:
// the token in the URL is the credential. Default: no /bootstrap/ endpoint.
func WithBootstrapDir(dir string) Option { return func(o *options) { o.bootstrapDir = dir } }

// New opens (creating if needed) the store at root and returns its server.
// Close it when done.
func New(root string, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if root == "" {
		return nil, fmt.Errorf("%w: empty path", ErrRoot)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRoot, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, metaDir, "uploads"), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRoot, err)
	}
	s := &Server{root: abs, log: o.log, delete: o.delete, anonRO: o.anonPull, locks: repoLock{locks: map[string]*sync.Mutex{}}}
	if o.htpasswd != "" {
		if s.auth, err = loadHtpasswd(o.htpasswd); err != nil {
			return nil, err
		}
	} else if o.anonPull {
		return nil, errors.New("anonymous pull needs an htpasswd file: without one every request is anonymous and may push")
	}
	if o.tlsCert != "" || o.tlsKey != "" {
		if o.tlsCert == "" || o.tlsKey == "" {
			return nil, errors.New("tls needs both a certificate and a key file")
		}
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("loading tls key pair %s, %s: %w", o.tlsCert, o.tlsKey, err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if o.bootstrapDir != "" {
		if s.extra, err = NewBootstrapHandler(o.bootstrapDir); err != nil {
			return nil, err
		}
	}
	// The upload instance gets a private root per process, locked while the
	// process lives so gc can tell abandoned ones.
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	s.upRoot = filepath.Join(abs, metaDir, "uploads", hex.EncodeToString(rnd[:]))
	if err := os.MkdirAll(s.upRoot, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRoot, err)
	}
	if s.upLock, err = os.OpenFile(filepath.Join(s.upRoot, ".owner"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRoot, err)
	}
	if err := syscall.Flock(int(s.upLock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		s.upLock.Close()
		return nil, fmt.Errorf("%w: locking %s: %v", ErrRoot, s.upRoot, err)
	}
	s.uploads = olareg.New(s.olaregConfig(s.upRoot, false))
	return s, nil
}

// olaregConfig is the configuration of every olareg instance: olareg's own
// garbage collection is off (it would run unlocked and without a grace
// period on Close), prebake's GC replaces it.
func (s *Server) olaregConfig(root string, readOnly bool) config.Config {
	t, f := true, false
	del := s.delete
	return config.Config{
		Log: s.log,
		Storage: config.ConfigStorage{
			StoreType: config.StoreDir,
			RootDir:   root,
			ReadOnly:  &readOnly,
			GC: config.ConfigGC{
				Frequency:         -1,
				GracePeriod:       -1,
				Untagged:          &f,
				EmptyRepo:         &f,
				ReferrersDangling: &f,
				ReferrersWithSubj: &f,
			},
		},
		API: config.ConfigAPI{
			PushEnabled:   &t,
			DeleteEnabled: &del,
			Blob:          config.ConfigAPIBlob{DeleteEnabled: &del},
			Referrer:      config.ConfigAPIReferrer{Enabled: &t, PageCacheExpire: -1},
		},
	}
}

// Close ends the upload sessions of this server and releases its resources.
// It does not touch committed content.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		// olareg's Close garbage-collects the repositories it knows: here
		// only the private root, which holds no committed content.
		err = s.uploads.Close()
		os.RemoveAll(s.upRoot)
		s.upLock.Close()
	})
	return err
}

// Serve answers requests on ln until ctx is done, then shuts down
// gracefully: it stops accepting, lets running requests finish (at most 30
// s) and closes the server. It returns nil after a graceful shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         s.tls,
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		hs.Close()
	}
	<-errc
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// route is what a request addresses.
type route struct {
	kind string // "ping", "manifest", "blob", "upload", "uploads", "tags", "referrers", ""
	repo string
	arg  string
}

func parseRoute(p string) route {
	el := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	n := len(el)
	if el[0] != "v2" {
		return route{}
	}
	if n == 1 {
		return route{kind: "ping"}
	}
	r := route{}
	switch {
	case n >= 5 && el[n-3] == "blobs" && el[n-2] == "uploads":
		r = route{kind: "uploads", repo: strings.Join(el[1:n-3], "/"), arg: el[n-1]}
	case n >= 4 && el[n-2] == "blobs" && el[n-1] == "uploads":
		r = route{kind: "upload", repo: strings.Join(el[1:n-2], "/")}
	case n >= 4 && el[n-2] == "blobs":
		r = route{kind: "blob", repo: strings.Join(el[1:n-2], "/"), arg: el[n-1]}
	case n >= 4 && el[n-2] == "manifests":
		r = route{kind: "manifest", repo: strings.Join(el[1:n-2], "/"), arg: el[n-1]}
	case n >= 4 && el[n-2] == "referrers":
		r = route{kind: "referrers", repo: strings.Join(el[1:n-2], "/"), arg: el[n-1]}
	case n >= 4 && el[n-2] == "tags" && el[n-1] == "list":
		r = route{kind: "tags", repo: strings.Join(el[1:n-2], "/")}
	default:
		return route{}
	}
	if !validRepo(r.repo) {
		return route{}
	}
	return r
}

// ServeHTTP answers one registry request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.log.Debug("request", "method", r.Method, "path", RedactBootstrapPath(r.URL.Path), "status", rec.status, "duration", time.Since(start))
	}()
	if s.extra != nil && (r.URL.Path == "/bootstrap" || strings.HasPrefix(r.URL.Path, "/bootstrap/")) {
		s.extra.ServeHTTP(rec, r)
		return
	}
	rt := parseRoute(r.URL.Path)
	if !s.authorize(rec, r, rt) {
		return
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	switch {
	case rt.kind == "upload" || rt.kind == "uploads":
		s.serveUpload(rec, r, rt)
	case write && (rt.kind == "manifest" || rt.kind == "blob"):
		s.serveCommit(rec, r, rt)
	default:
		s.serveRead(rec, r, rt)
	}
}

// serveRead answers reads from a fresh, read-only olareg over the real root,
// so it always sees the index.json on disk (olareg caches it for a second,
// which would hide other processes' and other instances' writes).
func (s *Server) serveRead(w *statusRecorder, r *http.Request, rt route) {
	olareg.New(s.olaregConfig(s.root, true)).ServeHTTP(w, r)
	// A HEAD on a blob is how a client decides to skip uploading it and
	// reference it from a manifest soon: keep it young for gc's grace period.
	if rt.kind == "blob" && r.Method == http.MethodHead && w.status == http.StatusOK && digestRE.MatchString(rt.arg) {
		now := time.Now()
		os.Chtimes(s.blobPath(rt.repo, rt.arg), now, now)
	}
}

// serveUpload runs blob upload sessions on the long-lived olareg instance
// and acknowledges a finished blob only once it is on disk for good.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method == http.MethodPost {
		if err := s.prepareUploads(rt.repo); err != nil {
			s.fail(w, r, err)
			return
		}
		q := r.URL.Query()
		if from, dig := q.Get("from"), q.Get("mount"); digestRE.MatchString(dig) && (from == "" || validRepo(from)) {
			if ok, err := s.mount(w, from, rt.repo, dig); err != nil {
				s.fail(w, r, err)
				return
			} else if ok {
				return
			}
		}
	}
	// Other methods address a session: one this process never started
	// (another process's, or from before a restart) gets olareg's
	// BLOB_UPLOAD_UNKNOWN.
	buf := newBufferedResponse()
	s.uploads.ServeHTTP(buf, r)
	if buf.status == http.StatusCreated {
		dig := buf.header.Get("Docker-Content-Digest")
		if digestRE.MatchString(dig) {
			if err := s.promote(rt.repo, dig); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	buf.flush(w)
}

// promote moves a blob olareg finished (verified against its digest) from
// the private upload root into the repository's blob store: fsync, rename,
// directory fsync. A blob's name in the real store therefore always means
// complete, durable content, even after a power loss, and a client that
// finds it with HEAD may safely skip uploading it.
func (s *Server) promote(repo, dig string) error {
	alg, enc, _ := strings.Cut(dig, ":")
	src := filepath.Join(s.upRoot, filepath.FromSlash(repo), blobsDir, alg, enc)
	dst := s.blobPath(repo, dig)
	if err := syncFile(src); err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(dst), s.root); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		// A concurrent upload of the same blob may have moved it already.
		if !errors.Is(err, fs.ErrNotExist) || !isBlob(dst) {
			return fmt.Errorf("storing blob %s in %s: %w", dig, repo, err)
		}
	}
	return s.syncBlob(repo, dig)
}

// prepareUploads makes sure repo exists on disk and has its shadow in this
// process's upload root: oci-layout, and an index.json and a blob store
// only olareg's upload instance sees (finished blobs are promoted out of
// it at once).
func (s *Server) prepareUploads(repo string) error {
	v, _ := s.upRepos.LoadOrStore(repo, &onceErr{})
	o := v.(*onceErr)
	o.once.Do(func() {
		o.err = func() error {
			if !s.repoExists(repo) {
				unlock, err := s.lock(repo)
				if err != nil {
					return err
				}
				err = s.ensureRepo(repo)
				unlock()
				if err != nil {
					return err
				}
			}
			dir := filepath.Join(s.upRoot, filepath.FromSlash(repo))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, layoutFile), []byte(layoutJSON), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, indexFile), emptyIndex, 0o644); err != nil {
				return err
			}
			return os.MkdirAll(filepath.Join(dir, blobsDir, "sha256"), 0o755)
		}()
	})
	if o.err != nil {
		return fmt.Errorf("preparing uploads to %s: %w", repo, o.err)
	}
	return nil
}

type onceErr struct {
	once sync.Once
	err  error
}

// mount links blob dig from repository from (any repository holding it
// when from is empty: an anonymous mount) into repo; blobs are immutable, so
// both names may share one file. It reports false when no source has the
// blob, and the client should upload it. Every user may read every
// repository, so a mount reveals nothing a pull would not.
func (s *Server) mount(w http.ResponseWriter, from, repo, dig string) (bool, error) {
	dst := s.blobPath(repo, dig)
	src := ""
	if from != "" {
		src = s.blobPath(from, dig)
	} else if isBlob(dst) {
		src = dst
	} else if repos, err := s.repositories(); err == nil {
		for _, r := range repos {
			if p := s.blobPath(r, dig); isBlob(p) {
				src = p
				break
			}
		}
	}
	if src == "" || !isBlob(src) {
		return false, nil
	}
	if err := mkdirAllSync(filepath.Dir(dst), s.root); err != nil {
		return false, err
	}
	if _, err := os.Stat(dst); err != nil {
		var rnd [8]byte
		rand.Read(rnd[:])
		tmp := filepath.Join(filepath.Dir(dst), ".mount-"+hex.EncodeToString(rnd[:]))
		if err := os.Link(src, tmp); err != nil {
			return false, nil
		}
		now := time.Now()
		os.Chtimes(tmp, now, now) // young before it has its name, for gc's grace period
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return false, err
		}
	}
	now := time.Now()
	os.Chtimes(dst, now, now)
	if err := s.syncBlob(repo, dig); err != nil {
		return false, err
	}
	w.Header().Set("Location", (&url.URL{Path: "/v2/" + repo + "/blobs/" + dig}).String())
	w.Header().Set("Docker-Content-Digest", dig)
	w.WriteHeader(http.StatusCreated)
	return true, nil
}

func isBlob(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// syncBlob fsyncs blob dig of repo and the directories that name it.
func (s *Server) syncBlob(repo, dig string) error {
	p := s.blobPath(repo, dig)
	if err := syncFile(p); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(filepath.Dir(p)))
}

// serveCommit runs a request that changes index.json or deletes a blob
// (manifest PUT and DELETE, blob DELETE) under the repository lock, on an
// olareg instance over a staging shadow of the repository, then commits the
// result: blobs durable first, index.json replaced atomically last. A crash
// at any point leaves the old index.json or the new, each naming only
// complete graphs.
func (s *Server) serveCommit(w http.ResponseWriter, r *http.Request, rt route) {
	var refs []string
	if r.Method == http.MethodPut && r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
		if err != nil {
			s.fail(w, r, fmt.Errorf("reading manifest: %w", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var m indexJSON
		if json.Unmarshal(b, &m) == nil {
			for _, d := range m.children() {
				refs = append(refs, d.Digest)
			}
		}
	}
	unlock, err := s.lock(rt.repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer unlock()
	if r.Method != http.MethodPut {
		if !s.delete {
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "deletes are disabled on this registry")
			return
		}
		if !s.repoExists(rt.repo) {
			writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository does not exist")
			return
		}
	}
	if err := s.ensureRepo(rt.repo); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.newStaging(rt.repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer st.remove()
	buf := newBufferedResponse()
	olareg.New(s.olaregConfig(st.root, false)).ServeHTTP(buf, r)
	if buf.status >= 200 && buf.status < 300 {
		var written []string
		if dig := buf.header.Get("Docker-Content-Digest"); dig != "" && r.Method == http.MethodPut {
			written = append(written, dig)
		}
		if _, err := s.commit(rt.repo, st, written, refs); err != nil {
			s.fail(w, r, err)
			return
		}
		if r.Method == http.MethodDelete && rt.kind == "blob" && digestRE.MatchString(rt.arg) {
			if err := atomicfile.SyncDir(filepath.Dir(s.blobPath(rt.repo, rt.arg))); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	buf.flush(w)
}

// fail answers 500 for a server-side problem and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "UNKNOWN", "internal error: storage failure")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// statusRecorder passes everything through and remembers the status.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy's sendfile path for blob downloads.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(r.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// bufferedResponse holds a (small) response until the change it reports is
// durable.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse { return &bufferedResponse{header: http.Header{}} }

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
