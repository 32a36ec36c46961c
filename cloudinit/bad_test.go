package cloudinit

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

const baseSpec = `apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  apiServerEndpoint: 10.0.0.1:6443
  caCertFile: ca.crt
  bootstrapToken: abcdef.0123456789abcdef
node:
  name: n1
  role: worker
`

const secretToken = "abcdef.0123456789abcdef"

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(string) string
		want    error
		field   string // the problem names this field
		line    int    // at this line (0: not checked)
		render  bool   // problem found by Render (options), not Load
		noValue string // must not appear in the message
	}{
		{
			name:  "missing endpoint",
			edit:  func(s string) string { return strings.Replace(s, "  apiServerEndpoint: 10.0.0.1:6443\n", "", 1) },
			want:  ErrMissingEndpoint,
			field: "cluster.apiServerEndpoint",
			line:  3,
		},
		{
			name:  "endpoint without port",
			edit:  func(s string) string { return strings.Replace(s, "10.0.0.1:6443", "10.0.0.1", 1) },
			want:  ErrMissingEndpoint,
			field: "cluster.apiServerEndpoint",
			line:  4,
		},
		{
			name:    "malformed token",
			edit:    func(s string) string { return strings.Replace(s, secretToken, "ABCDEF.0123456789abcdef", 1) },
			want:    ErrMalformedToken,
			field:   "cluster.bootstrapToken",
			line:    6,
			noValue: "ABCDEF.0123456789abcdef",
		},
		{
			name:  "unknown role",
			edit:  func(s string) string { return strings.Replace(s, "role: worker", "role: master", 1) },
			want:  ErrUnknownRole,
			field: "node.role",
			line:  9,
		},
		{
			name:  "control-plane without certificate key",
			edit:  func(s string) string { return strings.Replace(s, "role: worker", "role: control-plane", 1) },
			want:  ErrCertificateKey,
			field: "node.certificateKey",
			line:  7,
		},
		{
			name:  "unreadable CA file",
			edit:  func(s string) string { return strings.Replace(s, "caCertFile: ca.crt", "caCertFile: missing.crt", 1) },
			want:  ErrCAFile,
			field: "cluster.caCertFile",
			line:  5,
		},
		{
			name:  "CA file is not PEM",
			edit:  func(s string) string { return strings.Replace(s, "caCertFile: ca.crt", "caCertFile: token", 1) },
			want:  ErrCAFile,
			field: "cluster.caCertFile",
			line:  5,
		},
		{
			name: "hash not matching the CA",
			edit: func(s string) string {
				return strings.Replace(s, "  caCertFile: ca.crt\n", "  caCertFile: ca.crt\n  caCertHashes: [sha256:"+strings.Repeat("ab", 32)+"]\n", 1)
			},
			want:  ErrCAHashMismatch,
			field: "cluster.caCertHashes",
			line:  6,
		},
		{
			name: "malformed hash",
			edit: func(s string) string {
				return strings.Replace(s, "  caCertFile: ca.crt\n", "  caCertHashes: [sha1:abc]\n", 1)
			},
			want:  ErrMalformedHash,
			field: "cluster.caCertHashes[0]",
			line:  5,
		},
		{
			name:  "no CA pinning",
			edit:  func(s string) string { return strings.Replace(s, "  caCertFile: ca.crt\n", "", 1) },
			want:  ErrNoCAPinning,
			field: "cluster.caCertFile",
		},
		{
			name: "unsafe skip without permission",
			edit: func(s string) string {
				return strings.Replace(s, "  caCertFile: ca.crt\n", "  unsafeSkipCAVerification: true\n", 1)
			},
			want:   ErrNoCAPinning,
			field:  "cluster.unsafeSkipCAVerification",
			line:   5,
			render: true,
		},
		{
			name:  "CA private key",
			edit:  func(s string) string { return strings.Replace(s, "caCertFile: ca.crt", "caCertFile: ca.key", 1) },
			want:  ErrPrivateKey,
			field: "cluster.caCertFile",
		},
		{
			name: "private key as an extra file",
			edit: func(s string) string {
				return s + "files:\n  - path: /etc/kubernetes/pki/ca.key\n    content: |\n      -----BEGIN RSA PRIVATE KEY-----\n"
			},
			want:  ErrPrivateKey,
			field: "files[0].content",
			line:  12,
		},
		{
			name: "unknown field",
			edit: func(s string) string {
				return strings.Replace(s, "  role: worker\n", "  role: worker\n  podCIDR: 10.0.0.0/24\n", 1)
			},
			want:  ErrUnknownField,
			field: "node.podCIDR",
			line:  10,
		},
		{
			name:  "duplicate field",
			edit:  func(s string) string { return s + "  name: n2\n" },
			want:  ErrDuplicateField,
			field: "node.name",
			line:  10,
		},
		{
			name:  "unquoted mode",
			edit:  func(s string) string { return s + "files:\n  - path: /etc/x\n    permissions: 0644\n" },
			want:  ErrSyntax,
			field: "files[0].permissions",
			line:  12,
		},
		{
			name:  "label the kubelet may not set",
			edit:  func(s string) string { return s + "  labels:\n    node-role.kubernetes.io/worker: \"\"\n" },
			want:  ErrInvalidValue,
			field: "node.labels.node-role.kubernetes.io/worker",
			line:  11,
		},
		{
			name:  "bad taint effect",
			edit:  func(s string) string { return s + "  taints:\n    - {key: a, effect: Sometimes}\n" },
			want:  ErrInvalidValue,
			field: "node.taints[0].effect",
			line:  11,
		},
		{
			name: "token file missing",
			edit: func(s string) string {
				return strings.Replace(s, "bootstrapToken: "+secretToken, "bootstrapTokenFile: nope", 1)
			},
			want:  ErrTokenFile,
			field: "cluster.bootstrapTokenFile",
			line:  6,
		},
		{
			name: "malformed token in file",
			edit: func(s string) string {
				return strings.Replace(s, "bootstrapToken: "+secretToken, "bootstrapTokenFile: badtoken", 1)
			},
			want:    ErrMalformedToken,
			field:   "cluster.bootstrapTokenFile",
			noValue: "s3cr3t",
		},
		{
			name:  "wrong apiVersion",
			edit:  func(s string) string { return strings.Replace(s, "prebake.dev/v1alpha1", "prebake.dev/v1", 1) },
			want:  ErrAPIVersion,
			field: "apiVersion",
			line:  1,
		},
		{
			name:  "image without digest",
			edit:  func(s string) string { return s + "image: registry.example.com/nodes:1.36\n" },
			want:  ErrInvalidValue,
			field: "image",
			line:  10,
		},
		{
			name:  "proxy with a quote",
			edit:  func(s string) string { return s + "proxy:\n  http: 'http://p:3128/\"x'\n" },
			want:  ErrInvalidValue,
			field: "proxy.http",
			line:  11,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "ca.crt", mustRead(t, "testdata/ca.crt"))
			writeFile(t, dir, "token", []byte("not a token\n"))
			writeFile(t, dir, "badtoken", []byte("s3cr3t\n"))
			writeFile(t, dir, "ca.key", []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"))
			p := writeFile(t, dir, "node.yaml", []byte(tc.edit(baseSpec)))
			specs, err := Load(p)
			if tc.render {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				_, err = Render(specs[0], Options{KubernetesVersion: "1.36.4"})
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a *SpecError", err)
			}
			var hit *Problem
			for i := range se.Problems {
				if errors.Is(se.Problems[i], tc.want) && se.Problems[i].Field == tc.field {
					hit = &se.Problems[i]
				}
			}
			if hit == nil {
				t.Fatalf("no %v problem for field %s in:\n%v", tc.want, tc.field, err)
			}
			if hit.File != p {
				t.Errorf("problem file %q, want %q", hit.File, p)
			}
			if tc.line != 0 && hit.Line != tc.line {
				t.Errorf("problem at line %d, want %d: %v", hit.Line, tc.line, hit)
			}
			if !regexp.MustCompile(regexp.QuoteMeta(p) + `:\d+:\d+: `).MatchString(err.Error()) {
				t.Errorf("message lacks file:line:column: %v", err)
			}
			if tc.noValue != "" && strings.Contains(err.Error(), tc.noValue) {
				t.Errorf("message leaks the secret value: %v", err)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("message leaks the bootstrap token: %v", err)
			}
		})
	}
}

// TestAllProblemsAtOnce: one Load reports every problem, not the first.
func TestAllProblemsAtOnce(t *testing.T) {
	dir := t.TempDir()
	spec := `apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  bootstrapToken: nope
  caCertHashes: [bad]
node:
  name: Bad_Name
  role: boss
  maxPods: many
  extra: 1
`
	_, err := Load(writeFile(t, dir, "n.yaml", []byte(spec)))
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
	// Structural problems (type, unknown field) come first, from Parse.
	if len(se.Problems) != 2 {
		t.Fatalf("parse: got %d problems, want 2 (maxPods type, unknown extra):\n%v", len(se.Problems), err)
	}
	spec = strings.Replace(strings.Replace(spec, "  maxPods: many\n", "", 1), "  extra: 1\n", "", 1)
	_, err = Load(writeFile(t, dir, "n.yaml", []byte(spec)))
	if !errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []error{ErrMissingEndpoint, ErrMalformedToken, ErrMalformedHash, ErrUnknownRole} {
		if !errors.Is(err, want) {
			t.Errorf("missing %v in:\n%v", want, err)
		}
	}
	if len(se.Problems) < 5 {
		t.Errorf("got %d problems, want at least 5:\n%v", len(se.Problems), err)
	}
}

func TestParseErrorsLocated(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\nnode: [\n", "n.yaml:"},
		{"", "empty document"},
		{"- a\n- b\n", "mapping with apiVersion"},
		{"apiVersion: prebake.dev/v1alpha1\nkind: Node\n", `got "Node"`},
	} {
		_, err := Parse("n.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestGoBuiltSpec: library users build specs in Go; problems then carry no
// file position, and a CA given as PEM works without Load.
func TestGoBuiltSpec(t *testing.T) {
	nc := &NodeConfig{
		Cluster: Cluster{APIServerEndpoint: "api:6443", BootstrapToken: secretToken, CACert: mustRead(t, "testdata/ca.crt")},
		Node:    Node{Name: "go-node"},
	}
	b, err := Render(nc, Options{KubernetesVersion: "1.31.0"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "sha256:9dfe6dfd61e4e7e6bb0aa377d65971fa20cfbe767fc1d12f1a79bd11800df221") {
		t.Error("CA pin missing")
	}
	nc.Cluster.CACertFile = "ca.crt"
	nc.Cluster.CACert = nil
	_, err = Render(nc, Options{KubernetesVersion: "1.31.0"})
	if !errors.Is(err, ErrCAFile) || strings.Contains(err.Error(), ":0:") {
		t.Errorf("got %v, want ErrCAFile without a position", err)
	}
	if _, err := Render(nc, Options{KubernetesVersion: "1.31.0", Format: "yaml"}); !errors.Is(err, ErrFormat) {
		t.Errorf("got %v, want ErrFormat", err)
	}
}
