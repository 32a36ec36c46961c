package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var (
	base64StdEncoding = base64.StdEncoding
	jsonMarshal       = json.Marshal
)

const testToken = "abcdef.0123456789abcdef"

func goodConfig() *Config {
	return &Config{
		APIVersion: APIVersion, Kind: Kind, Node: "worker-1", JoinMode: ModeKubeadm,
		Files: []File{
			{Path: "/etc/systemd/system/containerd.service.d/http-proxy.conf", Mode: "0644", Owner: "root:root", Content: []byte("[Service]\n")},
			{Path: KubeadmJoinPath, Mode: "0600", Owner: "root:root", Content: []byte("kind: JoinConfiguration\ntoken: " + testToken + "\n")},
		},
	}
}

func mustBlock(t *testing.T, c *Config) []byte {
	t.Helper()
	b, err := Block(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cloudConfig(block []byte) []byte {
	return append(append([]byte("#cloud-config\n# rendered by prebake\n"), block...), "write_files: []\n"...)
}

func TestExtractRoundTrip(t *testing.T) {
	c := goodConfig()
	doc := cloudConfig(mustBlock(t, c))
	got, err := Extract(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != c.Node || got.JoinMode != c.JoinMode || len(got.Files) != 2 || !bytes.Equal(got.Files[1].Content, c.Files[1].Content) {
		t.Fatalf("round trip: %+v", got)
	}
	// CRLF line ends and gzip-compressed user-data read the same.
	if _, err := Extract(bytes.ReplaceAll(doc, []byte("\n"), []byte("\r\n"))); err != nil {
		t.Errorf("CRLF: %v", err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(doc)
	zw.Close()
	if _, err := Extract(z.Bytes()); err != nil {
		t.Errorf("gzip: %v", err)
	}
	// Deterministic.
	if !bytes.Equal(mustBlock(t, c), mustBlock(t, c)) {
		t.Error("Block is not deterministic")
	}
}

func TestExtractMIME(t *testing.T) {
	block := mustBlock(t, goodConfig())
	mk := func(cte string, body []byte, extra string) []byte {
		var b bytes.Buffer
		b.WriteString("Content-Type: multipart/mixed; boundary=\"XX\"\r\nMIME-Version: 1.0\r\n\r\n")
		b.WriteString(extra)
		b.WriteString("--XX\r\nContent-Type: text/cloud-config; charset=\"utf-8\"\r\n")
		if cte != "" {
			b.WriteString("Content-Transfer-Encoding: " + cte + "\r\n")
		}
		b.WriteString("\r\n")
		b.Write(body)
		b.WriteString("\r\n--XX\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/sh\necho hi\r\n--XX--\r\n")
		return b.Bytes()
	}
	if c, err := Extract(mk("7bit", cloudConfig(block), "")); err != nil || c.Node != "worker-1" {
		t.Errorf("7bit part: %v", err)
	}
	enc := []byte(b64Lines(cloudConfig(block)))
	if _, err := Extract(mk("base64", enc, "")); err != nil {
		t.Errorf("base64 part: %v", err)
	}
	if _, err := Extract(mk("", []byte("#cloud-config\nhostname: x\n"), "")); !errors.Is(err, ErrNoPart) {
		t.Errorf("MIME without block: %v, want ErrNoPart", err)
	}
	two := mk("", cloudConfig(block), "--XX\r\nContent-Type: text/cloud-config\r\n\r\n"+string(cloudConfig(block))+"\r\n")
	if _, err := Extract(two); !errors.Is(err, ErrMalformed) {
		t.Errorf("two parts with blocks: %v, want ErrMalformed", err)
	}
	if _, err := Extract([]byte("Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/cloud-config\r\n\r\n" + string(cloudConfig(block)))); !errors.Is(err, ErrMalformed) {
		t.Errorf("unterminated multipart: %v, want ErrMalformed", err)
	}
	if _, err := Extract([]byte("Content-Type: multipart/mixed; boundary=\"XX\r\n\r\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad Content-Type: %v, want ErrMalformed", err)
	}
}

func b64Lines(b []byte) string {
	var out strings.Builder
	enc := base64Std(b)
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	return out.String() + enc + "\r\n"
}

// Every malformed input is refused with ErrMalformed or ErrInvalid (or is
// not the agent's, ErrNoPart), and no error quotes the token.
func TestExtractMalformed(t *testing.T) {
	good := mustBlock(t, goodConfig())
	lines := strings.SplitAfter(string(good), "\n")
	jsonBlock := func(js string) []byte {
		b, err := blockJSON([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cfgBlock := func(mut func(*Config)) []byte {
		c := goodConfig()
		mut(c)
		js, err := jsonMarshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return jsonBlock(string(js))
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(cloudConfig(good))
	zw.Close()
	truncGzip := z.Bytes()[:z.Len()/2]

	cases := []struct {
		name string
		doc  []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNoPart, ""},
		{"shell script", []byte("#!/bin/sh\necho hi\n"), ErrNoPart, ""},
		{"ignition", []byte(`{"ignition":{"version":"3.3.0"}}`), ErrNoPart, ""},
		{"cloud-config without block", []byte("#cloud-config\nhostname: x\n"), ErrNoPart, ""},
		{"truncated: no end", []byte("#cloud-config\n" + strings.Join(lines[:len(lines)-2], "")), ErrMalformed, "not closed"},
		{"block interrupted by YAML", cloudConfig([]byte(strings.Join(lines[:len(lines)-2], ""))), ErrMalformed, "inside the block"},
		{"truncated gzip", truncGzip, ErrMalformed, "gzip"},
		{"two blocks", cloudConfig(append(append([]byte{}, good...), good...)), ErrMalformed, "second block"},
		{"begin without sha256", cloudConfig([]byte(blockBegin + "bytes=12\n# AAAA\n" + blockEnd + "\n")), ErrMalformed, "want"},
		{"begin with short sha256", cloudConfig([]byte(blockBegin + "sha256=abc bytes=12\n# AAAA\n" + blockEnd + "\n")), ErrMalformed, "want"},
		{"line without '# '", cloudConfig([]byte(lines[0] + "AAAA\n" + blockEnd + "\n")), ErrMalformed, "inside the block"},
		{"non-base64 character", cloudConfig([]byte(lines[0] + "# AA*A\n" + blockEnd + "\n")), ErrMalformed, "inside the block"},
		{"bad base64 length", cloudConfig([]byte(lines[0] + "# AAAAA\n" + blockEnd + "\n")), ErrMalformed, "base64"},
		{"not gzip", cloudConfig([]byte(lines[0] + "# AAAA\n" + blockEnd + "\n")), ErrMalformed, "gzip"},
		{"a line dropped", cloudConfig([]byte(lines[0] + strings.Join(lines[2:], ""))), ErrMalformed, ""},
		{"a character changed", cloudConfig([]byte(lines[0] + "# " + flip(lines[1][2:], 40) + strings.Join(lines[2:], ""))), ErrMalformed, ""},
		{"checksum mismatch", cloudConfig([]byte(strings.Replace(string(good), "sha256=", "sha256=0", 1)[:len(blockBegin)+7] + strings.Repeat("0", 64) + string(good)[len(blockBegin)+7+64:])), ErrMalformed, "sha256"},
		{"size mismatch", cloudConfig([]byte(strings.Replace(string(good), " bytes=", " bytes=1", 1))), ErrMalformed, "bytes"},
		{"JSON syntax", cloudConfig(jsonBlock(`{"apiVersion": `)), ErrMalformed, "JSON"},
		{"JSON unknown field", cloudConfig(jsonBlock(`{"apiVersion":"prebake.dev/v1alpha1","kind":"AgentConfig","node":"n","joinMode":"kubeadm","files":[],"run":"rm -rf /"}`)), ErrMalformed, "unknown field"},
		{"JSON wrong type", cloudConfig(jsonBlock(`{"apiVersion":"prebake.dev/v1alpha1","kind":"AgentConfig","node":"n","joinMode":"kubeadm","files":{}}`)), ErrMalformed, "files"},
		{"JSON trailing data", cloudConfig(jsonBlock(`{"apiVersion":"prebake.dev/v1alpha1"} {}`)), ErrMalformed, "after the document"},
		{"content not base64", cloudConfig(jsonBlock(`{"apiVersion":"prebake.dev/v1alpha1","kind":"AgentConfig","node":"n","joinMode":"kubeadm","files":[{"path":"/a","mode":"0600","content":"` + testToken + `!"}]}`)), ErrMalformed, ""},
		{"apiVersion", cloudConfig(cfgBlock(func(c *Config) { c.APIVersion = "v2" })), ErrInvalid, "apiVersion"},
		{"kind", cloudConfig(cfgBlock(func(c *Config) { c.Kind = "Other" })), ErrInvalid, "kind"},
		{"node", cloudConfig(cfgBlock(func(c *Config) { c.Node = "" })), ErrInvalid, "node"},
		{"join mode", cloudConfig(cfgBlock(func(c *Config) { c.JoinMode = "ssh" })), ErrInvalid, "joinMode"},
		{"relative path", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Path = "etc/x" })), ErrInvalid, "files[0].path"},
		{"unclean path", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Path = "/etc/../root/.ssh/authorized_keys" })), ErrInvalid, "files[0].path"},
		{"root path", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Path = "/" })), ErrInvalid, "files[0].path"},
		{"duplicate path", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Path = KubeadmJoinPath })), ErrInvalid, "twice"},
		{"stamp path", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Path = StampPath })), ErrInvalid, "stamp"},
		{"mode not octal", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Mode = "0999" })), ErrInvalid, "mode"},
		{"mode setuid", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Mode = "4755" })), ErrInvalid, "mode"},
		{"mode short", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Mode = "644" })), ErrInvalid, "mode"},
		{"owner", cloudConfig(cfgBlock(func(c *Config) { c.Files[0].Owner = "root" })), ErrInvalid, "owner"},
		{"kubeadm without join file", cloudConfig(cfgBlock(func(c *Config) { c.Files = c.Files[:1] })), ErrInvalid, KubeadmJoinPath},
		{"kubelet without its files", cloudConfig(cfgBlock(func(c *Config) { c.JoinMode = ModeKubelet })), ErrInvalid, BootstrapKubeconfigPath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extract(tc.doc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := &Config{APIVersion: "x", Kind: "y", JoinMode: "z", Files: []File{{Path: "rel", Mode: "9"}}}
	err := c.Validate()
	for _, want := range []string{"apiVersion", "kind", "node", "joinMode", "files[0].path", "files[0].mode"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: missing %s", err, want)
		}
	}
}

func base64Std(b []byte) string { return base64StdEncoding.EncodeToString(b) }
