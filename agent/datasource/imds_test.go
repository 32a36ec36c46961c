package datasource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// imdsServer follows IMDSv2's documented protocol (EC2 user guide,
// "Use the Instance Metadata Service to access instance metadata"):
//   - PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
//     (1-21600) returns a token; a missing or out-of-range TTL is 400; a
//     PUT carrying X-Forwarded-For is refused (403); other methods on the
//     token path are 405;
//   - GET with X-aws-ec2-metadata-token: a valid, unexpired token or 401
//     (IMDSv2 required: no token is 401 too);
//   - /latest/user-data is 404 when the instance has none;
//   - IMDS turned off: 403 on everything.
type imdsServer struct {
	mu       sync.Mutex
	tokens   map[string]time.Time
	userData []byte
	disabled bool
	expireOn int // expire the Nth token right after issuing it (0: never)
	issued   int
	failing  int // answer 503 to this many requests first
	requests []string
}

func (s *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	if s.failing > 0 {
		s.failing--
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if s.disabled {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b := make([]byte, 24)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		s.issued++
		exp := time.Now().Add(time.Duration(ttl) * time.Second)
		if s.issued == s.expireOn {
			exp = time.Now().Add(-time.Second)
		}
		s.tokens[tok] = exp
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		w.Write([]byte(tok))
		return
	}
	exp, ok := s.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
	if !ok || time.Now().After(exp) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/latest/user-data":
		if s.userData == nil {
			http.NotFound(w, r)
			return
		}
		w.Write(s.userData)
	case "/latest/meta-data/instance-id":
		w.Write([]byte("i-0123456789abcdef0"))
	default:
		http.NotFound(w, r)
	}
}

func newIMDS(t *testing.T, s *imdsServer) (*IMDS, *imdsServer) {
	t.Helper()
	s.tokens = map[string]time.Time{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &IMDS{Endpoint: srv.URL, Retry: 10 * time.Millisecond}, s
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestIMDSv2UserData(t *testing.T) {
	m, s := newIMDS(t, &imdsServer{userData: []byte(userData)})
	got, err := m.UserData(ctxT(t, 10*time.Second))
	if err != nil || string(got) != userData {
		t.Fatalf("%q %v", got, err)
	}
	if len(s.requests) != 2 || s.requests[0] != "PUT /latest/api/token" || s.requests[1] != "GET /latest/user-data" {
		t.Errorf("requests %v", s.requests)
	}
}

// The server's own checks: a GET without a token is 401, as IMDSv2 requires.
func TestIMDSServerRefusesV1(t *testing.T) {
	m, _ := newIMDS(t, &imdsServer{userData: []byte(userData)})
	resp, err := http.Get(m.Endpoint + "/latest/user-data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("IMDSv1 GET: %s", resp.Status)
	}
}

func TestIMDSNoUserData(t *testing.T) {
	m, _ := newIMDS(t, &imdsServer{})
	if _, err := m.UserData(ctxT(t, 10*time.Second)); !errors.Is(err, ErrNoUserData) {
		t.Fatalf("err = %v, want ErrNoUserData", err)
	}
}

func TestIMDSExpiredTokenRefetched(t *testing.T) {
	m, s := newIMDS(t, &imdsServer{userData: []byte(userData), expireOn: 1})
	got, err := m.UserData(ctxT(t, 10*time.Second))
	if err != nil || string(got) != userData {
		t.Fatalf("%q %v", got, err)
	}
	if s.issued != 2 {
		t.Errorf("%d tokens issued, want 2", s.issued)
	}
}

func TestIMDSDisabled(t *testing.T) {
	m, _ := newIMDS(t, &imdsServer{disabled: true, userData: []byte(userData)})
	if _, err := m.UserData(ctxT(t, 10*time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestIMDSRetriesWhileUnavailable(t *testing.T) {
	m, s := newIMDS(t, &imdsServer{userData: []byte(userData), failing: 3})
	got, err := m.UserData(ctxT(t, 10*time.Second))
	if err != nil || string(got) != userData {
		t.Fatalf("%q %v", got, err)
	}
	if len(s.requests) != 5 {
		t.Errorf("requests %v", s.requests)
	}
}

// Before the network is up nothing answers: retried until the context ends,
// then ErrNotFound (the agent leaves the join to cloud-init).
func TestIMDSUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := &IMDS{Endpoint: "http://" + addr, Retry: 10 * time.Millisecond}
	if _, err := m.UserData(ctxT(t, 300*time.Millisecond)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
