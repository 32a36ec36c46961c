package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/prebake/prebake/apply"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/registry"
)

func TestApplyFlags(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runPrebake(t, "apply", "--root", dir); err == nil || !strings.Contains(err.Error(), "REF@sha256") {
		t.Errorf("no reference: err = %v", err)
	}
	if _, _, err := runPrebake(t, "apply", "oci:"+dir+"@sha256:"+strings.Repeat("0", 64), "--rollback", "--root", dir); err == nil || !strings.Contains(err.Error(), "--rollback takes no") {
		t.Errorf("--rollback with a reference: err = %v", err)
	}
	if _, _, err := runPrebake(t, "apply", "oci:"+dir+"@sha256:"+strings.Repeat("0", 64), "--root", dir); !errors.Is(err, apply.ErrUnsigned) {
		t.Errorf("no key: err = %v, want ErrUnsigned", err)
	}
	if _, _, err := runPrebake(t, "apply", "oci:"+dir+":tag", "--root", dir, "--no-verify"); !errors.Is(err, registry.ErrDigestRequired) {
		t.Errorf("a tag: err = %v, want ErrDigestRequired", err)
	}
	if _, _, err := runPrebake(t, "apply", "--rollback", "--root", dir); !errors.Is(err, apply.ErrNoPrevious) && !errors.Is(err, apply.ErrNotRoot) {
		t.Errorf("rollback with nothing applied: err = %v, want ErrNoPrevious", err)
	}
}

func TestStatusEmpty(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runPrebake(t, "status", "--root", dir)
	if err != nil || !strings.Contains(out, "nothing applied on "+dir) {
		t.Errorf("status: %q, %v", out, err)
	}
	out, _, err = runPrebake(t, "status", "--root", dir, "--json")
	var st apply.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Applied != nil {
		t.Errorf("status --json: %q, %v", out, err)
	}
}

// The commands end to end on a scratch root: apply (unsigned, so
// --no-verify), status, a second image, --dry-run, --rollback.
func TestApplyStatusRollback(t *testing.T) {
	testenv.Root(t, "apply writes a root with its file owners")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	l, err := registry.OpenLayout(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for i := 0; i < 2; i++ {
		img, err := random.Image(100, 2)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Put(t.Context(), fmt.Sprint(i), img, nil, registry.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, "oci:"+filepath.Join(dir, "oci")+"@"+d.Digest.String())
	}
	out, errOut, err := runPrebake(t, "apply", refs[0], "--root", root, "--no-verify")
	if err != nil || !strings.Contains(out, "applied "+refs[0]) || !strings.Contains(out, "2 added") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if !strings.Contains(errOut, "skipped systemd daemon-reload: the root is "+root) {
		t.Errorf("after-apply steps not reported as skipped:\n%s", errOut)
	}
	out, _, err = runPrebake(t, "apply", refs[1], "--root", root, "--no-verify", "--dry-run")
	if err != nil || !strings.Contains(out, "would apply "+refs[1]) || strings.Count(out, "  + /") != 2 || strings.Count(out, "  - /") != 2 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, _, err := runPrebake(t, "apply", refs[1], "--root", root, "--no-verify", "-q"); err != nil {
		t.Fatal(err)
	}
	out, _, err = runPrebake(t, "status", "--root", root)
	if err != nil || !strings.Contains(out, "applied:  "+refs[1]) || !strings.Contains(out, "previous: "+refs[0]) || !strings.Contains(out, "verified:   no") {
		t.Errorf("status: %v\n%s", err, out)
	}
	if _, _, err := runPrebake(t, "apply", "--rollback", "--root", root); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runPrebake(t, "status", "--root", root, "--json")
	var st apply.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Applied == nil || st.Applied.Ref != refs[0] {
		t.Errorf("status after rollback: %v\n%s", err, out)
	}
}
