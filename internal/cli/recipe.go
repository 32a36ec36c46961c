package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/recipes"
)

// recipeFlags are the flags every command that resolves a recipe shares.
type recipeFlags struct {
	set       []string
	platforms []string
	lockFile  string
	locked    bool
	prePull   []string
}

func (f *recipeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "override a recipe variable, NAME=VALUE (repeatable)")
	cmd.Flags().StringSliceVar(&f.platforms, "platform", nil, "build only these platforms (linux/amd64, linux/arm64); default: the recipe's")
	cmd.Flags().StringVar(&f.lockFile, "lock", "", "lock file with source checksums (default: RECIPE.lock.yaml next to the recipe, if present)")
	cmd.Flags().BoolVar(&f.locked, "locked", false, "refuse any source URL that is not in the lock file")
	cmd.Flags().StringArrayVar(&f.prePull, "pre-pull", nil, "also pre-pull this image into the node image, REF@DIGEST (registry.k8s.io/pause:3.10.2@sha256:…; repeatable)")
}

// options are the flags as pipeline.RecipeOptions for the recipe path (or
// catalog name); $SOURCE_DATE_EPOCH overrides the recipe's epoch.
func (f *recipeFlags) options(path string) (pipeline.RecipeOptions, error) {
	o := pipeline.RecipeOptions{Recipe: path, Platforms: f.platforms, LockFile: f.lockFile, Locked: f.locked}
	set, err := parseKeyValues("--set", "NAME=VALUE", f.set, false)
	if err != nil {
		return o, err
	}
	o.Set = set
	for _, p := range f.prePull {
		ref, digest, ok := strings.Cut(p, "@")
		if !ok || ref == "" || digest == "" {
			return o, fmt.Errorf("--pre-pull %q: want REF@DIGEST (registry.k8s.io/pause:3.10.2@sha256:…): images are pre-pulled by digest only", p)
		}
		o.Images = append(o.Images, recipes.Image{Ref: ref, Digest: digest})
	}
	o.SourceDateEpoch, err = sourceDateEpoch()
	return o, err
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, or nil when it is not set: the CLI
// reads it, the libraries are passed it.
func sourceDateEpoch() (*int64, error) {
	return recipes.ParseEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
}

// load resolves the recipe at path (or the catalog recipe of that name) with
// the flags.
func (f *recipeFlags) load(path string) (*recipes.Resolved, error) {
	o, err := f.options(path)
	if err != nil {
		return nil, err
	}
	res, err := pipeline.Resolve(o)
	if errors.Is(err, pipeline.ErrNoLockFile) {
		return nil, fmt.Errorf("--locked: %w", err)
	}
	return res, err
}

func newRecipeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recipe",
		Short: "Check and show recipes",
		Long: `A recipe (apiVersion prebake.dev/v1alpha1, kind Recipe) describes a node
image: variables, platforms, and an ordered list of components, each of which
becomes one layer. See docs/recipes.md for the format.`,
	}
	cmd.AddCommand(newRecipeValidateCmd(a), newRecipeShowCmd(a))
	return cmd
}

// validation is one recipe of `prebake recipe validate --json`.
type validation struct {
	File       string    `json:"file"`
	Valid      bool      `json:"valid"`
	Name       string    `json:"name,omitempty"`
	Version    string    `json:"version,omitempty"`
	Platforms  int       `json:"platforms,omitempty"`
	Components int       `json:"components,omitempty"`
	Problems   []problem `json:"problems,omitempty"`
}

type problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// problems lists err's problems: each of a *recipes.ValidationError, or err
// itself.
func problems(err error) []problem {
	var ve *recipes.ValidationError
	if !errors.As(err, &ve) {
		return []problem{{Message: err.Error()}}
	}
	out := make([]problem, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = problem{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Msg}
	}
	return out
}

func newRecipeValidateCmd(a *app) *cobra.Command {
	var (
		f      recipeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "validate RECIPE...",
		Short: "Check recipes and report every problem with file:line:column",
		Long: `Validate parses each recipe strictly (unknown fields are errors), expands its
variables for every platform and checks checksums, paths, modes, units and
duplicate destinations. Every problem is listed, not just the first; --json
lists them as objects (file, line, column, field, message).`,
		Example: `  prebake recipe validate examples/quickstart/recipe.yaml
  prebake recipe validate recipe.yaml --set kubernetes=1.36.5
  prebake recipe validate recipes/*.yaml --json | jq '.[] | select(.valid | not)'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var failed error
			var out []validation
			for _, p := range args {
				res, err := f.load(p)
				v := validation{File: p, Valid: err == nil}
				if err != nil {
					v.Problems = problems(err)
					failed = fmt.Errorf("%d of %d recipes invalid", countInvalid(failed)+1, len(args))
					if !asJSON {
						fmt.Fprintln(a.Err, err)
					}
				} else {
					v.Name, v.Version, v.Platforms, v.Components = res.Name, res.Version, len(res.Builds), len(res.Builds[0].Components)
					if !asJSON && !a.quiet {
						fmt.Fprintf(a.Out, "%s: ok (%s:%s, %d platforms, %d components)\n", p, res.Name, res.Version, len(res.Builds), len(res.Builds[0].Components))
					}
				}
				out = append(out, v)
			}
			if asJSON {
				if err := writeJSON(a, out); err != nil {
					return err
				}
			}
			return failed
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per recipe (a list), problems included")
	return cmd
}

func countInvalid(err error) int {
	if err == nil {
		return 0
	}
	var n int
	fmt.Sscanf(err.Error(), "%d", &n)
	return n
}

func newRecipeShowCmd(a *app) *cobra.Command {
	var (
		f      recipeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show RECIPE",
		Short: "Print the resolved recipe: variables expanded, checksums filled in, per platform",
		Long: `Show prints exactly what a build would do: every variable expanded for each
platform, every source with its URL and sha256 (from the recipe or its lock),
and the files, kernel settings and systemd links each component writes.`,
		Example: `  prebake recipe show examples/quickstart/recipe.yaml --set kubernetes=1.36.5
  prebake recipe show recipe.yaml --platform linux/arm64 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := f.load(args[0])
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			if !asJSON {
				if b, err = yaml.JSONToYAML(b); err != nil {
					return err
				}
			} else {
				b = append(b, '\n')
			}
			_, err = a.Out.Write(b)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of YAML")
	return cmd
}
