// Package bootstrap issues and serves one-time bootstrap documents
// (`prebake render --bootstrap-url`, served by `prebake serve --bootstrap-dir
// DIR` under /bootstrap/). It is apart from registry/server so that render
// links no registry server.
//
// The user-data a cloud provider stores in instance metadata then holds only
// a URL with a random token; the real join document (with the kubeadm
// bootstrap token) is fetched once, at boot, and the token is spent. Records
// live in DIR (0700) as one 0600 file per token, named by the SHA-256 of the
// token, so neither the directory listing nor a file reveals a usable token.
// Nothing here logs; callers must not log request paths under /bootstrap/
// either (RedactPath).
package bootstrap

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrDir: the bootstrap directory cannot be used (not a
	// directory, or readable by other users).
	ErrDir = errors.New("invalid bootstrap directory")
	// ErrTTL: a token lifetime that is not positive or over
	// MaxTTL.
	ErrTTL = errors.New("invalid bootstrap token lifetime")
)

// MaxTTL caps a bootstrap token's lifetime.
const MaxTTL = 7 * 24 * time.Hour

// MaxDocument caps the size of a document behind a token.
const MaxDocument = 1 << 20

const (
	bootstrapPrefix = "/bootstrap"
	recordSuffix    = ".json"
	claimInfix      = ".claimed-"
	tokenBytes      = 32
)

// Option configures NewHandler and Issue.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock that issues and checks expiry.
// Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

func makeOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// record is one token's file.
type record struct {
	Expires     time.Time `json:"expires"`
	ContentType string    `json:"contentType"`
	Document    []byte    `json:"document"` // base64 in JSON
}

// Issue stores doc in dir behind a new random token that can
// be used once, until ttl has passed, and returns the token (43 URL-safe
// characters). The record is written 0600, durably (temp file, fsync,
// rename, directory fsync). The caller must treat the token as a secret.
func Issue(dir string, doc []byte, ttl time.Duration, opts ...Option) (string, error) {
	o := makeOptions(opts)
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("%w: %s (want more than 0, at most %s)", ErrTTL, ttl, MaxTTL)
	}
	if len(doc) > MaxDocument {
		return "", fmt.Errorf("bootstrap document is %d bytes, over the %d byte limit", len(doc), MaxDocument)
	}
	if err := prepareDir(dir); err != nil {
		return "", err
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating bootstrap token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	rec := record{
		Expires:     o.now().Add(ttl).UTC(),
		ContentType: sniffContentType(doc),
		Document:    doc,
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encoding bootstrap record: %w", err)
	}
	if err := writeFileDurable(dir, recordName(token), data); err != nil {
		return "", err
	}
	sweep(dir, o.now())
	return token, nil
}

// NewHandler serves the documents Issue stored in
// dir: GET /bootstrap/TOKEN (or GET /TOKEN when mounted with the prefix
// stripped) answers the document once and deletes it; a second use gets 404,
// an expired token 410. It creates dir (0700) if needed and refuses a
// directory other users can read.
func NewHandler(dir string, opts ...Option) (http.Handler, error) {
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	o := makeOptions(opts)
	sweep(dir, o.now())
	return &handler{dir: dir, now: o.now}, nil
}

type handler struct {
	dir string
	now func() time.Time
}

// RedactPath returns p with a bootstrap token replaced, for logs.
func RedactPath(p string) string {
	if p == bootstrapPrefix || strings.HasPrefix(p, bootstrapPrefix+"/") {
		return bootstrapPrefix + "/REDACTED"
	}
	return p
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		// HEAD would either spend the token or reveal that it exists.
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token := strings.TrimPrefix(r.URL.Path, bootstrapPrefix)
	token = strings.TrimPrefix(token, "/")
	if !validToken(token) {
		http.Error(w, "unknown or already used bootstrap token", http.StatusNotFound)
		return
	}
	rec, err := h.claim(token)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.Error(w, "unknown or already used bootstrap token", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "bootstrap record unreadable", http.StatusInternalServerError)
		return
	}
	if !h.now().Before(rec.Expires) {
		http.Error(w, "bootstrap token expired", http.StatusGone)
		return
	}
	w.Header().Set("Content-Type", rec.ContentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(rec.Document)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec.Document)
}

// claim atomically takes the record for token: the rename succeeds for one
// request only, however many race. The record is deleted before it is
// answered, so a crash never leaves a token usable twice.
func (h *handler) claim(token string) (*record, error) {
	name := recordName(token)
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	claimed := filepath.Join(h.dir, name+claimInfix+hex.EncodeToString(suffix))
	if err := os.Rename(filepath.Join(h.dir, name), claimed); err != nil {
		return nil, err
	}
	data, readErr := os.ReadFile(claimed)
	if err := os.Remove(claimed); err != nil {
		return nil, err
	}
	if err := syncDir(h.dir); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decoding bootstrap record: %w", err)
	}
	return &rec, nil
}

func validToken(t string) bool {
	if len(t) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil
}

func recordName(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]) + recordSuffix
}

func sniffContentType(doc []byte) string {
	switch {
	case len(doc) >= 2 && doc[0] == 0x1f && doc[1] == 0x8b:
		return "application/gzip"
	case strings.HasPrefix(string(doc), "#cloud-config"):
		return "text/cloud-config"
	case strings.HasPrefix(string(doc), "Content-Type: multipart/"):
		return "multipart/mixed"
	case strings.HasPrefix(string(doc), "{"):
		return "application/vnd.coreos.ignition+json"
	}
	return "application/octet-stream"
}

// prepareDir creates dir 0700 or checks an existing one.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrDir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrDir, dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %o; other users must not read bootstrap documents (chmod 700 %s)", ErrDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// sweep removes expired records and claims a crash left behind.
// Failures are ignored: the next sweep tries again, and an expired record
// is refused when presented anyway.
func sweep(dir string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.Contains(name, claimInfix), strings.HasPrefix(name, ".tmp-"):
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > time.Minute {
				_ = os.Remove(p)
			}
		case strings.HasSuffix(name, recordSuffix):
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			var rec record
			if json.Unmarshal(data, &rec) == nil && !now.Before(rec.Expires) {
				_ = os.Remove(p)
			}
		}
	}
}

// writeFileDurable writes dir/name with mode 0600: temp file, fsync, rename,
// directory fsync.
func writeFileDurable(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("writing bootstrap record: %w", err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir fsyncs a directory so renames and removals in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
