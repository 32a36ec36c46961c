package signing_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/prebake/prebake/signing"
)

func password(p string) signing.PassFunc {
	return func(bool) ([]byte, error) { return []byte(p), nil }
}

func TestKeygen(t *testing.T) {
	ctx := context.Background()
	prefix := filepath.Join(t.TempDir(), "release")
	kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: prefix, Password: password("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{kp.PrivateKey: 0o600, kp.PublicKey: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	priv, _ := os.ReadFile(kp.PrivateKey)
	pub, _ := os.ReadFile(kp.PublicKey)
	if b, _ := pem.Decode(priv); b == nil || b.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
		t.Errorf("private key is not an encrypted sigstore key:\n%s", priv)
	}
	if b, _ := pem.Decode(pub); b == nil || b.Type != "PUBLIC KEY" {
		t.Errorf("public key is not PEM:\n%s", pub)
	}
	if bytes.Contains(priv, []byte("s3cret")) {
		t.Error("private key file contains the password")
	}

	// Never overwritten silently, and nothing is half-written.
	_, err = signing.GenerateKeyPair(signing.KeygenOptions{Prefix: prefix, Password: password("other")})
	if !errors.Is(err, signing.ErrKeyExists) {
		t.Fatalf("second keygen: got %v, want ErrKeyExists", err)
	}
	if now, _ := os.ReadFile(kp.PrivateKey); !bytes.Equal(now, priv) {
		t.Fatal("refused keygen changed the private key")
	}
	onlyPub := filepath.Join(t.TempDir(), "k")
	os.WriteFile(onlyPub+".pub", pub, 0o644)
	if _, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: onlyPub}); !errors.Is(err, signing.ErrKeyExists) {
		t.Fatalf("keygen over an existing .pub: got %v, want ErrKeyExists", err)
	}
	if _, err := os.Stat(onlyPub + ".key"); err == nil {
		t.Fatal("refused keygen left a .key behind")
	}
	entries, _ := os.ReadDir(filepath.Dir(prefix))
	if len(entries) != 2 {
		t.Errorf("key directory holds %d files, want 2 (no temp files left)", len(entries))
	}

	// The key signs with its password, and only with it.
	s, err := signing.LoadSigner(ctx, kp.PrivateKey, password("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.LoadSigner(ctx, kp.PrivateKey, password("wrong")); err == nil {
		t.Fatal("wrong password loaded the key")
	}
	v, err := signing.LoadVerifier(ctx, kp.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("payload")
	sig, err := s.SignMessage(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyMessage(ctx, msg, sig); err != nil {
		t.Fatalf("signature does not verify with the public key: %v", err)
	}
	if err := v.VerifyMessage(ctx, []byte("other"), sig); err == nil {
		t.Fatal("signature verifies another message")
	}
	got, err := signing.PublicKeyPEM(ctx, s)
	if err != nil || !bytes.Equal(got, pub) {
		t.Errorf("PublicKeyPEM = %s, %v; want the .pub file", got, err)
	}

	// env://VAR holds a key, as with cosign.
	t.Setenv("PREBAKE_TEST_KEY", string(priv))
	t.Setenv("PREBAKE_TEST_PUB", string(pub))
	es, err := signing.LoadSigner(ctx, "env://PREBAKE_TEST_KEY", password("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ = es.SignMessage(ctx, msg)
	ev, err := signing.LoadVerifier(ctx, "env://PREBAKE_TEST_PUB")
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.VerifyMessage(ctx, msg, sig); err != nil {
		t.Fatal(err)
	}

	// --force replaces both files.
	kp2, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: prefix, Password: password("new"), Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(kp2.PrivateKey); bytes.Equal(now, priv) {
		t.Fatal("--force did not replace the key")
	}
	if fi, _ := os.Stat(kp2.PrivateKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced private key has mode %v", fi.Mode().Perm())
	}
}

func TestLoadSignerErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := signing.LoadSigner(ctx, filepath.Join(t.TempDir(), "missing.key"), nil); err == nil {
		t.Error("missing key file loaded")
	}
	if _, err := signing.LoadSigner(ctx, "env://PREBAKE_UNSET_VARIABLE", nil); err == nil {
		t.Error("unset env:// key loaded")
	}
	if _, err := signing.LoadVerifier(ctx, filepath.Join(t.TempDir(), "missing.pub")); err == nil {
		t.Error("missing public key loaded")
	}
}
