package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/registry"
)

// matrixFlags are build's flags for building many versions in one run.
type matrixFlags struct {
	matrix   bool
	file     string
	versions string
	latest   int
	shard    string
	parallel int
	cache    string
	promote  string
	report   string
	// jsonFile and imagesFile save the result for a later step of a CI
	// pipeline whose image has no shell (Tekton, Argo).
	jsonFile   string
	imagesFile string
}

func (f *matrixFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.matrix, "matrix", false, "build one image per supported Kubernetes version of a catalog recipe (or per row of --matrix-file)")
	cmd.Flags().StringVar(&f.file, "matrix-file", "", "rows of recipe variables to build, one image each (kind: Matrix; implies --matrix)")
	cmd.Flags().StringVar(&f.versions, "versions", "", "only these Kubernetes versions: comparisons and prefixes, '>=1.35,<1.36.3' or '1.36 1.34.11' (implies --matrix)")
	cmd.Flags().IntVar(&f.latest, "latest", 0, "only the N newest patch releases of each Kubernetes minor (implies --matrix)")
	cmd.Flags().StringVar(&f.shard, "shard", "", "build part I of N of the matrix, I/N (implies --matrix)")
	cmd.Flags().IntVar(&f.parallel, "parallel", 2, "images of a matrix built at once")
	cmd.Flags().StringVar(&f.promote, "promote", "", "after a matrix build, promote each pushed image to the channel CHANNEL-VERSION (nightly-1.36.4), recorded with history")
	cmd.Flags().StringVar(&f.report, "report", "", "write the matrix's promotion report (versions, digests, sizes, signatures, changed layers) to this Markdown file")
	cmd.Flags().StringVar(&f.jsonFile, "json-file", "", "also write the --json result to this file (what `prebake promote --from` reads)")
	cmd.Flags().StringVar(&f.imagesFile, "images-file", "", "write every pushed image, REF@sha256:…, one per line, to this file (a Tekton IMAGES result, an Argo output parameter)")
	cmd.Flags().StringVar(&f.cache, "cache", "", "share layers through this registry repository, REGISTRY/REPO: take layers from it before building, push the ones built")
}

// enabled reports whether build makes a matrix: --matrix or a flag that only
// a matrix has.
func (f *matrixFlags) enabled(cmd *cobra.Command) bool {
	return f.matrix || f.file != "" || f.versions != "" || f.latest > 0 || f.shard != ""
}

func (f *matrixFlags) options(rf *recipeFlags, recipe string) (pipeline.MatrixOptions, error) {
	ro, err := rf.options(recipe)
	if err != nil {
		return pipeline.MatrixOptions{}, err
	}
	o := pipeline.MatrixOptions{Recipe: ro, File: f.file, Latest: f.latest}
	if f.latest < 0 {
		return o, fmt.Errorf("--latest %d: want 0 (all) or more", f.latest)
	}
	if o.Versions, err = pipeline.ParseVersionRange(f.versions); err != nil {
		return o, fmt.Errorf("--versions: %w", err)
	}
	if f.shard != "" {
		if o.Shard, err = pipeline.ParseShard(f.shard); err != nil {
			return o, fmt.Errorf("--shard: %w", err)
		}
	}
	return o, nil
}

func (f *matrixFlags) run(cmd *cobra.Command, a *app, rf *recipeFlags, ff *fetchFlags, recipe string, opts func(progress.Func) (pipeline.Options, error), asJSON bool) error {
	mo, err := f.options(rf, recipe)
	if err != nil {
		return err
	}
	entries, err := pipeline.Plan(mo)
	if err != nil {
		if errors.Is(err, pipeline.ErrNoLockFile) {
			return fmt.Errorf("--locked: %w", err)
		}
		return buildFlagError(err)
	}
	prog, done := a.newProgress()
	defer done()
	o, err := opts(prog)
	if err != nil {
		return err
	}
	if o.LayerCache, err = f.layerCache(o); err != nil {
		return err
	}
	if f.promote != "" && o.Push == "" {
		return fmt.Errorf("--promote %s: channels are in a registry: give --push REPO", f.promote)
	}
	if f.report != "" && f.promote == "" {
		return fmt.Errorf("--report: the report is the promotion's: give --promote CHANNEL")
	}
	out, runErr := pipeline.RunMatrix(cmd.Context(), entries, o, f.parallel)
	done()
	if out == nil {
		return buildFlagError(runErr)
	}
	out.Shard = mo.Shard.String()
	if f.promote != "" {
		rep, err := pipeline.PromoteMatrix(cmd.Context(), out, pipeline.PromoteOptions{Channel: f.promote, Registry: registry.Options{Insecure: o.Insecure}, By: actor()})
		if rep != nil {
			out.Promotion = rep
			if f.report != "" {
				if werr := atomicfile.WriteFile(f.report, []byte(rep.Markdown()), 0o644); werr != nil {
					return werr
				}
			}
		}
		if runErr == nil {
			runErr = err
		}
	}
	var pushed []string
	for _, img := range out.Images {
		if img.Result != nil && img.Pushed != "" {
			pushed = append(pushed, img.Pushed)
		}
	}
	if err := f.save(out, pushed); err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(a, out); err != nil {
			return err
		}
		return runErr
	}
	for _, img := range out.Images {
		if img.Error != "" {
			fmt.Fprintf(a.Out, "FAILED %s: %s\n", rowLabel(img.Variables), img.Error)
			continue
		}
		built, cached, remote := 0, 0, 0
		for _, p := range img.Platforms {
			for _, l := range p.Layers {
				switch l.From {
				case "build":
					built++
				case "registry":
					remote++
				default:
					cached++
				}
			}
		}
		where := img.Reference
		if img.Pushed != "" {
			where = img.Pushed
		}
		fmt.Fprintf(a.Out, "built %s:%s %s (%d platforms; layers: %d built, %d local cache, %d registry cache) -> %s\n",
			img.Name, img.Version, img.Digest, len(img.Platforms), built, cached, remote, where)
	}
	shard := ""
	if out.Shard != "" {
		shard = " (shard " + out.Shard + ")"
	}
	fmt.Fprintf(a.Out, "%d images%s, %d failed; layers: %d built, %d local cache, %d registry cache; uploaded %s\n",
		len(out.Images), shard, out.Failed, out.Layers.Built, out.Layers.Cache, out.Layers.Registry, progress.Bytes(out.Uploaded))
	if out.Promotion != nil {
		for _, p := range out.Promotion.Images {
			if p.Error != "" {
				fmt.Fprintf(a.Out, "promotion of %s to %s FAILED: %s\n", p.Version, p.Channel, p.Error)
				continue
			}
			fmt.Fprintf(a.Out, "promoted %s to %s (previous %s, %d components changed)\n", p.Digest, p.Channel, orFirst(p.Previous), len(p.Changes))
		}
	}
	return runErr
}

// save writes --json-file and --images-file (creating their directories):
// the result as JSON and the pushed images' references, one per line.
func (f *matrixFlags) save(result any, pushed []string) error {
	for _, p := range []string{f.jsonFile, f.imagesFile} {
		if p != "" {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
	}
	if f.jsonFile != "" {
		b, err := json.MarshalIndent(result, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(f.jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json-file: %w", err)
		}
	}
	if f.imagesFile != "" {
		var b strings.Builder
		for _, p := range pushed {
			b.WriteString(p + "\n")
		}
		if err := atomicfile.WriteFile(f.imagesFile, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("--images-file: %w", err)
		}
	}
	return nil
}

// layerCache is the --cache registry cache, or nil.
func (f *matrixFlags) layerCache(o pipeline.Options) (builder.LayerCache, error) {
	if f.cache == "" {
		return nil, nil
	}
	c, err := pipeline.NewRegistryCache(f.cache, pipeline.RegistryCacheOptions{Insecure: o.Insecure, Progress: o.Progress})
	if err != nil {
		return nil, fmt.Errorf("--cache: %w", err)
	}
	return c, nil
}

func orFirst(prev string) string {
	if prev == "" {
		return "none"
	}
	return prev
}

func rowLabel(vars map[string]string) string {
	if k, ok := vars["kubernetes"]; ok && len(vars) == 1 {
		return "kubernetes " + k
	}
	return fmt.Sprint(vars)
}
