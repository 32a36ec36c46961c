//go:generate packer-sdc mapstructure-to-hcl2 -type Config

package prebake

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// Config is the builder's configuration: what `prebake build` takes as flags.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Recipe is the path of the recipe file to build. Required.
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
	// Mirrors rewrite source URLs, each "FROM=TO" (prebake build --mirror).
	Mirrors []string `mapstructure:"mirrors"`
	// CacheDir is the download and layer cache; empty means prebake's default.
	CacheDir string `mapstructure:"cache_dir"`
	// Offline uses only the cache.
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
	// SignKey signs the image (and each platform image) where it was pushed,
	// or at Output when nothing is pushed: a cosign key file, env://VAR or a
	// KMS URI.
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
	mirrors  []fetch.Mirror
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
	for _, s := range c.Mirrors {
		m, err := fetch.ParseMirror(s)
		p.Add("mirrors", err)
		c.mirrors = append(c.mirrors, m)
	}
	p.Add("sign_key", pluginutil.CheckKeyFile(c.SignKey))
	if c.Push != "" {
		ref, err := pluginutil.ParseRepoRef(c.Push)
		if err == nil && ref.Transport != registry.TransportRemote {
			err = fmt.Errorf("%q: push names a registry repository (HOST/REPO[:TAG]); use output for oci: and store: references", c.Push)
		}
		p.Add("push", err)
		c.push = &ref
	}
	if c.Recipe == "" {
		p.Addf("recipe", "required: the path of a recipe file")
	} else if res, err := c.resolve(); err != nil {
		p.Add("recipe", err)
	} else {
		c.resolved = res
		out, err := outputRef(c.Output, res.Name, res.Version)
		p.Add("output", err)
		c.output = out
		if c.push != nil && !pluginutil.HasTag(c.Push) {
			c.push.Tag = res.Version
		}
	}
	return p.Err()
}

// resolve loads and resolves the recipe as `prebake build` does.
func (c *Config) resolve() (*recipes.Resolved, error) {
	r, err := recipes.Load(c.Recipe)
	if err != nil {
		return nil, err
	}
	lockPath, optional := c.LockFile, false
	if lockPath == "" {
		lockPath, optional = recipes.LockPath(c.Recipe), true
	}
	lock, err := recipes.LoadLock(lockPath, optional)
	if err != nil {
		return nil, err
	}
	if c.Locked && lock == nil {
		return nil, fmt.Errorf("locked: no lock file at %s", lockPath)
	}
	o := recipes.ResolveOptions{Set: c.Variables, Platforms: c.Platforms, Lock: lock, Locked: c.Locked}
	epoch := c.SourceDateEpoch
	if epoch == "" {
		epoch = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if epoch != "" {
		e, err := recipes.ParseEpoch(epoch)
		if err != nil {
			return nil, fmt.Errorf("source_date_epoch: %w", err)
		}
		o.SourceDateEpoch = &e
	}
	return r.Resolve(o)
}

// outputRef turns output into a reference; the tag defaults to the version.
func outputRef(output, name, version string) (registry.Reference, error) {
	if output == "" {
		return registry.ParseReference("store:" + name + ":" + version)
	}
	ref, err := pluginutil.ParseRepoRef(output)
	if err != nil {
		return ref, err
	}
	if ref.Transport == registry.TransportRemote {
		return ref, fmt.Errorf("%q: output is oci:DIR[:TAG] or store:NAME[:TAG]; use push for a registry", output)
	}
	if ref.Tag == "" || (ref.Transport == registry.TransportStore && !strings.Contains(strings.TrimPrefix(output, "store:"), ":")) {
		ref.Tag = version
	}
	return ref, nil
}
