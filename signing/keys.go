package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
)

// The PEM types of cosign's encrypted private keys (SIGSTORE is what cosign
// writes since v2; COSIGN is still read).
const (
	sigstoreKeyPEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
	cosignKeyPEM   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// kmsSchemes are the key reference schemes of the cloud KMS providers
// cosign supports; a build of prebake without them (the default; see
// signing/kms) names the build that has them instead of reading the
// reference as a file name.
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// PasswordEnv is the environment variable cosign and prebake read a key's
// password from.
const PasswordEnv = "COSIGN_PASSWORD"

// PassFunc returns the password of a private key; confirm is true when a
// new key is being encrypted (a prompt should ask twice). A nil PassFunc
// means the empty password.
type PassFunc func(confirm bool) ([]byte, error)

// EnvPassword returns $COSIGN_PASSWORD and whether it is set (an empty
// password is a valid, set password).
func EnvPassword() ([]byte, bool) {
	v, ok := os.LookupEnv(PasswordEnv)
	return []byte(v), ok
}

// Signer makes signatures with a private key that stays wherever it lives
// (a file, an environment variable, a KMS).
type Signer interface {
	// SignMessage returns the signature of msg.
	SignMessage(ctx context.Context, msg []byte) ([]byte, error)
	// PublicKey returns the key that verifies the signatures.
	PublicKey(ctx context.Context) (crypto.PublicKey, error)
}

// Verifier checks signatures against one public key.
type Verifier interface {
	// VerifyMessage returns nil when sig is a valid signature of msg.
	VerifyMessage(ctx context.Context, msg, sig []byte) error
	// PublicKey returns the key.
	PublicKey(ctx context.Context) (crypto.PublicKey, error)
}

// LoadSigner loads the private key keyRef as `cosign sign --key` does: a
// cosign/sigstore encrypted key file, http(s):// or env://VAR holding one,
// or a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://; only in a
// program that imports signing/kms). pass is asked for the password of
// encrypted keys; nil means the empty password.
func LoadSigner(ctx context.Context, keyRef string, pass PassFunc) (Signer, error) {
	sv, err := loadSigner(ctx, keyRef, pass)
	if err != nil {
		return nil, fmt.Errorf("loading signing key %s: %w", keyRef, err)
	}
	return &keySigner{sv: sv}, nil
}

func loadSigner(ctx context.Context, keyRef string, pass PassFunc) (signature.SignerVerifier, error) {
	if sv, ok, err := kmsKey(ctx, keyRef); ok || err != nil {
		return sv, err
	}
	raw, err := loadKeyRef(keyRef)
	if err != nil {
		return nil, err
	}
	pw := []byte{}
	if pass != nil {
		if pw, err = pass(false); err != nil {
			return nil, err
		}
	}
	p, _ := pem.Decode(raw)
	if p == nil {
		return nil, errors.New("invalid pem block")
	}
	if p.Type != sigstoreKeyPEM && p.Type != cosignKeyPEM {
		return nil, fmt.Errorf("unsupported pem type: %s", p.Type)
	}
	der, err := encrypted.Decrypt(p.Bytes, pw)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	return signature.LoadDefaultSignerVerifier(pk, sigopts.WithED25519ph())
}

// kmsKey resolves a KMS key reference through the registered providers; ok
// is false when keyRef names no KMS.
func kmsKey(ctx context.Context, keyRef string) (signature.SignerVerifier, bool, error) {
	if !strings.Contains(keyRef, "://") {
		return nil, false, nil
	}
	sv, err := kms.Get(ctx, keyRef, crypto.SHA256)
	if err == nil {
		return sv, true, nil
	}
	var pnf *kms.ProviderNotFoundError
	if !errors.As(err, &pnf) {
		return nil, true, fmt.Errorf("kms get: %w", err)
	}
	for _, s := range kmsSchemes {
		if strings.HasPrefix(keyRef, s) {
			return nil, true, fmt.Errorf("%w: %s keys need a prebake or Packer plugin built with the KMS providers (make build-kms or make plugin-kms: go build -tags kms)", ErrNoKMS, s)
		}
	}
	return nil, false, nil
}

// loadKeyRef reads a key: a file, http(s)://URL or env://VAR (as cosign).
func loadKeyRef(keyRef string) ([]byte, error) {
	scheme, rest, ok := strings.Cut(keyRef, "://")
	if !ok {
		return os.ReadFile(filepath.Clean(keyRef))
	}
	switch scheme {
	case "http", "https":
		resp, err := http.Get(keyRef) // #nosec G107: the user's key URL, as cosign
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", keyRef, resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	case "env":
		v, ok := os.LookupEnv(rest)
		if !ok {
			return nil, fmt.Errorf("env var $%s not found", rest)
		}
		return []byte(v), nil
	}
	return nil, fmt.Errorf("unrecognized key scheme %s://", scheme)
}

// LoadVerifier loads the public key keyRef: a PEM file, http(s)://,
// env://VAR, or a KMS URI (the public half of the KMS key; only in a
// program that imports signing/kms).
func LoadVerifier(ctx context.Context, keyRef string) (Verifier, error) {
	v, err := loadVerifier(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("loading public key %s: %w", keyRef, err)
	}
	return &keyVerifier{v: v}, nil
}

func loadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	if sv, ok, err := kmsKey(ctx, keyRef); ok || err != nil {
		return sv, err
	}
	raw, err := loadKeyRef(keyRef)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("pem to public key: %w", err)
	}
	return signature.LoadVerifier(pub, crypto.SHA256)
}

// NewSigner returns a Signer for an in-memory private key (ECDSA, RSA or
// Ed25519), with cosign's defaults (SHA-256; Ed25519ph).
func NewSigner(priv crypto.Signer) (Signer, error) {
	sv, err := signature.LoadDefaultSignerVerifier(priv, sigopts.WithED25519ph())
	if err != nil {
		return nil, fmt.Errorf("loading private key: %w", err)
	}
	return &keySigner{sv: sv}, nil
}

// NewVerifier returns a Verifier for a public key (ECDSA, RSA or Ed25519),
// hashing with SHA-256 as cosign does.
func NewVerifier(pub crypto.PublicKey) (Verifier, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading public key: %w", err)
	}
	return &keyVerifier{v: v}, nil
}

// PublicKeyPEM returns s's public key in the PEM form `prebake keygen`
// writes to PREFIX.pub.
func PublicKeyPEM(ctx context.Context, s Signer) ([]byte, error) {
	pub, err := s.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

type keySigner struct{ sv signature.SignerVerifier }

func (k *keySigner) SignMessage(ctx context.Context, msg []byte) ([]byte, error) {
	return k.sv.SignMessage(bytes.NewReader(msg), sigopts.WithContext(ctx))
}

func (k *keySigner) PublicKey(ctx context.Context) (crypto.PublicKey, error) {
	return k.sv.PublicKey(sigopts.WithContext(ctx))
}

type keyVerifier struct{ v signature.Verifier }

func (k *keyVerifier) VerifyMessage(ctx context.Context, msg, sig []byte) error {
	return k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg), sigopts.WithContext(ctx))
}

func (k *keyVerifier) PublicKey(ctx context.Context) (crypto.PublicKey, error) {
	return k.v.PublicKey(sigopts.WithContext(ctx))
}

// sigstoreSigner adapts a Signer to sigstore's interface for cosign's code.
func sigstoreSigner(ctx context.Context, s Signer) signature.Signer {
	if k, ok := s.(*keySigner); ok {
		return k.sv
	}
	return &signerAdapter{ctx: ctx, s: s}
}

// sigstoreVerifier adapts a Verifier to sigstore's interface.
func sigstoreVerifier(ctx context.Context, v Verifier) signature.Verifier {
	if k, ok := v.(*keyVerifier); ok {
		return k.v
	}
	return &verifierAdapter{ctx: ctx, v: v}
}

// verifierOf returns a Verifier for s's public key.
func verifierOf(ctx context.Context, s Signer) (Verifier, error) {
	if k, ok := s.(*keySigner); ok {
		return &keyVerifier{v: k.sv}, nil
	}
	pub, err := s.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	return NewVerifier(pub)
}

type signerAdapter struct {
	ctx context.Context
	s   Signer
}

func (a *signerAdapter) SignMessage(msg io.Reader, _ ...signature.SignOption) ([]byte, error) {
	b, err := io.ReadAll(msg)
	if err != nil {
		return nil, err
	}
	return a.s.SignMessage(a.ctx, b)
}

func (a *signerAdapter) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return a.s.PublicKey(a.ctx)
}

type verifierAdapter struct {
	ctx context.Context
	v   Verifier
}

func (a *verifierAdapter) VerifySignature(sig, msg io.Reader, _ ...signature.VerifyOption) error {
	s, err := io.ReadAll(sig)
	if err != nil {
		return err
	}
	m, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	return a.v.VerifyMessage(a.ctx, m, s)
}

func (a *verifierAdapter) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return a.v.PublicKey(a.ctx)
}

// KeygenOptions configure GenerateKeyPair.
type KeygenOptions struct {
	// Prefix is the path without extension: PREFIX.key and PREFIX.pub are
	// written. Empty means "cosign" (in the working directory), as cosign.
	Prefix string
	// Password encrypts the private key; nil means the empty password.
	Password PassFunc
	// Force replaces existing files; by default existing files are an
	// ErrKeyExists error and nothing is written.
	Force bool
}

// KeyPair names the files GenerateKeyPair wrote.
type KeyPair struct {
	PrivateKey string `json:"privateKey"` // PREFIX.key, mode 0600
	PublicKey  string `json:"publicKey"`  // PREFIX.pub, mode 0644
}

// GenerateKeyPair writes a new ECDSA P-256 key pair in cosign's format: the
// private key encrypted (scrypt + secretbox, PEM "ENCRYPTED SIGSTORE PRIVATE
// KEY") with mode 0600, and the PEM public key. Each file is written to a
// temporary file, synced and then linked into place, so an existing key is
// never replaced unless o.Force is set, and a crash leaves no partial key.
func GenerateKeyPair(o KeygenOptions) (*KeyPair, error) {
	prefix := o.Prefix
	if prefix == "" {
		prefix = "cosign"
	}
	kp := &KeyPair{PrivateKey: prefix + ".key", PublicKey: prefix + ".pub"}
	if !o.Force {
		for _, p := range []string{kp.PrivateKey, kp.PublicKey} {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%s: %w", p, ErrKeyExists)
			}
		}
	}
	priv, pub, err := newKeyPair(o.Password)
	if err != nil {
		return nil, fmt.Errorf("generating key pair: %w", err)
	}
	if err := writeKeyFile(kp.PrivateKey, priv, 0o600, o.Force); err != nil {
		return nil, err
	}
	if err := writeKeyFile(kp.PublicKey, pub, 0o644, o.Force); err != nil {
		if !o.Force {
			os.Remove(kp.PrivateKey)
		}
		return nil, err
	}
	return kp, nil
}

// newKeyPair is `cosign generate-key-pair`: an ECDSA P-256 key, PKCS #8,
// encrypted with the password (scrypt + secretbox), PEM-encoded; and the PEM
// public key.
func newKeyPair(pass PassFunc) (priv, pub []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	pw := []byte{}
	if pass != nil {
		if pw, err = pass(true); err != nil {
			return nil, nil, err
		}
	}
	enc, err := encrypted.Encrypt(der, pw)
	if err != nil {
		return nil, nil, err
	}
	pub, err = cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: sigstoreKeyPEM, Bytes: enc}), pub, nil
}

// writeKeyFile writes b to path through a synced temporary file created
// with mode; without replace it links the file into place, which fails if
// path exists.
func writeKeyFile(path string, b []byte, mode os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrKeyExists)
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
