// Package prebake is the plugin's builder: it makes the one library call
// `prebake build` makes (pipeline.Run: build a recipe file or catalog recipe
// into a reproducible OCI node image, write it to a layout or the store,
// optionally push it and sign and attest it there) and returns an artifact
// whose id is the image digest. It starts no machine;
// applying an image to one is the provisioner's job.
package prebake

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/pipeline"
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
	o := c.pipelineOptions()
	if err := c.fetch().Configure(&o); err != nil {
		return nil, err
	}
	ui.Say(fmt.Sprintf("Building %s:%s (%d platforms)", res.Name, res.Version, len(res.Builds)))
	r, err := pipeline.Run(ctx, res, o)
	if err != nil {
		return nil, err
	}
	a := &Artifact{
		Digest:       r.Digest,
		Reference:    c.output.WithDigest(r.Digest).String(),
		Pushed:       r.Pushed,
		Name:         r.Name,
		Version:      r.Version,
		RecipeDigest: r.RecipeDigest,
		Signed:       r.Signatures,
		Attested:     r.Attestations,
	}
	for _, p := range r.Platforms {
		a.Platforms = append(a.Platforms, p.Platform)
	}
	ui.Say(fmt.Sprintf("Built %s, written to %s", a.Digest, c.output))
	if a.Pushed != "" {
		ui.Say("Pushed to " + a.Pushed)
	}
	if a.Signed > 0 {
		ui.Say(fmt.Sprintf("Signed %s (%d manifests, %d attestations: SBOM, provenance)", a.Pushed, a.Signed, a.Attested))
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
