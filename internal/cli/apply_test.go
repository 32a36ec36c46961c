package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/prebake/prebake/apply"
	"github.com/prebake/prebake/registry"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestApplyFlags(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCLI(t, "apply", "--root", dir); err == nil || !strings.Contains(err.Error(), "REF@sha256") {
		t.Errorf("no reference: err = %v", err)
	}
	if _, _, err := runCLI(t, "apply", "oci:"+dir+"@sha256:"+strings.Repeat("0", 64), "--rollback", "--root", dir); err == nil || !strings.Contains(err.Error(), "--rollback takes no") {
		t.Errorf("--rollback with a reference: err = %v", err)
	}
	if _, _, err := runCLI(t, "apply", "oci:"+dir+"@sha256:"+strings.Repeat("0", 64), "--root", dir); !errors.Is(err, apply.ErrUnsigned) {
		t.Errorf("no key: err = %v, want ErrUnsigned", err)
	}
	if _, _, err := runCLI(t, "apply", "oci:"+dir+":tag", "--root", dir, "--no-verify"); !errors.Is(err, registry.ErrDigestRequired) {
		t.Errorf("a tag: err = %v, want ErrDigestRequired", err)
	}
	if _, _, err := runCLI(t, "apply", "--rollback", "--root", dir); !errors.Is(err, apply.ErrNoPrevious) && !errors.Is(err, apply.ErrNotRoot) {
		t.Errorf("rollback with nothing applied: err = %v, want ErrNoPrevious", err)
	}
}

func TestStatusEmpty(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCLI(t, "status", "--root", dir)
	if err != nil || !strings.Contains(out, "nothing applied on "+dir) {
		t.Errorf("status: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "status", "--root", dir, "--json")
	var st apply.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Applied != nil {
		t.Errorf("status --json: %q, %v", out, err)
	}
}
