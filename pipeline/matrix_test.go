package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
	"github.com/prebake/prebake/registry"
)

func TestVersionRange(t *testing.T) {
	for _, tc := range []struct {
		r    string
		in   []string
		out  []string
		fail bool
	}{
		{r: "", in: []string{"1.34.0", "x"}},
		{r: "1.35", in: []string{"1.35.0", "1.35.8"}, out: []string{"1.34.9", "1.36.0"}},
		{r: "1.35, 1.34.11", in: []string{"1.35.0", "1.34.11"}, out: []string{"1.34.1", "1.36.0"}},
		{r: ">=1.35,<1.36.3", in: []string{"1.35.0", "1.36.2"}, out: []string{"1.34.11", "1.36.3"}},
		{r: ">1.35 <=1.36", in: []string{"1.36.0", "1.36.4"}, out: []string{"1.35.8", "1.37.0"}},
		{r: ">=1.34 1.36", in: []string{"1.36.1"}, out: []string{"1.35.1"}},
		{r: "v1.36.4", in: []string{"1.36.4", "v1.36.4"}, out: []string{"1.36.40"}},
		{r: ">=1.x", fail: true},
		{r: "1.2.3.4", fail: true},
		{r: ",", fail: true},
	} {
		vr, err := pipeline.ParseVersionRange(tc.r)
		if tc.fail {
			if !errors.Is(err, pipeline.ErrVersionRange) {
				t.Errorf("%q: err = %v, want ErrVersionRange", tc.r, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.r, err)
		}
		for _, v := range tc.in {
			if !vr.Match(v) {
				t.Errorf("%q does not match %s", tc.r, v)
			}
		}
		for _, v := range tc.out {
			if vr.Match(v) {
				t.Errorf("%q matches %s", tc.r, v)
			}
		}
	}
}

func TestCompactVersions(t *testing.T) {
	got := pipeline.CompactVersions([]string{"1.34.0", "1.36.4", "1.36.3", "1.35.1", "1.34.3", "1.34.1", "1.36.2"})
	want := []string{"1.36.2-1.36.4", "1.35.1", "1.34.0-1.34.3 (not 1.34.2)"}
	if !slices.Equal(got, want) {
		t.Errorf("CompactVersions = %q, want %q", got, want)
	}
}

// The catalog matrix: --latest 3 keeps three patch releases per minor,
// newest first, and shards cut it into contiguous, disjoint parts that cover
// it, the same on every call.
func TestPlanCatalogShards(t *testing.T) {
	all, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: "kubernetes-node"}, Latest: 3})
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, e := range all {
		vs = append(vs, e.Variables["kubernetes"])
	}
	// The expectation from the catalog itself: per minor, the first three
	// of its newest-first list.
	e, err := catalog.Get("kubernetes-node")
	if err != nil {
		t.Fatal(err)
	}
	supported, err := e.SupportedKubernetes()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	perMinor := map[string]int{}
	for _, v := range supported {
		m := v[:strings.LastIndex(v, ".")]
		if perMinor[m]++; perMinor[m] <= 3 {
			want = append(want, v)
		}
	}
	if len(want) < 6 || !slices.Equal(vs, want) {
		t.Fatalf("--latest 3: %q, want %q", vs, want)
	}
	var union []string
	for i := 1; i <= 4; i++ {
		part, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: "kubernetes-node"}, Latest: 3, Shard: pipeline.Shard{Index: i, Count: 4}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(part); n < len(want)/4 || n > len(want)/4+1 {
			t.Errorf("shard %d/4 has %d of %d images", i, n, len(want))
		}
		for _, e := range part {
			union = append(union, e.Variables["kubernetes"])
		}
	}
	if !slices.Equal(union, want) {
		t.Errorf("shards 1..4/4 together: %q, want %q", union, want)
	}
	if _, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: "kubernetes-node"}, Versions: mustRange(t, "1.99")}); !errors.Is(err, pipeline.ErrEmptyMatrix) {
		t.Errorf("no version: err = %v", err)
	}
	if _, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: "kubernetes-node", Set: map[string]string{"kubernetes": "1.36.4"}}}); !errors.Is(err, pipeline.ErrMatrixSet) {
		t.Errorf("--set kubernetes with a matrix: err = %v", err)
	}
	if _, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: testenv.Quickstart(t)}}); !errors.Is(err, pipeline.ErrNoMatrix) {
		t.Errorf("recipe file without a matrix file: err = %v", err)
	}
	for _, s := range []string{"0/2", "3/2", "1", "a/b", "1/0"} {
		if _, err := pipeline.ParseShard(s); !errors.Is(err, pipeline.ErrShard) {
			t.Errorf("shard %q: err = %v", s, err)
		}
	}
}

func mustRange(t *testing.T, s string) pipeline.VersionRange {
	t.Helper()
	r, err := pipeline.ParseVersionRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A matrix file's problems come with file:line:column.
func TestLoadMatrixFileProblems(t *testing.T) {
	p := filepath.Join(t.TempDir(), "matrix.yaml")
	os.WriteFile(p, []byte("apiVersion: prebake.dev/v1alpha1\nkind: Matrx\nversions:\n  - kubernetes: 1.36.4\n  - [1]\n  - kubernetes: {a: 1}\nextra: 1\n"), 0o644)
	_, err := pipeline.LoadMatrixFile(p)
	var ve *recipes.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	got := err.Error()
	for _, w := range []string{p + ":2:7: kind", p + ":5:5: versions[1]", p + ":6:17: versions[2].kubernetes", p + ":7:1: extra"} {
		if !strings.Contains(got, w) {
			t.Errorf("problems %q lack %q", got, w)
		}
	}
}

func quickstartMatrix(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "matrix.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: prebake.dev/v1alpha1\nkind: Matrix\nversions:\n  - kubernetes: 1.36.4\n  - kubernetes: 1.36.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runner(t *testing.T, cache string) pipeline.Options {
	t.Helper()
	f, err := pipeline.Fetch{CacheDir: cache, Mirrors: testenv.Mirrors(t)}.Fetcher()
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Options{Fetcher: f, Output: "oci:" + filepath.Join(t.TempDir(), "out"), Insecure: true}
}

// countFrom counts, per component and platform, the layers of r by origin.
func countFrom(r *pipeline.MatrixResult, from string) map[string]int {
	n := map[string]int{}
	for _, img := range r.Images {
		for _, p := range img.Platforms {
			for _, l := range p.Layers {
				if l.From == from {
					n[l.Component+" "+p.Platform]++
				}
			}
		}
	}
	return n
}

// One matrix run of two Kubernetes versions on two platforms builds the
// layers the versions share (kernel, runtime) once per platform, even with
// both images building at once; every image is pushed, tagged its version.
func TestRunMatrixSharesLayers(t *testing.T) {
	testenv.Short(t, "builds four images")
	entries, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: testenv.Quickstart(t)}, File: quickstartMatrix(t)})
	if err != nil {
		t.Fatal(err)
	}
	reg := fixture.Registry(t)
	o := runner(t, t.TempDir())
	o.Push = reg + "/nodes"
	r, err := pipeline.RunMatrix(t.Context(), entries, o, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel layer has no per-platform input: one build serves both.
	built := countFrom(r, builder.FromBuild)
	if n := built["kernel linux/amd64"] + built["kernel linux/arm64"]; n != 1 {
		t.Errorf("kernel built %d times, want 1 (%v)", n, built)
	}
	for _, plat := range []string{"linux/amd64", "linux/arm64"} {
		for comp, want := range map[string]int{"runtime": 1, "kubernetes": 2} {
			if got := built[comp+" "+plat]; got != want {
				t.Errorf("%s %s built %d times, want %d (%v)", comp, plat, got, want, built)
			}
		}
	}
	if r.Layers.Built != 7 || r.Layers.Cache != 5 || r.Failed != 0 || r.Uploaded == 0 {
		t.Errorf("layers %+v, failed %d, uploaded %d", r.Layers, r.Failed, r.Uploaded)
	}
	for _, img := range r.Images {
		v := img.Variables["kubernetes"]
		if img.Version != v || !strings.HasPrefix(img.Pushed, reg+"/nodes@sha256:") {
			t.Errorf("image %s: version %s pushed %s", v, img.Version, img.Pushed)
		}
		if _, _, err := registry.Get(t.Context(), registry.MustParse(reg+"/nodes:"+v), registry.Options{Insecure: true}); err != nil {
			t.Errorf("tag %s: %v", v, err)
		}
	}
	if _, err := pipeline.RunMatrix(t.Context(), entries, pipeline.Options{Push: reg + "/nodes:x"}, 1); !errors.Is(err, pipeline.ErrMatrixTag) {
		t.Errorf("push with a tag: err = %v", err)
	}
}

// Two runners with separate local caches and one registry cache, building
// overlapping shards one after the other: the first builds every layer and
// pushes it to the cache, the second builds none and takes every layer it
// lacks from the cache; the images are the same.
func TestRegistryCacheTwoRunners(t *testing.T) {
	testenv.Short(t, "builds images")
	reg := fixture.Registry(t)
	cache, err := pipeline.NewRegistryCache(reg+"/cache", pipeline.RegistryCacheOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: testenv.Quickstart(t)}, File: quickstartMatrix(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := runner(t, t.TempDir())
	a.LayerCache = cache
	ra, err := pipeline.RunMatrix(t.Context(), all, a, 2)
	if err != nil {
		t.Fatal(err)
	}
	b := runner(t, t.TempDir())
	b.LayerCache = cache
	rb, err := pipeline.RunMatrix(t.Context(), all[1:], b, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Layers.Built != 7 || ra.Layers.Registry != 0 {
		t.Errorf("runner 1: layers %+v, want 7 built", ra.Layers)
	}
	// The second runner's 6 layers: the kernel layer (shared by both
	// platforms) once from the registry, then from its local cache.
	if rb.Layers.Built != 0 || rb.Layers.Registry != 5 || rb.Layers.Cache != 1 {
		t.Errorf("runner 2: layers %+v, want 5 from the registry cache, 1 local, none built", rb.Layers)
	}
	if ra.Images[1].Digest != rb.Images[0].Digest {
		t.Errorf("1.36.5: runner 1 %s, runner 2 %s", ra.Images[1].Digest, rb.Images[0].Digest)
	}
	if _, err := pipeline.NewRegistryCache(reg+"/cache:tag", pipeline.RegistryCacheOptions{}); !errors.Is(err, pipeline.ErrCacheRef) {
		t.Errorf("cache with a tag: err = %v", err)
	}
}

// Promoting a matrix result moves each image's CHANNEL-VERSION tag, records
// it (history), and the report says what each channel named before and which
// layers changed since.
func TestPromoteMatrix(t *testing.T) {
	testenv.Short(t, "builds images")
	reg := fixture.Registry(t)
	build := func(epoch int64) *pipeline.MatrixResult {
		entries, err := pipeline.Plan(pipeline.MatrixOptions{Recipe: pipeline.RecipeOptions{Recipe: testenv.Quickstart(t), SourceDateEpoch: &epoch}, File: quickstartMatrix(t)})
		if err != nil {
			t.Fatal(err)
		}
		o := runner(t, t.TempDir())
		o.Push = reg + "/nodes"
		r, err := pipeline.RunMatrix(t.Context(), entries, o, 2)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ro := registry.Options{Insecure: true}
	first := build(1767225600)
	rep, err := pipeline.PromoteMatrix(t.Context(), first, pipeline.PromoteOptions{Channel: "nightly", Registry: ro, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) != 2 || rep.Images[0].Channel != "nightly-1.36.5" || rep.Images[0].Previous != "" || len(rep.Images[0].Platforms) != 2 || rep.Images[0].Platforms[0].Size == 0 {
		t.Fatalf("first promotion: %+v", rep.Images)
	}
	second := build(1767225601) // another epoch: every layer differs
	rep, err = pipeline.PromoteMatrix(t.Context(), second, pipeline.PromoteOptions{Channel: "nightly", Registry: ro, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Images[1]
	if p.Version != "1.36.4" || p.Previous != first.Images[1].Digest || p.Digest != second.Images[1].Digest || len(p.Changes) != 6 {
		t.Errorf("second promotion of 1.36.4: %+v", p)
	}
	h, err := registry.ChannelHistory(t.Context(), registry.MustParse(reg+"/nodes"), "nightly-1.36.4", ro)
	if err != nil || len(h) != 2 {
		t.Errorf("history of nightly-1.36.4: %d entries, %v", len(h), err)
	}
	md := rep.Markdown()
	for _, w := range []string{"| 1.36.5 | nightly-1.36.5 | `" + second.Images[0].Digest, "kubernetes linux/amd64 changed"} {
		if !strings.Contains(md, w) {
			t.Errorf("report lacks %q:\n%s", w, md)
		}
	}
}
