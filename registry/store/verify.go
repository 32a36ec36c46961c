package store

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifier hashes what passes through it and fails the read that completes
// the expected size with a DigestError when the content differs, or any read
// past the expected size.
type verifier struct {
	r        io.ReadCloser
	want     v1.Descriptor
	what     string
	src      string
	h        hashWriter
	n        int64
	verified bool
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// NewVerifier wraps r, the content d describes, in a reader that hashes what
// passes and fails with a DigestError on the read that completes content of
// another digest or size (what and src name it in the error).
func NewVerifier(r io.ReadCloser, d v1.Descriptor, what, src string) io.ReadCloser {
	return &verifier{r: r, want: d, what: what, src: src, h: sha256.New()}
}

func (v *verifier) Read(b []byte) (int, error) {
	if v.verified {
		// Anything past the expected size is an error; a clean EOF is fine.
		n, err := v.r.Read(b)
		if n > 0 {
			v.n += int64(n)
			return 0, v.mismatch()
		}
		return 0, err
	}
	if v.want.Size >= 0 && int64(len(b)) > v.want.Size-v.n+1 {
		b = b[:v.want.Size-v.n+1]
	}
	n, err := v.r.Read(b)
	v.h.Write(b[:n])
	v.n += int64(n)
	if v.want.Size >= 0 && v.n > v.want.Size {
		return n, v.mismatch()
	}
	if (v.want.Size >= 0 && v.n == v.want.Size) || (err == io.EOF) {
		if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want.Digest.String() || (v.want.Size >= 0 && v.n != v.want.Size) {
			return n, v.mismatch()
		}
		v.verified = true
	}
	if err == io.EOF && !v.verified {
		return n, v.mismatch()
	}
	return n, err
}

func (v *verifier) mismatch() error {
	got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
	if v.n > v.want.Size {
		got = "(more than " + strconv.FormatInt(v.want.Size, 10) + " bytes)"
	}
	return &DigestError{What: v.what, Source: v.src, Expected: v.want.Digest.String(), Actual: got, ExpectedSize: v.want.Size, ActualSize: v.n}
}

func (v *verifier) Close() error { return v.r.Close() }

// verifiedOK reports whether the whole content was read and matched.
func (v *verifier) verifiedOK() bool { return v.verified }
