package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/registry"
)

// What a CI pipeline does, against prebake's own registry: two shards of a
// matrix build write their results with --json-file and --images-file;
// `promote --from` promotes both shards' images in one call after
// verifying them and writes the report; a second nightly's set is promoted
// and then undone with `channel rollback --from`.
func TestPromoteFromSavedResults(t *testing.T) {
	testenv.Short(t, "builds images")
	fixture.Isolate(t)
	t.Setenv("COSIGN_PASSWORD", "")
	tmp := t.TempDir()
	reg := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	matrix := filepath.Join(tmp, "matrix.yaml")
	os.WriteFile(matrix, []byte("apiVersion: prebake.dev/v1alpha1\nkind: Matrix\nversions:\n  - {kubernetes: 1.36.4}\n  - {kubernetes: 1.36.5}\n"), 0o644)
	shards := func(name, epoch string) string {
		t.Helper()
		t.Setenv("SOURCE_DATE_EPOCH", epoch)
		dir := filepath.Join(tmp, name)
		for _, s := range []string{"1", "2"} {
			_, stderr, err := runPrebake(t, testenv.QuickstartArgs(t, "-q", "--matrix-file", matrix, "--shard", s+"/2", "--push", reg+"/nodes", "--insecure",
				"--sign-key", priv, "-o", "oci:"+filepath.Join(tmp, "out"), "--json-file", filepath.Join(dir, "result-"+s+".json"), "--images-file", filepath.Join(dir, "images-"+s+".txt"))...)
			if err != nil {
				t.Fatalf("%s shard %s: %v\n%s", name, s, err, stderr)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "images-"+s+".txt"))
			if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], reg+"/nodes@sha256:") {
				t.Errorf("%s images-%s.txt: %q", name, s, b)
			}
		}
		return dir
	}
	promote := func(dir string) pipeline.PromotionReport {
		t.Helper()
		out, stderr, err := runPrebake(t, "promote", "--from", dir, "nightly", "--verify-key", pub, "--insecure", "--json",
			"--report", filepath.Join(dir, "report.md"), "--report-json", filepath.Join(dir, "report.json"))
		if err != nil {
			t.Fatalf("promote --from %s: %v\n%s", dir, err, stderr)
		}
		var rep pipeline.PromotionReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Images) != 2 || !rep.Images[0].Verified || !rep.Images[1].Verified {
			t.Fatalf("promote --from %s: %s", dir, out)
		}
		md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
		if !strings.Contains(string(md), "| nightly-1.36.5 | `"+rep.Images[0].Digest) && !strings.Contains(string(md), "| 1.36.5 | nightly-1.36.5 | `") {
			t.Errorf("report.md:\n%s", md)
		}
		return rep
	}
	channel := func(tag string) string {
		s, err := registry.Inspect(t.Context(), registry.MustParse(reg+"/nodes:"+tag), registry.Options{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		return s.Digest
	}

	first := promote(shards("first", "1767225600"))
	second := promote(shards("second", "1767225601"))
	for i, p := range second.Images {
		if p.Previous != first.Images[i].Digest || len(p.Changes) == 0 || channel(p.Channel) != p.Digest {
			t.Errorf("second nightly %s: %+v", p.Version, p)
		}
	}
	out, stderr, err := runPrebake(t, "channel", "rollback", "--from", filepath.Join(tmp, "second", "report.json"), "--insecure")
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("channel rollback --from: %v\n%s\n%s", err, out, stderr)
	}
	for _, p := range first.Images {
		if got := channel(p.Channel); got != p.Digest {
			t.Errorf("after rollback %s = %s, want %s", p.Channel, got, p.Digest)
		}
	}
	if _, _, err := runPrebake(t, "promote", "--from", filepath.Join(tmp, "first"), "nightly", "--insecure"); err == nil || !strings.Contains(err.Error(), "--verify-key") {
		t.Errorf("promote --from without --verify-key or --no-verify: %v", err)
	}
	if _, _, err := runPrebake(t, "promote", "x@sha256:"+strings.Repeat("0", 64), "--channel", "c", "--no-verify", "--report", "r.md"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("promote REF --report: %v", err)
	}
}
