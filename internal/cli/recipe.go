package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

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

// images parses --pre-pull REF@DIGEST values.
func (f *recipeFlags) images() ([]recipes.Image, error) {
	var ims []recipes.Image
	for _, s := range f.prePull {
		ref, digest, ok := strings.Cut(s, "@")
		if !ok || ref == "" || digest == "" {
			return nil, fmt.Errorf("--pre-pull %q: want REF@DIGEST (registry.k8s.io/pause:3.10.2@sha256:…): images are pre-pulled by digest only", s)
		}
		ims = append(ims, recipes.Image{Ref: ref, Digest: digest})
	}
	return ims, nil
}

// load reads the recipe at path and resolves it with the flags; SOURCE_DATE_EPOCH
// from the environment overrides the recipe's epoch.
func (f *recipeFlags) load(path string) (*recipes.Recipe, *recipes.Resolved, error) {
	if isCatalogName(path) { // not a file but a catalog recipe's name (catalog.go)
		return f.loadCatalog(path)
	}
	r, err := recipes.Load(path)
	if err != nil {
		return nil, nil, err
	}
	set, err := recipes.ParseSet(f.set)
	if err != nil {
		return nil, nil, err
	}
	lockPath, optional := f.lockFile, false
	if lockPath == "" {
		lockPath, optional = recipes.LockPath(path), true
	}
	lock, err := recipes.LoadLock(lockPath, optional)
	if err != nil {
		return nil, nil, err
	}
	if f.locked && lock == nil {
		return nil, nil, fmt.Errorf("--locked: no lock file at %s", lockPath)
	}
	images, err := f.images()
	if err != nil {
		return nil, nil, err
	}
	o := recipes.ResolveOptions{Set: set, Platforms: f.platforms, Lock: lock, Locked: f.locked, Images: images}
	if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && s != "" {
		e, err := recipes.ParseEpoch(s)
		if err != nil {
			return nil, nil, err
		}
		o.SourceDateEpoch = &e
	}
	res, err := r.Resolve(o)
	return r, res, err
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

func newRecipeValidateCmd(a *app) *cobra.Command {
	var f recipeFlags
	cmd := &cobra.Command{
		Use:   "validate RECIPE...",
		Short: "Check recipes and report every problem with file:line:column",
		Long: `Validate parses each recipe strictly (unknown fields are errors), expands its
variables for every platform and checks checksums, paths, modes, units and
duplicate destinations. Every problem is listed, not just the first.`,
		Example: `  prebake recipe validate examples/quickstart/recipe.yaml
  prebake recipe validate recipe.yaml --set kubernetes=1.36.5`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var failed error
			for _, p := range args {
				if _, res, err := f.load(p); err != nil {
					fmt.Fprintln(a.Err, err)
					failed = fmt.Errorf("%d of %d recipes invalid", countInvalid(failed)+1, len(args))
				} else if !a.quiet {
					fmt.Fprintf(a.Out, "%s: ok (%s:%s, %d platforms, %d components)\n", p, res.Name, res.Version, len(res.Builds), len(res.Builds[0].Components))
				}
			}
			return failed
		},
	}
	f.register(cmd)
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
			_, res, err := f.load(args[0])
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
