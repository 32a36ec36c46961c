package pipeline_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/registry"
)

// A saved matrix result (what `build --json-file` writes), promoted in one
// call against prebake's own registry: every image is verified and goes to
// its nightly channel; the report, saved, is promoted on to stable; a new
// nightly's report names the changed layers; an unsigned set moves no
// channel; RollbackSet puts every channel of a set back.
func TestPromoteSet(t *testing.T) {
	testenv.Short(t, "builds images")
	reg := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	ro := registry.Options{Insecure: true}
	dir := t.TempDir()
	build := func(name string, epoch int64, sign bool) string {
		t.Helper()
		entries, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: testenv.Quickstart(t), SourceDateEpoch: &epoch}, File: quickstartMatrix(t)})
		if err != nil {
			t.Fatal(err)
		}
		o := runner(t, t.TempDir())
		o.Push = reg + "/nodes"
		if sign {
			o.SignKey = priv
			o.Password = func(bool) ([]byte, error) { return nil, nil }
		}
		r, err := pipeline.RunMatrix(t.Context(), entries, o, 2)
		if err != nil {
			t.Fatal(err)
		}
		return save(t, filepath.Join(dir, name), r)
	}
	promote := func(channel string, files ...string) (*pipeline.PromotionReport, error) {
		t.Helper()
		set, err := pipeline.LoadPromotionSet(files)
		if err != nil {
			t.Fatal(err)
		}
		return pipeline.PromoteSet(t.Context(), set, pipeline.PromoteOptions{Channel: channel, Registry: ro, By: "test", VerifyKey: pub})
	}

	first := build("first.json", 1767225600, true)
	nightly, err := promote("nightly", first)
	if err != nil {
		t.Fatal(err)
	}
	if len(nightly.Images) != 2 {
		t.Fatalf("nightly: %d images, want 2", len(nightly.Images))
	}
	for _, p := range nightly.Images {
		if !p.Verified || p.Signatures == 0 || p.Previous != "" || p.Channel != "nightly-"+p.Version || len(p.Platforms) != 2 || p.Platforms[0].Size == 0 || p.Error != "" {
			t.Errorf("nightly: %+v", p)
		}
		got, err := registry.Inspect(t.Context(), registry.MustParse(reg+"/nodes:"+p.Channel), ro)
		if err != nil || got.Digest != p.Digest {
			t.Errorf("%s: %v, %v; want %s", p.Channel, got, err, p.Digest)
		}
	}

	// The report, saved, is the next promotion's input: nightly to stable.
	nightlyJSON := save(t, filepath.Join(t.TempDir(), "nightly.json"), nightly)
	stable, err := promote("stable", nightlyJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(stable.Images) != 2 || stable.Images[0].Channel != "stable-1.36.5" || stable.Images[0].Digest != nightly.Images[0].Digest {
		t.Fatalf("stable: %+v", stable.Images)
	}

	// A new nightly (another epoch: every layer differs), given as the
	// directory of shard results; the report there is not read back.
	save(t, filepath.Join(dir, "report.json"), nightly)
	os.Remove(first)
	build("second.json", 1767225601, true)
	again, err := promote("nightly", dir)
	if err != nil {
		t.Fatal(err)
	}
	p := again.Images[1]
	if len(again.Images) != 2 || p.Version != "1.36.4" || p.Previous != nightly.Images[1].Digest || p.Digest == p.Previous || len(p.Changes) != 6 {
		t.Errorf("second nightly of 1.36.4: %+v", p)
	}
	md := again.Markdown()
	for _, w := range []string{"| 1.36.4 | nightly-1.36.4 | `" + p.Digest, "verified (", "kubernetes linux/arm64 changed"} {
		if !strings.Contains(md, w) {
			t.Errorf("report lacks %q:\n%s", w, md)
		}
	}
	h, err := registry.ChannelHistory(t.Context(), registry.MustParse(reg+"/nodes"), "nightly-1.36.4", ro)
	if err != nil || len(h) != 2 || h[0].Digest != p.Digest || h[0].By != "test" {
		t.Errorf("history of nightly-1.36.4: %+v, %v", h, err)
	}

	// An unsigned set fails its checks: no channel moves.
	unsigned := build("unsigned.json", 1767225602, false)
	rep, err := promote("nightly", unsigned)
	if !errors.Is(err, pipeline.ErrPromoteFailed) || rep == nil || rep.Images[0].Error == "" {
		t.Errorf("unsigned: err = %v, report %+v", err, rep)
	}
	if got, _ := registry.Inspect(t.Context(), registry.MustParse(reg+"/nodes:nightly-1.36.4"), ro); got == nil || got.Digest != p.Digest {
		t.Errorf("an unsigned set moved nightly-1.36.4 to %v", got)
	}

	// Rolling the second nightly back puts both channels where they were.
	moved, err := pipeline.RollbackSet(t.Context(), again, pipeline.PromoteOptions{Registry: ro, By: "test"})
	if err != nil || len(moved) != 2 {
		t.Fatalf("rollback: %d moves, %v", len(moved), err)
	}
	for _, q := range nightly.Images {
		if got, _ := registry.Inspect(t.Context(), registry.MustParse(reg+"/nodes:"+q.Channel), ro); got == nil || got.Digest != q.Digest {
			t.Errorf("after rollback %s names %v, want %s", q.Channel, got, q.Digest)
		}
	}
	// Again: the channels no longer name what that set put there.
	if _, err := pipeline.RollbackSet(t.Context(), again, pipeline.PromoteOptions{Registry: ro}); !errors.Is(err, pipeline.ErrChannelMoved) {
		t.Errorf("second rollback: err = %v, want ErrChannelMoved", err)
	}
}

// Bad saved results are refused with the file and, for JSON errors, the
// line and column.
func TestLoadPromotionSetErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ body, want string }{
		"syntax.json":   {"{\n  \"images\": [\n    {\"digest\": }\n  ]\n}\n", "syntax.json: line 3, column 17"},
		"unknown.json":  {`{"images": [], "layerz": {}}`, `unknown field "layerz"`},
		"unpushed.json": {`{"digest": "sha256:` + strings.Repeat("a", 64) + `", "reference": "oci:x", "name": "n", "version": "1", "recipeDigest": "", "sbom": "", "platforms": []}`, "was not pushed"},
		"other.json":    {`{"kind": "Thing"}`, "not a build result"},
		"empty.json":    {`{"images": [{"variables": {"kubernetes": "1.36.4"}, "error": "boom"}], "layers": {"built": 0, "cache": 0, "registry": 0}}`, "no pushed image"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := pipeline.LoadPromotionSet([]string{p})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// A channel that is no tag fails the checks, before any registry is asked.
func TestPromoteSetBadChannel(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	rep, err := pipeline.PromoteSet(t.Context(), []pipeline.PromotedImage{{Version: "1.36.4", Reference: "127.0.0.1:1/nodes@" + d, Digest: d}}, pipeline.PromoteOptions{Channel: "night/ly"})
	if !errors.Is(err, pipeline.ErrPromoteFailed) || rep == nil || !strings.Contains(rep.Images[0].Error, "must be a valid tag") {
		t.Errorf("err = %v, report %+v", err, rep)
	}
}

func save(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
