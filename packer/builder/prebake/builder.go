// Package prebake is the plugin's builder: it builds a prebake recipe into a
// reproducible OCI node image (the library call `prebake build` makes),
// writes it to a layout or the store, optionally pushes and signs it, and
// returns an artifact whose id is the image digest. It starts no machine;
// applying an image to one is the provisioner's job.
package prebake

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// BuilderID identifies the builder's artifacts to post-processors.
const BuilderID = "prebake.builder"

// Builder builds a recipe into a node image.
type Builder struct {
	config Config
}

// ConfigSpec returns the HCL2 schema of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// generatedVars are the build variables the builder sets for provisioners
// and post-processors (build.PrebakeDigest, …).
var generatedVars = []string{"PrebakeDigest", "PrebakeReference", "PrebakePushed"}

// Prepare checks the configuration (see Config.Prepare).
func (b *Builder) Prepare(raws ...any) ([]string, []string, error) {
	if err := b.config.Prepare(raws...); err != nil {
		return nil, nil, err
	}
	return generatedVars, nil, nil
}

// Run builds the recipe, writes the image to the output, pushes and signs it
// when asked, and returns it as an Artifact.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	res := c.resolved
	fopts := []fetch.Option{fetch.WithMirrors(c.mirrors...), fetch.WithOffline(c.Offline)}
	if c.CacheDir != "" {
		fopts = append(fopts, fetch.WithCacheDir(c.CacheDir))
	}
	fetcher, err := fetch.New(fopts...)
	if err != nil {
		return nil, err
	}
	ui.Say(fmt.Sprintf("Building %s:%s (%d platforms)", res.Name, res.Version, len(res.Builds)))
	result, err := builder.Build(ctx, res, builder.Options{
		Fetcher:     fetcher,
		CacheDir:    c.CacheDir,
		Compression: builder.Compression(c.Compression),
		Jobs:        c.Jobs,
		Revision:    c.Revision,
	})
	if err != nil {
		return nil, err
	}
	ropts := registry.Options{Insecure: c.Insecure, Jobs: c.Jobs}
	sbom := []registry.Artifact{result.SBOM}
	desc, err := registry.Write(ctx, c.output, result.Index, sbom, ropts)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", c.output, err)
	}
	a := &Artifact{
		Digest:       desc.Digest.String(),
		Reference:    c.output.WithDigest(desc.Digest.String()).String(),
		Name:         res.Name,
		Version:      res.Version,
		RecipeDigest: res.Digest,
	}
	for _, p := range result.Platforms {
		a.Platforms = append(a.Platforms, p.Platform)
	}
	ui.Say(fmt.Sprintf("Built %s, written to %s", a.Digest, c.output))
	signAt := c.output.WithDigest(a.Digest)
	if c.push != nil {
		if _, err := registry.Write(ctx, *c.push, result.Index, sbom, ropts); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", c.push, err)
		}
		signAt = c.push.WithDigest(a.Digest)
		a.Pushed = signAt.String()
		ui.Say("Pushed to " + a.Pushed)
	}
	if c.SignKey != "" {
		signed, err := signing.Sign(ctx, signAt, signing.SignOptions{
			KeyOptions: signing.KeyOptions{Key: c.SignKey, Password: pluginutil.Password(c.SignKeyPassword)},
			Registry:   ropts,
		})
		if err != nil {
			return nil, err
		}
		a.Signed = len(signed)
		ui.Say(fmt.Sprintf("Signed %s (%d manifests)", signAt, len(signed)))
	}
	if hook != nil {
		// Provisioners of this build run without a machine (shell-local,
		// breakpoint, …) and see the image as build.PrebakeDigest etc.
		state := new(multistep.BasicStateBag)
		state.Put("hook", hook)
		state.Put("ui", ui)
		state.Put("generated_data", map[string]any{
			"PrebakeDigest": a.Digest, "PrebakeReference": a.Reference, "PrebakePushed": a.Pushed,
		})
		step := new(commonsteps.StepProvision)
		action := step.Run(ctx, state)
		if action == multistep.ActionHalt {
			step.Cleanup(state)
			if err, ok := state.GetOk("error"); ok {
				return nil, err.(error)
			}
			return nil, fmt.Errorf("provisioning %s: %w", a.Digest, context.Cause(ctx))
		}
	}
	return a, nil
}
