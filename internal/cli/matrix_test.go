package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/pipeline"
)

// Two runners — separate processes with separate local caches — share one
// registry layer cache (a `prebake serve`) and build overlapping shards of a
// two-version matrix one after the other: every layer is built exactly
// once over both, and the second runner's log shows the layers it took from
// the cache.
func TestMatrixTwoRunnersOneCache(t *testing.T) {
	bin := testenv.Prebake(t)
	reg := testenv.Serve(t, bin, "--root", t.TempDir()).Addr
	matrix := filepath.Join(t.TempDir(), "matrix.yaml")
	os.WriteFile(matrix, []byte(`apiVersion: prebake.dev/v1alpha1
kind: Matrix
versions:
  - {kubernetes: 1.36.4}
  - {kubernetes: 1.36.5}
`), 0o644)
	run := func(name, shard string) (pipeline.MatrixResult, string) {
		t.Helper()
		args := append(testenv.QuickstartArgs(t), "--matrix-file", matrix, "--shard", shard,
			"--push", reg+"/nodes", "--cache", reg+"/cache", "--insecure", "--json", "-o", "oci:"+filepath.Join(t.TempDir(), "out"))
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(t.TempDir(), name), "XDG_DATA_HOME="+t.TempDir())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		var r pipeline.MatrixResult
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return r, stderr.String()
	}
	// Runner 1 builds all of it (shard 1/1), runner 2 the newest half (1/2).
	a, _ := run("runner1", "1/1")
	b, log := run("runner2", "1/2")
	if a.Layers.Built != 7 || a.Layers.Registry != 0 {
		t.Errorf("runner 1: layers %+v, want 7 built", a.Layers)
	}
	if b.Layers.Built != 0 || b.Layers.Registry == 0 || len(b.Images) != 1 || b.Shard != "1/2" {
		t.Errorf("runner 2: %d images, shard %s, layers %+v: want none built, all from the registry cache", len(b.Images), b.Shard, b.Layers)
	}
	for _, c := range []string{"runtime linux/amd64", "kubernetes linux/arm64"} {
		if !strings.Contains(log, "layer from the registry cache: "+c) {
			t.Errorf("runner 2's log does not say %s came from the cache:\n%s", c, log)
		}
	}
	if a.Images[0].Digest != b.Images[0].Digest {
		t.Errorf("1.36.5: runner 1 built %s, runner 2 %s", a.Images[0].Digest, b.Images[0].Digest)
	}
}
