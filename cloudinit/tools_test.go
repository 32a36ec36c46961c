package cloudinit

// Integration tests against the real tools the rendered documents are fed
// to: Debian's cloud-init 22.4.2 (schema check and its own
// UserDataProcessor), ignition-validate, and openssl for the CA pin.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prebake/prebake/internal/testenv"
)

// debianPython is the interpreter whose site-packages hold Debian's
// cloud-init (not whatever python3 comes first on PATH).
func debianPython(t *testing.T) string {
	t.Helper()
	testenv.Tool(t, "cloud-init")
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import cloudinit.user_data").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import cloudinit (%v: %s): run hack/tools.sh", py, err, out)
	}
	return py
}

func TestCloudInitSchema(t *testing.T) {
	ci := testenv.Tool(t, "cloud-init")
	dir := t.TempDir()
	check := func(name string, b []byte) (string, error) {
		p := writeFile(t, dir, name+".yaml", b)
		out, err := exec.Command(ci, "schema", "--config-file", p).CombinedOutput()
		return string(out), err
	}
	n := 0
	for name, b := range goldenCases(t) {
		if !strings.Contains(name, "cloud-config") {
			continue
		}
		n++
		if out, err := check(name, b); err != nil || !strings.Contains(out, "Valid cloud-config") {
			t.Errorf("%s: cloud-init schema: %v\n%s", name, err, out)
		}
	}
	// The MIME cloud-config parts too.
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	d, err := build(nc, []string{"sha256:" + strings.Repeat("0", 64)}, KubeVersion{1, 36, 4, ""}, "")
	if err != nil {
		t.Fatal(err)
	}
	part, err := d.cloudConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := check("mime-part", part); err != nil {
		t.Errorf("MIME cloud-config part: %v\n%s", err, out)
	}
	if n < 8 {
		t.Fatalf("checked only %d cloud-configs", n)
	}
	// The check is live: the broken fixture (unquoted mode, runcmd as a
	// string) is refused.
	out, err := check("broken", mustRead(t, "testdata/broken-cloud-config.yaml"))
	if err == nil {
		t.Fatalf("cloud-init schema accepted the broken fixture:\n%s", out)
	}
	for _, want := range []string{"write_files.0.permissions", "runcmd"} {
		if !strings.Contains(out, want) {
			t.Errorf("schema errors do not mention %s:\n%s", want, out)
		}
	}
}

// userDataScript runs cloud-init's own UserDataProcessor over a file and
// prints the resulting parts as JSON.
const userDataScript = `
import json, sys
from cloudinit import helpers
from cloudinit.user_data import UserDataProcessor
msg = UserDataProcessor(helpers.Paths({})).process(open(sys.argv[1], "rb").read())
parts = []
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    parts.append({"type": part.get_content_type(), "payload": part.get_payload(decode=True).decode("utf-8")})
json.dump(parts, sys.stdout)
`

type udPart struct {
	Type    string `json:"type"`
	Payload string `json:"payload"`
}

func processUserData(t *testing.T, b []byte) []udPart {
	t.Helper()
	py := debianPython(t)
	dir := t.TempDir()
	script := writeFile(t, dir, "ud.py", []byte(userDataScript))
	in := writeFile(t, dir, "user-data", b)
	var stderr bytes.Buffer
	cmd := exec.Command(py, script, in)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("UserDataProcessor: %v\n%s", err, stderr.String())
	}
	var parts []udPart
	if err := json.Unmarshal(out, &parts); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return parts
}

func TestUserDataProcessorRoundTrip(t *testing.T) {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	plain, err := Render(nc, Options{KubernetesVersion: "1.36.4"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := build(nc, mustLoadHashes(t, nc), KubeVersion{1, 36, 4, ""}, "")
	if err != nil {
		t.Fatal(err)
	}
	ccPart, err := d.cloudConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	mimeWant := []udPart{{"text/cloud-config", string(ccPart)}, {"text/x-shellscript", string(d.joinScript)}}
	for _, tc := range []struct {
		name string
		opts Options
		want []udPart
	}{
		{"cloud-config+gzip", Options{Gzip: true}, []udPart{{"text/cloud-config", string(plain)}}},
		{"mime", Options{Format: FormatMIME}, mimeWant},
		{"mime+gzip", Options{Format: FormatMIME, Gzip: true}, mimeWant},
		{"mime+joinunit", Options{Format: FormatMIME, JoinUnit: "prebake-join.path"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.KubernetesVersion = "1.36.4"
			b, err := Render(nc, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := processUserData(t, b)
			if tc.want == nil {
				if len(got) != 1 || got[0].Type != "text/cloud-config" || !strings.Contains(got[0].Payload, JoinConfigPath) {
					t.Fatalf("got %+v, want one cloud-config part", got)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d parts, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("part %d: got %s (%d bytes), want %s (%d bytes)", i, got[i].Type, len(got[i].Payload), tc.want[i].Type, len(tc.want[i].Payload))
				}
			}
		})
	}
}

func mustLoadHashes(t *testing.T, nc *NodeConfig) []string {
	t.Helper()
	ps := &problems{}
	h := validate(nc, ps)
	if len(ps.list) > 0 {
		t.Fatal(ps.list)
	}
	return h
}

func TestIgnitionValidate(t *testing.T) {
	iv := testenv.Tool(t, "ignition-validate")
	dir := t.TempDir()
	n := 0
	for name, b := range goldenCases(t) {
		if !strings.HasSuffix(name, "ignition") {
			continue
		}
		n++
		p := writeFile(t, dir, name+".ign", b)
		if out, err := exec.Command(iv, p).CombinedOutput(); err != nil {
			t.Errorf("%s: ignition-validate: %v\n%s", name, err, out)
		}
	}
	fetch, err := RenderFetch("https://boot.example.com/bootstrap/x", Options{Format: FormatIgnition})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(iv, writeFile(t, dir, "fetch.ign", fetch)).CombinedOutput(); err != nil {
		t.Errorf("fetch config: ignition-validate: %v\n%s", err, out)
	}
	if n != 4 {
		t.Fatalf("validated %d ignition configs, want 4", n)
	}
	// Live check: a config with a relative path and a string mode is refused.
	broken := `{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"etc/x","mode":"0600"}]}}`
	if out, err := exec.Command(iv, writeFile(t, dir, "broken.ign", []byte(broken))).CombinedOutput(); err == nil {
		t.Errorf("ignition-validate accepted a broken config:\n%s", out)
	}
}

// newCA writes a self-signed CA certificate with the given key to dir.
func newCA(t *testing.T, dir, name string, key any, pub any) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubernetes-" + name},
		NotBefore:             time.Unix(1700000000, 0),
		NotAfter:              time.Unix(2000000000, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestCAHashMatchesOpenSSL(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, crt := range map[string]string{
		"rsa":   newCA(t, dir, "rsa", rsaKey, &rsaKey.PublicKey),
		"ecdsa": newCA(t, dir, "ecdsa", ecKey, &ecKey.PublicKey),
	} {
		t.Run(name, func(t *testing.T) {
			// openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum
			sh := `"$0" x509 -in "$1" -noout -pubkey | "$0" pkey -pubin -outform der | sha256sum | cut -d' ' -f1`
			out, err := exec.Command("/bin/sh", "-c", sh, openssl, crt).Output()
			if err != nil {
				t.Fatal(err)
			}
			want := "sha256:" + strings.TrimSpace(string(out))
			if len(want) != 71 {
				t.Fatalf("openssl pipeline printed %q", out)
			}
			spec := `apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  apiServerEndpoint: 10.0.0.1:6443
  caCertFile: ` + filepath.Base(crt) + `
  bootstrapToken: abcdef.0123456789abcdef
node:
  name: n1
`
			nc, err := Load(writeFile(t, dir, name+".yaml", []byte(spec)))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Render(nc[0], Options{KubernetesVersion: "1.36.4"})
			if err != nil {
				t.Fatal(err)
			}
			cc, _ := parseCloudConfig(t, b)
			jc, _ := fileContent(t, cc, JoinConfigPath)
			if !strings.Contains(jc, "- "+want+"\n") {
				t.Errorf("join config does not pin %s (openssl):\n%s", want, jc)
			}
		})
	}
}
