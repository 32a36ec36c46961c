// Package prebake is the plugin's provisioner: it applies a signed prebake
// node image to the machine of any Packer builder over Packer's
// communicator. It verifies the image offline with a public key, uploads the
// layers of the machine's platform, extracts them in order as root with
// their exact modes and ownership (OCI whiteouts applied), installs the
// recipe's OS packages, imports pre-pulled container images into containerd
// and records what was applied in /etc/prebake/image.json. It refuses tags:
// a machine gets exactly the digest that was tested.
package prebake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/unpack"
	"github.com/prebake/prebake/signing"
)

// Provisioner applies a prebake image to a Packer machine.
type Provisioner struct {
	config Config
}

// ConfigSpec returns the HCL2 schema of Config.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare checks the configuration (see Config.Prepare).
func (p *Provisioner) Prepare(raws ...any) error { return p.config.Prepare(raws...) }

// Provision verifies the image, uploads its layers and applies them.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]any) error {
	c := &p.config
	if c.ref.Digest == "" { // unknown at Prepare (a data source output)
		ref, err := pluginutil.ParseDigestRef(c.Image)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		c.ref = ref
	}
	ropts := registry.Options{Insecure: c.Insecure}
	ui.Say(fmt.Sprintf("Verifying %s with %s", c.ref, c.PublicKey))
	vr, err := signing.Verify(ctx, c.ref, signing.VerifyOptions{Key: c.PublicKey, Registry: ropts})
	if err != nil {
		return err
	}
	platform := c.Platform
	if platform == "" {
		if platform, err = remotePlatform(ctx, comm); err != nil {
			return err
		}
	}
	root, _, err := registry.Get(ctx, c.ref, ropts)
	if err != nil {
		return err
	}
	img, err := registry.PlatformImage(root, platform)
	if err != nil {
		return fmt.Errorf("%s: %w", c.ref, err)
	}
	ann, err := registry.Annotations(ctx, c.ref, platform, ropts)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "prebake-provision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	layers, err := unpack.Stage(ctx, img, work)
	if err != nil {
		return fmt.Errorf("%s: %w", c.ref, err)
	}
	plan := newPlan(layers)
	rec, err := record(c.ref, vr.Digest, platform, img, ann)
	if err != nil {
		return err
	}
	staging := c.StagingDir
	if staging == "" {
		out, err := output(ctx, comm, "mktemp -d /tmp/prebake.XXXXXXXXXX")
		if err != nil {
			return fmt.Errorf("creating a staging directory: %w", err)
		}
		if staging = strings.TrimSpace(out); !path.IsAbs(staging) || staging == "/" {
			return fmt.Errorf("creating a staging directory: mktemp printed %q", out)
		}
	} else if err := runCmd(ctx, comm, ui, "mkdir -p "+quote(staging)+" && chmod 0700 "+quote(staging)); err != nil {
		return fmt.Errorf("creating %s: %w", staging, err)
	}
	plan.staging = staging
	scriptRan := false
	defer func() { // the script removes it itself once it runs
		if !scriptRan {
			_, _ = output(context.WithoutCancel(ctx), comm, "rm -rf "+quote(staging))
		}
	}()
	var total int64
	for i := range plan.layers {
		l := &plan.layers[i]
		l.remote = path.Join(staging, filepath.Base(l.File))
		total += l.size
	}
	recRemote := path.Join(staging, "image.json")
	if err := os.WriteFile(filepath.Join(work, "image.json"), rec, 0o600); err != nil {
		return err
	}
	var pkgs []string
	if s := ann[recipes.AnnotationOSPackages]; s != "" && !c.SkipOSPackages {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				pkgs = append(pkgs, n)
			}
		}
	}
	script, err := applyScript(c, plan, recRemote, pkgs)
	if err != nil {
		return err
	}
	scriptRemote := path.Join(staging, "apply.sh")
	if err := os.WriteFile(filepath.Join(work, "apply.sh"), []byte(script), 0o600); err != nil {
		return err
	}
	// One transfer for everything: each communicator session costs a
	// round trip or more, and an image has a handful of layers.
	for i, l := range plan.layers {
		what := fmt.Sprintf("%d bytes", l.size)
		if l.component != "" {
			what = l.component + " " + l.version + ", " + what
		}
		ui.Say(fmt.Sprintf("Layer %d/%d %s (%s)", i+1, len(plan.layers), l.digest, what))
	}
	ui.Say(fmt.Sprintf("Uploading %d layers (%d bytes), image.json and apply.sh to %s", len(plan.layers), total, staging))
	if err := comm.UploadDir(staging, work+"/", nil); err != nil {
		return fmt.Errorf("uploading to %s: %w", staging, err)
	}
	cmd := "sh " + quote(scriptRemote)
	if c.Sudo {
		cmd = "sudo -n " + cmd
	}
	ui.Say(fmt.Sprintf("Applying %d layers of %s (%s) under %s", len(plan.layers), vr.Digest, platform, c.Root))
	scriptRan = true
	if err := runCmd(ctx, comm, ui, cmd); err != nil {
		return fmt.Errorf("applying %s: %w", c.ref, err)
	}
	ui.Say(fmt.Sprintf("Applied %s; recorded in %s", vr.Digest, path.Join(c.Root, "etc/prebake/image.json")))
	return nil
}

// runCmd runs command on the machine, streaming its output to ui, and fails
// on a non-zero exit.
func runCmd(ctx context.Context, comm packersdk.Communicator, ui packersdk.Ui, command string) error {
	cmd := &packersdk.RemoteCmd{Command: command}
	if err := cmd.RunWithUi(ctx, comm, ui); err != nil {
		return err
	}
	if s := cmd.ExitStatus(); s != 0 {
		return fmt.Errorf("%q exited with status %d", command, s)
	}
	return nil
}

// output runs command on the machine and returns its standard output.
func output(ctx context.Context, comm packersdk.Communicator, command string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: &errOut}
	if err := comm.Start(ctx, cmd); err != nil {
		return "", err
	}
	if s := cmd.Wait(); s != 0 {
		return "", fmt.Errorf("%s exited with %d: %s", command, s, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// remotePlatform asks the machine for its architecture.
func remotePlatform(ctx context.Context, comm packersdk.Communicator) (string, error) {
	out, err := output(ctx, comm, "uname -m")
	if err != nil {
		return "", fmt.Errorf("asking the machine its architecture: %w", err)
	}
	m := strings.TrimSpace(out)
	arch, ok := map[string]string{
		"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
	}[m]
	if !ok {
		return "", fmt.Errorf("machine architecture %q: unknown; set platform", m)
	}
	return "linux/" + arch, nil
}

// layerPlan is one staged layer (unpack.Stage) and where it goes on the
// machine.
type layerPlan struct {
	unpack.Layer
	component, version, digest string
	size                       int64
	remote                     string
}

type plan struct {
	layers  []layerPlan
	staging string // remote staging directory
}

func newPlan(ls []unpack.Layer) *plan {
	p := &plan{}
	for _, l := range ls {
		d := l.Descriptor
		p.layers = append(p.layers, layerPlan{Layer: l, digest: d.Digest.String(), size: d.Size,
			component: d.Annotations[recipes.AnnotationComponent], version: d.Annotations[recipes.AnnotationComponentVersion]})
	}
	return p
}

// imageRecord is /etc/prebake/image.json: what was applied, reproducibly
// (no timestamps), for node agents and audits.
type imageRecord struct {
	Image             string            `json:"image"`
	Digest            string            `json:"digest"`
	Platform          string            `json:"platform"`
	PlatformDigest    string            `json:"platformDigest"`
	Name              string            `json:"name,omitempty"`
	Version           string            `json:"version,omitempty"`
	KubernetesVersion string            `json:"kubernetesVersion,omitempty"`
	RecipeDigest      string            `json:"recipeDigest,omitempty"`
	OSPackages        []string          `json:"osPackages,omitempty"`
	Components        []componentRecord `json:"components"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

type componentRecord struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Layer   string `json:"layer"`
}

func record(ref registry.Reference, digest, platform string, img v1.Image, ann map[string]string) ([]byte, error) {
	pd, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	r := imageRecord{
		Image: ref.WithDigest(digest).String(), Digest: digest, Platform: platform, PlatformDigest: pd.String(),
		Name: ann[recipes.AnnotationRecipe], Version: ann["org.opencontainers.image.version"],
		KubernetesVersion: ann[recipes.AnnotationKubernetesVersion], RecipeDigest: ann[recipes.AnnotationRecipeDigest],
		Annotations: ann, Components: []componentRecord{},
	}
	if s := ann[recipes.AnnotationOSPackages]; s != "" {
		r.OSPackages = strings.Split(s, ",")
	}
	for _, l := range m.Layers {
		r.Components = append(r.Components, componentRecord{
			Name: l.Annotations[recipes.AnnotationComponent], Version: l.Annotations[recipes.AnnotationComponentVersion], Layer: l.Digest.String(),
		})
	}
	b, err := json.MarshalIndent(r, "", "  ")
	return append(b, '\n'), err
}
