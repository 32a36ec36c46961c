//go:generate packer-sdc mapstructure-to-hcl2 -type Config,Output

// Package image is the plugin's data source: it resolves a repository and a
// channel (a tag moved by `prebake promote`) to the digest the channel names
// now, and proves that digest is signed by the given key before handing it
// to the template, so a build pins exactly the image that was promoted.
package image

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// channelRE is the OCI tag grammar; a channel is a tag.
var channelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Config is the data source's configuration.
type Config struct {
	// Repository holds the images: HOST/REPO, oci:DIR or store:NAME, without
	// a tag or digest. Required.
	Repository string `mapstructure:"repository" required:"true"`
	// Channel is the channel to resolve (stable, candidate, …). Required.
	Channel string `mapstructure:"channel" required:"true"`
	// PublicKey the image must be signed with: a PEM file, env://VAR or a
	// KMS URI. Required.
	PublicKey string `mapstructure:"public_key" required:"true"`
	// Platform picks which platform image's annotations fill the versions
	// (os/arch); empty means the index's first.
	Platform string `mapstructure:"platform"`
	// Insecure allows plain HTTP to the registry (loopback registries).
	Insecure bool `mapstructure:"insecure"`

	repo registry.Reference
}

// Output is what the data source gives the template.
type Output struct {
	// Digest is the verified digest the channel names.
	Digest string `mapstructure:"digest"`
	// Reference is REPOSITORY@DIGEST, ready for the provisioner's image.
	Reference string `mapstructure:"reference"`
	// Version and KubernetesVersion come from the image's annotations.
	Version           string `mapstructure:"version"`
	KubernetesVersion string `mapstructure:"kubernetes_version"`
	// OSPackages lists the packages the image expects from the base OS.
	OSPackages string `mapstructure:"os_packages"`
}

// Datasource resolves a channel to a verified digest.
type Datasource struct {
	config Config
}

// ConfigSpec returns the HCL2 schema of Config.
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// OutputSpec returns the HCL2 schema of Output.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec { return (&Output{}).FlatMapstructure().HCL2Spec() }

// Configure decodes and checks the configuration, reporting all problems.
func (d *Datasource) Configure(raws ...any) error {
	c := &d.config
	if err := config.Decode(c, nil, raws...); err != nil {
		return err
	}
	var p pluginutil.Problems
	if c.Repository == "" {
		p.Addf("repository", "required: HOST/REPO, oci:DIR or store:NAME")
	} else {
		ref, err := registry.ParseReference(c.Repository)
		if err == nil && (ref.Digest != "" || (ref.Tag != "" && ref.String() == c.Repository)) {
			err = fmt.Errorf("%q: name the repository alone; the channel picks the tag", c.Repository)
		}
		p.Add("repository", err)
		c.repo = ref
	}
	if c.Channel == "" {
		p.Addf("channel", "required: the channel to resolve, e.g. stable")
	} else if !channelRE.MatchString(c.Channel) {
		p.Addf("channel", "%q: must be a valid tag (letters, digits, '_', '.', '-')", c.Channel)
	}
	if c.PublicKey == "" {
		p.Addf("public_key", "required: the public key the image must be signed with (PEM file, env://VAR or KMS URI)")
	} else {
		p.Add("public_key", pluginutil.CheckKeyFile(c.PublicKey))
	}
	return p.Err()
}

// Execute resolves the channel once and verifies the digest it names.
func (d *Datasource) Execute() (cty.Value, error) {
	out, err := d.resolve(context.Background())
	if err != nil {
		return cty.NullVal(cty.EmptyObject), err
	}
	return hcl2helper.HCL2ValueFromConfig(out, d.OutputSpec()), nil
}

func (d *Datasource) resolve(ctx context.Context) (Output, error) {
	c := &d.config
	ropts := registry.Options{Insecure: c.Insecure}
	tagged := c.repo.WithTag(c.Channel)
	_, desc, err := registry.Get(ctx, tagged, ropts)
	if err != nil {
		return Output{}, fmt.Errorf("resolving channel %s of %s: %w", c.Channel, c.Repository, err)
	}
	pinned := c.repo.WithDigest(desc.Digest.String())
	if _, err := signing.Verify(ctx, pinned, signing.VerifyOptions{Key: c.PublicKey, Registry: ropts}); err != nil {
		return Output{}, fmt.Errorf("channel %s of %s: %w", c.Channel, c.Repository, err)
	}
	ann, err := registry.Annotations(ctx, pinned, c.Platform, ropts)
	if err != nil {
		return Output{}, err
	}
	return Output{
		Digest: desc.Digest.String(), Reference: pinned.String(),
		Version: ann["org.opencontainers.image.version"], KubernetesVersion: ann[recipes.AnnotationKubernetesVersion],
		OSPackages: ann[recipes.AnnotationOSPackages],
	}, nil
}
