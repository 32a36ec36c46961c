package pluginutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseDigestRef(t *testing.T) {
	for s, want := range map[string]string{
		"127.0.0.1:5000/nodes@" + d: "",
		"oci:/srv/nodes@" + d:       "",
		"store:nodes@" + d:          "",
		"127.0.0.1:5000/nodes:1.36": "by a tag (1.36)",
		"127.0.0.1:5000/nodes":      "names the image by", // "latest" filled in, still no digest
		"oci:/srv/nodes":            "names the image by no digest",
		"":                          "empty reference",
	} {
		_, err := ParseDigestRef(s)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", s, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", s, err, want)
		}
	}
}

func TestUnknown(t *testing.T) {
	if !Unknown("<unknown>") || Unknown("") || Unknown("store:x") {
		t.Error("Unknown")
	}
}

func TestCheckKeyFileAndProblems(t *testing.T) {
	f := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, ok := range map[string]bool{f: true, "": true, "env://KEY": true, "awskms:///alias/x": true, "/nonexistent/k": false, "relative.pub": false} {
		if err := CheckKeyFile(k); (err == nil) != ok {
			t.Errorf("CheckKeyFile(%q) = %v", k, err)
		}
	}
	var p Problems
	if p.Err() != nil {
		t.Error("no problems, yet an error")
	}
	p.Add("a", nil)
	p.Addf("b", "bad %d", 1)
	p.Add("c", os.ErrNotExist)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "b: bad 1") || !strings.Contains(err.Error(), "c: file does not exist") || strings.Contains(err.Error(), "a:") {
		t.Errorf("Err() = %v", err)
	}
}
