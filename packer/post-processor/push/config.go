//go:generate packer-sdc mapstructure-to-hcl2 -type Config

package push

import (
	"regexp"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// Config is the post-processor's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Repository is where the disk artifact goes: HOST/REPO[:TAG],
	// oci:DIR[:TAG] or store:NAME[:TAG]. Without a tag a registry gets the
	// artifact by digest only. Required.
	Repository string `mapstructure:"repository" required:"true"`
	// SourceImage is the prebake node image the disk was made from,
	// REF@sha256:… (or just sha256:…); it is recorded in the artifact's
	// annotations. Optional, but a published disk should say what it runs.
	SourceImage string `mapstructure:"source_image"`
	// Format forces the disk format of every file (qcow2, raw or vmdk);
	// empty detects it from each file's extension (.qcow2, .raw/.img, .vmdk)
	// and checks it against the file's header.
	Format string `mapstructure:"format"`
	// Annotations are added to the artifact's manifest.
	Annotations map[string]string `mapstructure:"annotations"`
	// SignKey signs the artifact where it was pushed: a cosign key file,
	// env://VAR or a KMS URI. Empty leaves it unsigned.
	SignKey string `mapstructure:"sign_key"`
	// SignKeyPassword decrypts SignKey; empty means $COSIGN_PASSWORD.
	SignKeyPassword string `mapstructure:"sign_key_password"`
	// Insecure allows plain HTTP to the registry (loopback registries).
	Insecure bool `mapstructure:"insecure"`
	// KeepInputArtifact keeps the builder's disk files (Packer's default for
	// post-processors that do not transform them).
	KeepInputArtifact *bool `mapstructure:"keep_input_artifact"`

	ctx         interpolate.Context
	dst         registry.Reference
	sourceRef   string
	sourceDigst string
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Prepare decodes raws into c and checks every option, reporting all
// problems at once.
func (c *Config) Prepare(raws ...any) error {
	if err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...); err != nil {
		return err
	}
	var p pluginutil.Problems
	if c.Repository == "" {
		p.Addf("repository", "required: HOST/REPO[:TAG], oci:DIR[:TAG] or store:NAME[:TAG]")
	} else if !pluginutil.Unknown(c.Repository) {
		ref, err := pluginutil.ParseRepoRef(c.Repository)
		p.Add("repository", err)
		if ref.Transport == registry.TransportRemote && !ref.TagGiven {
			ref.Tag = "" // by digest only; ParseReference fills in "latest"
		}
		c.dst = ref
	}
	switch {
	case c.SourceImage == "" || pluginutil.Unknown(c.SourceImage):
	case digestRE.MatchString(c.SourceImage):
		c.sourceDigst = c.SourceImage
	default:
		ref, err := pluginutil.ParseDigestRef(c.SourceImage)
		p.Add("source_image", err)
		c.sourceRef, c.sourceDigst = ref.String(), ref.Digest
	}
	if c.Format != "" {
		if _, ok := disk.MediaTypes[c.Format]; !ok {
			p.Addf("format", "%q: expected qcow2, raw or vmdk", c.Format)
		}
	}
	for k := range c.Annotations {
		if k == "" {
			p.Addf("annotations", "empty key")
		}
		if k == AnnotationSourceDigest || k == AnnotationSourceImage || k == recipes.AnnotationComponent {
			p.Addf("annotations", "%s is set by the post-processor", k)
		}
	}
	p.Add("sign_key", pluginutil.CheckKeyFile(c.SignKey))
	return p.Err()
}
