package pipeline

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
	"github.com/prebake/prebake/registry"
)

// MatrixOptions say which images a matrix build makes: one image (every
// platform of the recipe, or Recipe.Platforms) per row of variables.
type MatrixOptions struct {
	// Recipe is the recipe and the settings every row shares; a row's
	// variables may not be given in Recipe.Set too.
	Recipe RecipeOptions
	// File is a matrix file (LoadMatrixFile); empty means every supported
	// Kubernetes version of a catalog recipe.
	File string
	// Versions keeps the rows whose kubernetes variable is in the range.
	Versions VersionRange
	// Latest keeps the Latest newest patch releases of each Kubernetes
	// minor; 0 keeps all.
	Latest int
	// Shard keeps one deterministic part of the matrix; the zero value is
	// all of it.
	Shard Shard
}

// Shard is part Index (1-based) of Count of a matrix: the rows, newest
// Kubernetes first, cut into Count contiguous runs of near-equal length, so
// that the versions of a minor (which share layers) stay together.
type Shard struct{ Index, Count int }

// ParseShard parses I/N (1 ≤ I ≤ N).
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || b < 1 || a < 1 || a > b {
		return Shard{}, fmt.Errorf("%w %q: want I/N with 1 <= I <= N (2/4)", ErrShard, s)
	}
	return Shard{a, b}, nil
}

func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// cut returns shard s of n items as [lo, hi).
func (s Shard) cut(n int) (int, int) {
	if s.Count == 0 {
		return 0, n
	}
	return (s.Index - 1) * n / s.Count, s.Index * n / s.Count
}

// MatrixEntry is one image of a matrix.
type MatrixEntry struct {
	// Variables are the row's: what this image sets on top of the recipe.
	Variables map[string]string `json:"variables"`
	Resolved  *recipes.Resolved `json:"-"`
}

// Plan resolves the matrix o describes and returns the entries of its shard,
// newest Kubernetes version first. Every row of the whole matrix is resolved
// (so every shard sees the same problems) and must give a distinct image
// version, since the version is the image's tag.
func Plan(o MatrixOptions) ([]MatrixEntry, error) {
	if o.Shard.Count > 0 && (o.Shard.Index < 1 || o.Shard.Index > o.Shard.Count) {
		return nil, fmt.Errorf("%w %s", ErrShard, o.Shard)
	}
	var rows []map[string]string
	switch {
	case o.File != "":
		var err error
		if rows, err = LoadMatrixFile(o.File); err != nil {
			return nil, err
		}
	case IsCatalogName(o.Recipe.Recipe):
		e, err := catalog.Get(o.Recipe.Recipe)
		if err != nil {
			return nil, err
		}
		vs, err := e.SupportedKubernetes()
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			rows = append(rows, map[string]string{"kubernetes": v})
		}
	default:
		return nil, fmt.Errorf("%s: %w", o.Recipe.Recipe, ErrNoMatrix)
	}
	rows, err := selectRows(rows, o.Versions, o.Latest)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w (versions %q)", ErrEmptyMatrix, o.Versions)
	}
	entries := make([]MatrixEntry, len(rows))
	byVersion := map[string]int{}
	for i, row := range rows {
		ro := o.Recipe
		ro.Set = maps.Clone(row)
		for k, v := range o.Recipe.Set {
			if _, ok := row[k]; ok {
				return nil, fmt.Errorf("%w: %s is set by the matrix and by --set", ErrMatrixSet, k)
			}
			ro.Set[k] = v
		}
		res, err := Resolve(ro)
		if err != nil {
			return nil, fmt.Errorf("matrix row %s: %w", rowString(row), err)
		}
		if j, ok := byVersion[res.Version]; ok {
			return nil, fmt.Errorf("%w: rows %s and %s both give version %q (metadata.version should name the row's variables)", ErrMatrixVersion, rowString(rows[j]), rowString(row), res.Version)
		}
		byVersion[res.Version] = i
		entries[i] = MatrixEntry{Variables: row, Resolved: res}
	}
	lo, hi := o.Shard.cut(len(entries))
	return entries[lo:hi], nil
}

// selectRows keeps the rows in r (newest Kubernetes first, the Latest newest
// of each minor) in that order; without a kubernetes variable the file's
// order stands.
func selectRows(rows []map[string]string, r VersionRange, latest int) ([]map[string]string, error) {
	var out []map[string]string
	for _, row := range rows {
		k, ok := row["kubernetes"]
		if !ok {
			if r.String() != "" || latest > 0 {
				return nil, fmt.Errorf("%w: matrix row %s has no kubernetes variable to select by", ErrVersionRange, rowString(row))
			}
			out = append(out, row)
			continue
		}
		if r.Match(k) {
			out = append(out, row)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, aok := out[i]["kubernetes"]
		b, bok := out[j]["kubernetes"]
		return aok && bok && lessVersion(b, a)
	})
	if latest > 0 {
		n := map[string]int{}
		out = slices.DeleteFunc(out, func(row map[string]string) bool {
			m := minorOf(row["kubernetes"])
			n[m]++
			return n[m] > latest
		})
	}
	return out, nil
}

func rowString(row map[string]string) string {
	keys := slices.Sorted(maps.Keys(row))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + row[k]
	}
	return strings.Join(parts, ",")
}

// LoadMatrixFile reads a matrix file: rows of recipe variables, one image
// each.
//
//	apiVersion: prebake.dev/v1alpha1
//	kind: Matrix
//	versions:
//	  - kubernetes: 1.36.4
//	    containerd: 2.3.4
//
// Every problem is reported with its file:line:column.
func LoadMatrixFile(path string) ([]map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, &recipes.ValidationError{Problems: []recipes.Problem{{File: path, Msg: err.Error()}}}
	}
	var problems []recipes.Problem
	add := func(n *yaml.Node, field, format string, args ...any) {
		problems = append(problems, recipes.Problem{File: path, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &recipes.ValidationError{Problems: []recipes.Problem{{File: path, Msg: "a matrix file is a mapping (apiVersion, kind, versions)"}}}
	}
	top := doc.Content[0]
	var rows []map[string]string
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		seen[k.Value] = true
		switch k.Value {
		case "apiVersion":
			if v.Value != recipes.APIVersion {
				add(v, "apiVersion", "unsupported apiVersion %q (want %q)", v.Value, recipes.APIVersion)
			}
		case "kind":
			if v.Value != "Matrix" {
				add(v, "kind", "kind %q, want Matrix", v.Value)
			}
		case "versions":
			if v.Kind != yaml.SequenceNode {
				add(v, "versions", "want a list of rows of variables")
				continue
			}
			for ri, r := range v.Content {
				field := fmt.Sprintf("versions[%d]", ri)
				if r.Kind != yaml.MappingNode || len(r.Content) == 0 {
					add(r, field, "want a mapping of variable names to values")
					continue
				}
				row := map[string]string{}
				for j := 0; j+1 < len(r.Content); j += 2 {
					name, val := r.Content[j], r.Content[j+1]
					if val.Kind != yaml.ScalarNode {
						add(val, field+"."+name.Value, "want a string value")
						continue
					}
					if _, dup := row[name.Value]; dup {
						add(name, field+"."+name.Value, "set twice")
					}
					row[name.Value] = val.Value
				}
				rows = append(rows, row)
			}
		default:
			add(k, k.Value, "unknown field (apiVersion, kind, versions)")
		}
	}
	for _, f := range []string{"apiVersion", "kind", "versions"} {
		if !seen[f] {
			add(top, f, "missing")
		}
	}
	if len(problems) > 0 {
		return nil, &recipes.ValidationError{Problems: problems}
	}
	return rows, nil
}

// MatrixResult is what RunMatrix did; its JSON is `prebake build --matrix
// --json`'s output.
type MatrixResult struct {
	Shard  string        `json:"shard,omitempty"`
	Images []MatrixImage `json:"images"`
	// Layers counts the layers of every image by where they came from.
	Layers LayerCounts `json:"layers"`
	// Uploaded is the blob bytes pushed, over every image.
	Uploaded int64 `json:"uploaded,omitempty"`
	Failed   int   `json:"failed,omitempty"`
	// Promotion is set when the caller promoted the result (PromoteMatrix).
	Promotion *PromotionReport `json:"promotion,omitempty"`
}

// LayerCounts count layers by origin (builder.LayerResult.From).
type LayerCounts struct {
	Built    int `json:"built"`
	Cache    int `json:"cache"`
	Registry int `json:"registry"`
}

// MatrixImage is one entry's outcome: its Result, or its Error.
type MatrixImage struct {
	Variables map[string]string `json:"variables"`
	*Result
	Error string `json:"error,omitempty"`
}

// RunMatrix builds, writes, pushes and signs every entry as o says (Run),
// up to parallel images at once (0 means 2) sharing one fetcher, progress
// sink and layer cache, so a layer that several images share is built once.
// Output and push destinations may not name a tag: each image is tagged its
// version. A failed image does not stop the others; RunMatrix then returns
// the result with an error wrapping ErrMatrixFailed.
func RunMatrix(ctx context.Context, entries []MatrixEntry, o Options, parallel int) (*MatrixResult, error) {
	if parallel <= 0 {
		parallel = 2
	}
	for _, e := range entries {
		d, err := Check(e.Resolved, o)
		if err != nil {
			return nil, err
		}
		if out, _ := parseTagGiven(o.Output); out {
			return nil, &DestinationError{Value: o.Output, Err: ErrMatrixTag}
		}
		if d.Push != nil {
			if push, _ := parseTagGiven(o.Push); push {
				return nil, &DestinationError{Push: true, Value: o.Push, Err: ErrMatrixTag}
			}
		}
	}
	if o.Fetcher == nil {
		f, err := Fetch{}.Fetcher()
		if err != nil {
			return nil, err
		}
		o.Fetcher = f
	}
	r := &MatrixResult{Images: make([]MatrixImage, len(entries))}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(parallel)
	for i, e := range entries {
		g.Go(func() error {
			res, err := Run(ctx, e.Resolved, o)
			mu.Lock()
			defer mu.Unlock()
			img := MatrixImage{Variables: e.Variables, Result: res}
			if err != nil {
				img.Error = err.Error()
				r.Failed++
			} else {
				r.Uploaded += res.Uploaded
				for _, p := range res.Platforms {
					for _, l := range p.Layers {
						switch l.From {
						case builder.FromBuild:
							r.Layers.Built++
						case builder.FromRegistry:
							r.Layers.Registry++
						default:
							r.Layers.Cache++
						}
					}
				}
			}
			r.Images[i] = img
			return nil
		})
	}
	g.Wait()
	if r.Failed > 0 {
		return r, fmt.Errorf("%w: %d of %d images", ErrMatrixFailed, r.Failed, len(entries))
	}
	return r, nil
}

// parseTagGiven reports whether a destination string names a tag.
func parseTagGiven(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	ref, err := registry.ParseReference(s)
	if err != nil {
		return false, err
	}
	return ref.TagGiven, nil
}
