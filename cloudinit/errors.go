package cloudinit

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every problem in a SpecError wraps one of them, so callers
// can test with errors.Is on the whole SpecError.
var (
	// ErrSyntax: the document is not YAML, or a value has the wrong type.
	ErrSyntax = errors.New("invalid syntax")
	// ErrUnknownField: a key the versioned schema does not define.
	ErrUnknownField = errors.New("unknown field")
	// ErrDuplicateField: a key given twice in one mapping.
	ErrDuplicateField = errors.New("duplicate field")
	// ErrAPIVersion: apiVersion or kind is missing or not supported.
	ErrAPIVersion = errors.New("unsupported apiVersion or kind")
	// ErrRequired: a required field is missing.
	ErrRequired = errors.New("required field missing")
	// ErrMissingEndpoint: cluster.apiServerEndpoint is missing or not host:port.
	ErrMissingEndpoint = errors.New("invalid API server endpoint")
	// ErrMalformedToken: the bootstrap token does not match [a-z0-9]{6}.[a-z0-9]{16}.
	ErrMalformedToken = errors.New("malformed bootstrap token")
	// ErrMalformedHash: a CA hash does not match sha256:<64 hex>.
	ErrMalformedHash = errors.New("malformed CA certificate hash")
	// ErrUnknownRole: node.role is neither worker nor control-plane.
	ErrUnknownRole = errors.New("unknown node role")
	// ErrCertificateKey: a control-plane join without a valid certificate key,
	// or a worker with one.
	ErrCertificateKey = errors.New("invalid certificate key")
	// ErrCAFile: the CA certificate file cannot be read or holds no certificate.
	ErrCAFile = errors.New("unreadable CA certificate")
	// ErrCAHashMismatch: caCertHashes does not list the hash of caCertFile.
	ErrCAHashMismatch = errors.New("CA certificate hash not listed")
	// ErrNoCAPinning: neither caCertFile nor caCertHashes is given, or
	// unsafeSkipCAVerification is used without being allowed.
	ErrNoCAPinning = errors.New("no CA pinning")
	// ErrPrivateKey: a private key where only public material is allowed
	// (prebake never puts CA private keys into user-data).
	ErrPrivateKey = errors.New("private key not allowed")
	// ErrTokenFile: the bootstrap token file cannot be read.
	ErrTokenFile = errors.New("unreadable bootstrap token file")
	// ErrCAKey: cluster.caKeyFile is unreadable or not the CA certificate's
	// private key (render --init).
	ErrCAKey = errors.New("invalid CA key")
	// ErrInvalidValue: any other value that fails validation (labels, taints,
	// paths, modes, addresses, proxies, keys).
	ErrInvalidValue = errors.New("invalid value")
	// ErrKubernetesVersion: the Kubernetes version is missing, malformed or
	// older than kubeadm's v1beta3 API (1.22).
	ErrKubernetesVersion = errors.New("unsupported Kubernetes version")
	// ErrFormat: an unknown output format.
	ErrFormat = errors.New("unknown output format")
	// ErrTooLarge: the rendered user-data exceeds the size limit.
	ErrTooLarge = errors.New("user-data too large")
)

// Problem is one thing wrong with a node spec, located as precisely as the
// input allows (File and Line are empty/zero for specs built in Go).
type Problem struct {
	File   string
	Line   int
	Column int
	Field  string // dotted path, e.g. "cluster.bootstrapToken"
	Err    error  // one of the sentinels above
	Detail string // human explanation; never contains secret values
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", p.Line, p.Column)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Err.Error())
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Unwrap returns the sentinel.
func (p Problem) Unwrap() error { return p.Err }

// SpecError lists every problem found in one or more node specs.
type SpecError struct {
	Problems []Problem
}

func (e *SpecError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems in node spec:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns every problem, so errors.Is finds any of their sentinels.
func (e *SpecError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// SizeError reports user-data over a size limit.
type SizeError struct {
	Node  string // node name
	Size  int    // bytes as the limit counts them (after base64 for OpenStack)
	Limit SizeLimit
}

func (e *SizeError) Error() string {
	how := ""
	if e.Limit.Base64 {
		how = " after base64"
	}
	name := ""
	if e.Limit.Name != "" {
		name = e.Limit.Name + " "
	}
	return fmt.Sprintf("user-data for %s is %d bytes%s, over the %slimit of %d bytes", e.Node, e.Size, how, name, e.Limit.Bytes)
}

// Unwrap returns ErrTooLarge.
func (e *SizeError) Unwrap() error { return ErrTooLarge }
