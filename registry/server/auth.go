package server

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd holds the users of an Apache htpasswd file (bcrypt entries only).
type htpasswd struct {
	users map[string][]byte

	// ok remembers recently verified credentials (by a salted hash) for a
	// few minutes: a push is dozens of requests, and each bcrypt check costs
	// tens of milliseconds of CPU.
	mu   sync.Mutex
	salt [16]byte
	ok   map[[32]byte]time.Time
}

const authCacheTTL = 5 * time.Minute

// loadHtpasswd reads file, reporting every bad line as file:line.
func loadHtpasswd(file string) (*htpasswd, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHtpasswd, err)
	}
	defer f.Close()
	h := &htpasswd{users: map[string][]byte{}, ok: map[[32]byte]time.Time{}}
	rand.Read(h.salt[:])
	var problems []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			problems = append(problems, fmt.Sprintf("%s:%d: expected user:hash", file, n))
		case !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$"):
			problems = append(problems, fmt.Sprintf("%s:%d: user %q: unsupported hash, expected bcrypt ($2y$, from htpasswd -B)", file, n, user))
		default:
			if _, err := bcrypt.Cost([]byte(hash)); err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: user %q: %v", file, n, user, err))
				continue
			}
			h.users[user] = []byte(hash)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrHtpasswd, file, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrHtpasswd, strings.Join(problems, "\n  "))
	}
	if len(h.users) == 0 {
		return nil, fmt.Errorf("%w: %s: no users", ErrHtpasswd, file)
	}
	return h, nil
}

// check reports whether user and pass match an entry; it spends a bcrypt
// comparison on unknown users too, so timing does not reveal who exists.
func (h *htpasswd) check(user, pass string) bool {
	hash, ok := h.users[user]
	if !ok {
		hash = dummyHash()
	}
	sum := sha256.New()
	sum.Write(h.salt[:])
	sum.Write([]byte(user + "\x00" + pass + "\x00"))
	sum.Write(hash)
	var key [32]byte
	copy(key[:], sum.Sum(nil))
	h.mu.Lock()
	t, cached := h.ok[key]
	h.mu.Unlock()
	if cached && time.Since(t) < authCacheTTL {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil || !ok {
		return false
	}
	h.mu.Lock()
	if len(h.ok) >= 1024 {
		clear(h.ok)
	}
	h.ok[key] = time.Now()
	h.mu.Unlock()
	return true
}

// dummyHash is a bcrypt hash nobody knows the password of, compared against
// when the user is unknown.
var dummyHash = sync.OnceValue(func() []byte {
	var rnd [16]byte
	rand.Read(rnd[:])
	h, _ := bcrypt.GenerateFromPassword(rnd[:], bcrypt.DefaultCost)
	return h
})

// authorize lets the request through or answers 401. Without an htpasswd
// file everything is allowed. With one, a valid user may do anything;
// without credentials only reads of repositories are allowed, and only when
// anonymous pull is on (the /v2/ ping answers 401 so clients learn that
// credentials are accepted); wrong credentials are always refused.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt route) bool {
	if s.auth == nil {
		return true
	}
	user, pass, hasCreds := r.BasicAuth()
	if hasCreds {
		if s.auth.check(user, pass) {
			return true
		}
		s.log.Info("authentication failed", "user", user, "remote", r.RemoteAddr)
		unauthorized(w, "invalid username or password")
		return false
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if s.anonRO && read && rt.kind != "" && rt.kind != "ping" && rt.kind != "upload" && rt.kind != "uploads" {
		return true
	}
	unauthorized(w, "authentication required")
	return false
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="prebake"`)
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}
