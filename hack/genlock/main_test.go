package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/agentbuild"
	"github.com/prebake/prebake/internal/testenv"
)

// The committed catalog locks and matrix are exactly what genlock writes from
// the Kubespray data in testdata/kubespray (so they are neither hand-edited nor stale), and
// two runs give the same bytes.
func TestCommittedOutputIsCurrent(t *testing.T) {
	data := testenv.Fixture(t, "testdata/kubespray")
	for i := 0; i < 2; i++ {
		out := t.TempDir()
		if err := run(data, out, ""); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"versions.yaml", "kubernetes-node/recipe.lock.yaml", "kubernetes-control-plane/recipe.lock.yaml"} {
			got, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("..", "..", "recipes", "catalog", f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, ".lock.yaml") {
				// prebake-agent's entries come from make agent-lock, not
				// Kubespray: genlock keeps what the lock in out has.
				got = agentbuild.SetEntries(got, agentbuild.Entries(want))
			}
			if !bytes.Equal(got, want) {
				t.Errorf("recipes/catalog/%s is not what genlock generates; run go run ./hack/genlock", f)
			}
		}
	}
}

// docs/catalog.md's version matrix is the generated one.
func TestDocsMatrixIsCurrent(t *testing.T) {
	data := testenv.Fixture(t, "testdata/kubespray")
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "catalog.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	docs := filepath.Join(out, "catalog.md")
	if err := os.WriteFile(docs, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(data, out, docs); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(docs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("docs/catalog.md's version matrix is not what genlock generates; run go run ./hack/genlock -docs docs/catalog.md")
	}
}

func TestBadTemplateIsAnError(t *testing.T) {
	urls := map[string]string{"x_download_url": "{{ github_url }}/{{ something_new | filter }}"}
	if _, err := expandURL(urls, "x_download_url", nil); err == nil {
		t.Fatal("an unknown Jinja expression was accepted")
	}
}
