package server

// One-time bootstrap documents (`prebake render --bootstrap-url`, served by
// `prebake serve --bootstrap-dir DIR` under /bootstrap/).
//
// The user-data a cloud provider stores in instance metadata then holds only
// a URL with a random token; the real join document (with the kubeadm
// bootstrap token) is fetched once, at boot, and the token is spent. Records
// live in DIR (0700) as one 0600 file per token, named by the SHA-256 of the
// token, so neither the directory listing nor a file reveals a usable token.
// Nothing here logs; callers must not log request paths under /bootstrap/
// either (RedactBootstrapPath).

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

// Bootstrap sentinel errors (with the package's others; kept beside the
// feature they belong to).
var (
	// ErrBootstrapDir: the bootstrap directory cannot be used (not a
	// directory, or readable by other users).
	ErrBootstrapDir = errors.New("invalid bootstrap directory")
	// ErrBootstrapTTL: a token lifetime that is not positive or over
	// MaxBootstrapTTL.
	ErrBootstrapTTL = errors.New("invalid bootstrap token lifetime")
)

// MaxBootstrapTTL caps a bootstrap token's lifetime.
const MaxBootstrapTTL = 7 * 24 * time.Hour

// MaxBootstrapDocument caps the size of a document behind a token.
const MaxBootstrapDocument = 1 << 20

const (
	bootstrapPrefix = "/bootstrap"
	recordSuffix    = ".json"
	claimInfix      = ".claimed-"
	tokenBytes      = 32
)

// BootstrapOption configures NewBootstrapHandler and IssueBootstrapToken.
type BootstrapOption func(*bootstrapOptions)

type bootstrapOptions struct {
	now func() time.Time
}

// WithBootstrapClock sets the clock that issues and checks expiry.
// Default: time.Now.
func WithBootstrapClock(now func() time.Time) BootstrapOption {
	return func(o *bootstrapOptions) { o.now = now }
}

func bootstrapOpts(opts []BootstrapOption) bootstrapOptions {
	o := bootstrapOptions{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// bootstrapRecord is one token's file.
type bootstrapRecord struct {
	Expires     time.Time `json:"expires"`
	ContentType string    `json:"contentType"`
	Document    []byte    `json:"document"` // base64 in JSON
}

// IssueBootstrapToken stores doc in dir behind a new random token that can
// be used once, until ttl has passed, and returns the token (43 URL-safe
// characters). The record is written 0600, durably (temp file, fsync,
// rename, directory fsync). The caller must treat the token as a secret.
func IssueBootstrapToken(dir string, doc []byte, ttl time.Duration, opts ...BootstrapOption) (string, error) {
	o := bootstrapOpts(opts)
	if ttl <= 0 || ttl > MaxBootstrapTTL {
		return "", fmt.Errorf("%w: %s (want more than 0, at most %s)", ErrBootstrapTTL, ttl, MaxBootstrapTTL)
	}
	if len(doc) > MaxBootstrapDocument {
		return "", fmt.Errorf("bootstrap document is %d bytes, over the %d byte limit", len(doc), MaxBootstrapDocument)
	}
	if err := prepareBootstrapDir(dir); err != nil {
		return "", err
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating bootstrap token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	rec := bootstrapRecord{
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
	sweepBootstrap(dir, o.now())
	return token, nil
}

// NewBootstrapHandler serves the documents IssueBootstrapToken stored in
// dir: GET /bootstrap/TOKEN (or GET /TOKEN when mounted with the prefix
// stripped) answers the document once and deletes it; a second use gets 404,
// an expired token 410. It creates dir (0700) if needed and refuses a
// directory other users can read.
func NewBootstrapHandler(dir string, opts ...BootstrapOption) (http.Handler, error) {
	if err := prepareBootstrapDir(dir); err != nil {
		return nil, err
	}
	o := bootstrapOpts(opts)
	sweepBootstrap(dir, o.now())
	return &bootstrapHandler{dir: dir, now: o.now}, nil
}

type bootstrapHandler struct {
	dir string
	now func() time.Time
}

// RedactBootstrapPath returns p with a bootstrap token replaced, for logs.
func RedactBootstrapPath(p string) string {
	if p == bootstrapPrefix || strings.HasPrefix(p, bootstrapPrefix+"/") {
		return bootstrapPrefix + "/REDACTED"
	}
	return p
}

func (h *bootstrapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
func (h *bootstrapHandler) claim(token string) (*bootstrapRecord, error) {
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
	if err := syncBootstrapDir(h.dir); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	var rec bootstrapRecord
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

// prepareBootstrapDir creates dir 0700 or checks an existing one.
func prepareBootstrapDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrBootstrapDir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBootstrapDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrBootstrapDir, dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %o; other users must not read bootstrap documents (chmod 700 %s)", ErrBootstrapDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// sweepBootstrap removes expired records and claims a crash left behind.
// Failures are ignored: the next sweep tries again, and an expired record
// is refused when presented anyway.
func sweepBootstrap(dir string, now time.Time) {
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
			var rec bootstrapRecord
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
	return syncBootstrapDir(dir)
}

// syncBootstrapDir fsyncs a directory so renames and removals in it are durable.
func syncBootstrapDir(dir string) error {
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
