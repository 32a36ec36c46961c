//go:generate packer-sdc mapstructure-to-hcl2 -type Config

package prebake

import (
	"path"
	"regexp"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/registry"
)

// Config is the provisioner's configuration.
type Config struct {
	// Image is the node image to apply, by digest: REF@sha256:… where REF is
	// HOST/REPO, oci:DIR or store:NAME. A tag is refused. Required.
	Image string `mapstructure:"image" required:"true"`
	// PublicKey verifies the image's signature before anything is uploaded:
	// a PEM file, env://VAR or a KMS URI. Required.
	PublicKey string `mapstructure:"public_key" required:"true"`
	// Platform picks the image of a multi-platform index (linux/amd64,
	// linux/arm64); empty asks the machine (uname -m).
	Platform string `mapstructure:"platform"`
	// Root is the directory the image is applied under; "/" by default.
	// Anything else (a scratch root) also skips OS packages and containerd.
	Root string `mapstructure:"root"`
	// StagingDir is where layers are uploaded on the machine (created 0700,
	// removed afterwards). Default: a new `mktemp -d` directory under /tmp.
	StagingDir string `mapstructure:"staging_dir"`
	// SkipOSPackages skips installing the image's osPackages with the OS
	// package manager (apt-get, dnf, yum, zypper or apk).
	SkipOSPackages bool `mapstructure:"skip_os_packages"`
	// SkipContainerdImport skips importing the image archives under
	// ImagesDir into containerd (done only when containerd is running).
	SkipContainerdImport bool `mapstructure:"skip_containerd_import"`
	// ImagesDir holds pre-pulled container image archives (*.tar) that the
	// image ships; default /var/lib/prebake/images.
	ImagesDir string `mapstructure:"images_dir"`
	// Sudo runs the apply as root with `sudo -n` (for non-root SSH users).
	Sudo bool `mapstructure:"sudo"`
	// Insecure allows plain HTTP to the registry (loopback registries).
	Insecure bool `mapstructure:"insecure"`

	ctx interpolate.Context
	ref registry.Reference
}

var platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)

// Prepare decodes raws into c, fills in defaults and checks every option,
// reporting all problems at once.
func (c *Config) Prepare(raws ...any) error {
	if err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "packer.provisioner.prebake",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...); err != nil {
		return err
	}
	var p pluginutil.Problems
	if c.Image == "" {
		p.Addf("image", "required: the node image as REF@sha256:…")
	} else if !pluginutil.Unknown(c.Image) {
		ref, err := pluginutil.ParseDigestRef(c.Image)
		p.Add("image", err)
		c.ref = ref
	}
	if c.PublicKey == "" {
		p.Addf("public_key", "required: the public key the image must be signed with (PEM file, env://VAR or KMS URI)")
	} else {
		p.Add("public_key", pluginutil.CheckKeyFile(c.PublicKey))
	}
	if c.Platform != "" && !platformRE.MatchString(c.Platform) {
		p.Addf("platform", "%q: expected os/arch[/variant], e.g. linux/amd64", c.Platform)
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if !path.IsAbs(c.Root) {
		p.Addf("root", "%q: must be an absolute path", c.Root)
	}
	c.Root = path.Clean(c.Root)
	if c.ImagesDir == "" {
		c.ImagesDir = "/var/lib/prebake/images"
	}
	if !path.IsAbs(c.ImagesDir) {
		p.Addf("images_dir", "%q: must be an absolute path", c.ImagesDir)
	}
	if c.StagingDir != "" && (!path.IsAbs(c.StagingDir) || path.Clean(c.StagingDir) == "/") {
		p.Addf("staging_dir", "%q: must be an absolute path other than /", c.StagingDir)
	}
	return p.Err()
}
