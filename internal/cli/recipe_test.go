package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
)

// recipe validate --json: one object per recipe, each problem with its
// file, line, column and field; the exit status still says invalid.
func TestRecipeValidateJSON(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: prebake.dev/v1alpha1\nkind: Recipe\nmetadata: {name: x}\nbogus: 1\n"), 0o644)
	out, _, err := runPrebake(t, "recipe", "validate", bad, testenv.Quickstart(t), "--json")
	if err == nil {
		t.Error("an invalid recipe validated")
	}
	var got []validation
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 2 || got[0].Valid || !got[1].Valid || got[1].Name != "quickstart-node" || got[1].Components != 3 {
		t.Fatalf("validate --json: %+v", got)
	}
	var found bool
	for _, p := range got[0].Problems {
		if p.File == bad && p.Line == 4 && p.Column == 1 && p.Field == "bogus" {
			found = true
		}
	}
	if !found {
		t.Errorf("no problem at %s:4:1 bogus: %+v", bad, got[0].Problems)
	}
}
