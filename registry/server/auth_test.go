package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/crypto/bcrypt"
)

func writeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	f := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func statusOf(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

func TestHtpasswd(t *testing.T) {
	file := writeHtpasswd(t, map[string]string{"ci": "s3cret", "ops": "hunter2"})
	good := remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})
	wrong := remote.WithAuth(&authn.Basic{Username: "ci", Password: "guess"})
	nobody := remote.WithAuth(&authn.Basic{Username: "mallory", Password: "s3cret"})
	img := randomImage(t, 256, 1)

	for _, anon := range []bool{false, true} {
		_, host := start(t, t.TempDir(), WithHtpasswd(file), WithAnonymousPull(anon))
		r := ref(t, host, "secure/node:v1")
		if err := remote.Write(r, img); statusOf(err) != http.StatusUnauthorized {
			t.Errorf("anonymous push (anonymous pull %v): %v, want 401", anon, err)
		}
		if err := remote.Write(r, img, wrong); statusOf(err) != http.StatusUnauthorized {
			t.Errorf("push with a wrong password: %v, want 401", err)
		}
		if err := remote.Write(r, img, nobody); statusOf(err) != http.StatusUnauthorized {
			t.Errorf("push as an unknown user: %v, want 401", err)
		}
		if err := remote.Write(r, img, good); err != nil {
			t.Fatalf("push as ci: %v", err)
		}
		verifyTag(t, r, good)
		_, err := remote.Get(r, wrong)
		if statusOf(err) != http.StatusUnauthorized {
			t.Errorf("pull with a wrong password (anonymous pull %v): %v, want 401", anon, err)
		}
		_, err = remote.Get(r)
		if anon {
			if err != nil {
				t.Errorf("anonymous pull with --anonymous-pull: %v", err)
			} else {
				verifyTag(t, r)
			}
		} else if statusOf(err) != http.StatusUnauthorized {
			t.Errorf("anonymous pull without --anonymous-pull: %v, want 401", err)
		}
		if _, err := remote.List(r.Context()); anon != (err == nil) {
			t.Errorf("anonymous tag list (anonymous pull %v): %v", anon, err)
		}
	}
}

func TestHtpasswdProblems(t *testing.T) {
	f := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(f, []byte("# users\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nnocolon\n"), 0o600)
	_, err := New(t.TempDir(), WithHtpasswd(f))
	if !errors.Is(err, ErrHtpasswd) {
		t.Fatalf("New with a bad htpasswd: %v, want ErrHtpasswd", err)
	}
	for _, want := range []string{f + ":2: user \"bob\": unsupported hash", f + ":3: expected user:hash"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	if _, err := New(t.TempDir(), WithAnonymousPull(true)); err == nil {
		t.Error("anonymous pull without htpasswd accepted")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "prebake test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	file := writeHtpasswd(t, map[string]string{"ci": "s3cret"})
	s, err := New(t.TempDir(), WithTLS(certFile, keyFile), WithHtpasswd(file))
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	opts := []remote.Option{remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})}
	r, err := name.ParseReference(ln.Addr().String() + "/tls/node:v1") // no name.Insecure: https only
	if err != nil {
		t.Fatal(err)
	}
	img := randomImage(t, 512, 2)
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
	if got := verifyTag(t, r, opts...); got != digestOf(t, img) {
		t.Errorf("tls/node:v1 = %s, want %s", got, digestOf(t, img))
	}
	// Plain HTTP on the TLS port gets nowhere.
	resp, err := http.Get("http://" + ln.Addr().String() + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	if _, err := New(t.TempDir(), WithTLS(certFile, "")); err == nil {
		t.Error("TLS with a certificate but no key accepted")
	}
}

// The bootstrap endpoint is outside htpasswd: its one-time token is the
// credential.
func TestBootstrapMounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bootstrap")
	file := writeHtpasswd(t, map[string]string{"ci": "s3cret"})
	_, host := start(t, t.TempDir(), WithHtpasswd(file), WithBootstrapDir(dir))
	tok, err := IssueBootstrapToken(dir, []byte("join: me\n"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		resp, err := http.Get("http://" + host + "/bootstrap/" + tok)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "join: me\n" {
		t.Errorf("first GET: %d %q, want 200 and the document", code, body)
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Errorf("second GET: %d, want 404", code)
	}
	// The registry itself still wants credentials.
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v2/ without credentials: %d, want 401", resp.StatusCode)
	}
}
