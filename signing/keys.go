package signing

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
)

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

// LoadSigner loads the private key keyRef through cosign's key loading: a
// cosign/sigstore encrypted key file, env://VAR holding one, or a KMS URI
// (awskms://, gcpkms://, azurekms://, hashivault://). pass is asked for the
// password of encrypted keys; nil means the empty password.
func LoadSigner(ctx context.Context, keyRef string, pass PassFunc) (Signer, error) {
	sv, err := sigs.SignerVerifierFromKeyRef(ctx, keyRef, cosign.PassFunc(pass), nil)
	if err != nil {
		return nil, fmt.Errorf("loading signing key %s: %w", keyRef, err)
	}
	return &keySigner{sv: sv}, nil
}

// LoadVerifier loads the public key keyRef: a PEM file, env://VAR, or a KMS
// URI (the public half of the KMS key).
func LoadVerifier(ctx context.Context, keyRef string) (Verifier, error) {
	v, err := sigs.PublicKeyFromKeyRef(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("loading public key %s: %w", keyRef, err)
	}
	return &keyVerifier{v: v}, nil
}

// NewSigner returns a Signer for an in-memory private key (ECDSA, RSA or
// Ed25519), with cosign's defaults (SHA-256; Ed25519ph).
func NewSigner(priv crypto.Signer) (Signer, error) {
	sv, err := signature.LoadDefaultSignerVerifier(priv, *cosign.GetDefaultLoadOptions(nil)...)
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
	keys, err := cosign.GenerateKeyPair(cosign.PassFunc(o.Password))
	if err != nil {
		return nil, fmt.Errorf("generating key pair: %w", err)
	}
	if err := writeKeyFile(kp.PrivateKey, keys.PrivateBytes, 0o600, o.Force); err != nil {
		return nil, err
	}
	if err := writeKeyFile(kp.PublicKey, keys.PublicBytes, 0o644, o.Force); err != nil {
		if !o.Force {
			os.Remove(kp.PrivateKey)
		}
		return nil, err
	}
	return kp, nil
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
