package render

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/prebake/prebake/cloudinit"
)

const testdata = "../cloudinit/testdata"

// A fleet rendered into a new directory (written while it renders) and
// into an existing one (each file replaced) holds the same bytes as
// rendered in memory; the new directory's documents are not kept.
func TestRunFleetOutputs(t *testing.T) {
	ctx := t.Context()
	fleet := filepath.Join(testdata, "fleet.yaml")
	o := Options{Kubernetes: "1.36.4", Format: cloudinit.FormatMIME, Gzip: true}
	specs, err := cloudinit.Load(fleet)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cloudinit.RenderAll(specs, cloudinit.Options{KubernetesVersion: "1.36.4", Format: cloudinit.FormatMIME, Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new", "out")
	o.Output = dir
	docs, err := Run(ctx, []string{fleet}, o)
	if err != nil {
		t.Fatal(err)
	}
	check := func(docs []Document, kept bool) {
		t.Helper()
		if len(docs) != len(want) {
			t.Fatalf("%d documents, want %d", len(docs), len(want))
		}
		for i, d := range docs {
			b, err := os.ReadFile(d.Path)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(d.Path)
			if !bytes.Equal(b, want[i]) || d.Size != len(want[i]) || fi.Mode().Perm() != 0o600 || filepath.Base(d.Path) != d.Node+".mime.gz" {
				t.Errorf("%s: %d bytes (size %d, mode %v), want %d", d.Path, len(b), d.Size, fi.Mode().Perm(), len(want[i]))
			}
			if kept != (d.Data != nil) {
				t.Errorf("%s: document kept %v, want %v", d.Node, d.Data != nil, kept)
			}
		}
	}
	check(docs, false)
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("staging left behind: %v", ents)
	}
	docs, err = Run(ctx, []string{fleet}, o)
	if err != nil {
		t.Fatal(err)
	}
	check(docs, true)
}

// A fleet that fails while it renders (here: over a size limit) leaves
// nothing, not even the hidden directory it was being written to.
func TestRunFleetFailureWritesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	_, err := Run(t.Context(), []string{filepath.Join(testdata, "fleet.yaml")}, Options{Kubernetes: "1.36.4", Output: out, MaxSize: cloudinit.SizeLimit{Bytes: 1000}})
	var sz *cloudinit.SizeError
	if !errors.As(err, &sz) {
		t.Fatalf("got %v, want a size error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed render left %v", ents)
	}
	if _, err := Run(t.Context(), []string{filepath.Join(testdata, "fleet.yaml")}, Options{Kubernetes: "1.36.4"}); !errors.Is(err, ErrOutputDirRequired) {
		t.Errorf("fleet without an output: %v, want ErrOutputDirRequired", err)
	}
}
