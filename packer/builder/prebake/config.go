//go:generate packer-sdc mapstructure-to-hcl2 -type Config

package prebake

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// Config is the builder's configuration: what `prebake build` takes as flags.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Recipe is the path of the recipe file to build, or the name of a
	// catalog recipe (kubernetes-node, kubernetes-control-plane; `prebake
	// catalog list`). Required.
	Recipe string `mapstructure:"recipe" required:"true"`
	// Variables override the recipe's variables (prebake build --set).
	Variables map[string]string `mapstructure:"variables"`
	// Platforms restricts the build to these platforms; empty builds all of
	// the recipe's.
	Platforms []string `mapstructure:"platforms"`
	// LockFile holds source checksums; empty means RECIPE.lock.yaml next to
	// the recipe, when present.
	LockFile string `mapstructure:"lock_file"`
	// Locked refuses any source URL that is not in the lock file.
	Locked bool `mapstructure:"locked"`
	// SourceDateEpoch overrides the recipe's epoch (seconds since 1970);
	// empty uses $SOURCE_DATE_EPOCH when set, else the recipe's.
	SourceDateEpoch string `mapstructure:"source_date_epoch"`
	// Mirrors rewrite source URLs or, FROM naming a registry, where
	// pre-pulled images are pulled from; each "FROM=TO" (prebake build
	// --mirror).
	Mirrors []string `mapstructure:"mirrors"`
	// CacheDir is the download and layer cache; empty means prebake's default.
	CacheDir string `mapstructure:"cache_dir"`
	// Offline uses only the cache (and registry mirrors for pre-pulled
	// images).
	Offline bool `mapstructure:"offline"`
	// Compression of layers: gzip (default) or zstd.
	Compression string `mapstructure:"compression"`
	// Revision is recorded in org.opencontainers.image.revision.
	Revision string `mapstructure:"revision"`
	// Output is where the image is written: oci:DIR[:TAG] or
	// store:NAME[:TAG]; empty means the local store, NAME:VERSION.
	Output string `mapstructure:"output"`
	// Push also copies the image and its SBOM to this registry repository
	// (HOST/REPO[:TAG]; the tag defaults to the recipe's version).
	Push string `mapstructure:"push"`
	// Insecure allows plain HTTP to the registry (loopback registries).
	Insecure bool `mapstructure:"insecure"`
	// SignKey signs the image (and each platform image) where it was pushed
	// and attests its SBOM and provenance there, as `prebake build
	// --sign-key` does; it needs Push. A cosign key file, env://VAR or a KMS
	// URI.
	SignKey string `mapstructure:"sign_key"`
	// SignKeyPassword decrypts SignKey; empty means $COSIGN_PASSWORD.
	SignKeyPassword string `mapstructure:"sign_key_password"`
	// Jobs bounds parallel downloads, layer builds and uploads; 0 means the
	// number of CPUs.
	Jobs int `mapstructure:"jobs"`

	ctx interpolate.Context

	resolved *recipes.Resolved
	output   registry.Reference
	push     *registry.Reference
}

// fetch is how the build downloads (prebake build's --cache-dir, --mirror,
// --offline).
func (c *Config) fetch() pipeline.Fetch {
	return pipeline.Fetch{CacheDir: c.CacheDir, Mirrors: c.Mirrors, Offline: c.Offline}
}

// pipelineOptions are the options of the one library call Run makes.
func (c *Config) pipelineOptions() pipeline.Options {
	return pipeline.Options{
		CacheDir: c.CacheDir, Compression: builder.Compression(c.Compression), Jobs: c.Jobs, Revision: c.Revision,
		Output: c.Output, Push: c.Push, Insecure: c.Insecure,
		SignKey: c.SignKey, Password: pluginutil.Password(c.SignKeyPassword),
	}
}

// Prepare decodes raws into c and checks every option, reporting all
// problems at once. The recipe is loaded and resolved here, so `packer
// validate` reports recipe errors with their file:line.
func (c *Config) Prepare(raws ...any) error {
	if err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...); err != nil {
		return err
	}
	var p pluginutil.Problems
	switch c.Compression {
	case "", string(builder.Gzip), string(builder.Zstd):
	default:
		p.Addf("compression", "%q: expected gzip or zstd", c.Compression)
	}
	if c.Jobs < 0 {
		p.Addf("jobs", "%d: must not be negative", c.Jobs)
	}
	p.Add("mirrors", c.fetch().Check())
	p.Add("sign_key", pluginutil.CheckKeyFile(c.SignKey))
	if c.Recipe == "" {
		p.Addf("recipe", "required: the path of a recipe file or a catalog recipe's name")
	} else if res, err := c.resolve(); err != nil {
		p.Add("recipe", err)
	} else {
		c.resolved = res
		dst, err := pipeline.Check(res, c.pipelineOptions())
		var de *pipeline.DestinationError
		switch {
		case errors.As(err, &de) && de.Push:
			p.Add("push", err)
		case errors.Is(err, pipeline.ErrOutputRemote):
			p.Add("output", fmt.Errorf("%w; use push for a registry", err))
		case errors.As(err, &de):
			p.Add("output", err)
		case errors.Is(err, pipeline.ErrSignWithoutPush):
			p.Add("sign_key", fmt.Errorf("%w: set push", err))
		}
		c.output, c.push = dst.Output, dst.Push
	}
	return p.Err()
}

// resolve loads and resolves the recipe as `prebake build` does.
func (c *Config) resolve() (*recipes.Resolved, error) {
	o := pipeline.RecipeOptions{Recipe: c.Recipe, Set: c.Variables, Platforms: c.Platforms, LockFile: c.LockFile, Locked: c.Locked}
	epoch := c.SourceDateEpoch
	if epoch == "" {
		epoch = os.Getenv("SOURCE_DATE_EPOCH")
	}
	var err error
	if o.SourceDateEpoch, err = recipes.ParseEpoch(epoch); err != nil {
		return nil, fmt.Errorf("source_date_epoch: %w", err)
	}
	return pipeline.Resolve(o)
}
