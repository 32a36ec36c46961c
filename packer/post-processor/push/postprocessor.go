// Package push is the plugin's prebake-push post-processor: it publishes the
// disk files a builder made (qcow2, raw, vmdk) as one OCI artifact
// (artifactType application/vnd.prebake.disk.v1, one layer per file with
// its format's media type), records which prebake node image the disk runs,
// optionally signs it, and returns the artifact's digest. It streams the
// files as they are: no recompression, no copy.
package push

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

const (
	// BuilderID identifies the post-processor's artifacts.
	BuilderID = "prebake.post-processor.push"
	// ArtifactType is the artifactType of a published disk.
	ArtifactType = disk.ArtifactType
	// AnnotationSourceImage and AnnotationSourceDigest link a disk to the
	// prebake node image it was made from.
	AnnotationSourceImage  = "dev.prebake.disk.source.image"
	AnnotationSourceDigest = "dev.prebake.disk.source.digest"
	// AnnotationFormat is each layer's disk format.
	AnnotationFormat = disk.AnnotationFormat
)

// PostProcessor publishes disk files as an OCI artifact.
type PostProcessor struct {
	config Config
}

// ConfigSpec returns the HCL2 schema of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure checks the configuration (see Config.Prepare).
func (p *PostProcessor) Configure(raws ...any) error { return p.config.Prepare(raws...) }

// PostProcess pushes the disk files of source and returns the pushed artifact.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, source packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	c := &p.config
	if c.dst.Transport == "" || pluginutil.Unknown(c.SourceImage) {
		return nil, true, false, fmt.Errorf("repository %q or source_image %q is still unknown at build time", c.Repository, c.SourceImage)
	}
	keep := true
	if c.KeepInputArtifact != nil {
		keep = *c.KeepInputArtifact
	}
	disks, skipped, err := pickDisks(source.Files(), c.Format)
	if err != nil {
		return nil, keep, true, fmt.Errorf("artifact %s of %s: %w", source.Id(), source.BuilderId(), err)
	}
	for _, s := range skipped {
		ui.Say("Skipping " + s + ": not a qcow2, raw or vmdk disk")
	}
	ann := map[string]string{}
	for k, v := range c.Annotations {
		ann[k] = v
	}
	if c.sourceDigst != "" {
		ann[AnnotationSourceDigest] = c.sourceDigst
	}
	if c.sourceRef != "" {
		ann[AnnotationSourceImage] = c.sourceRef
	}
	for _, d := range disks {
		ui.Say(fmt.Sprintf("Hashing %s (%s, %d bytes)", d.path, d.format, d.size))
	}
	img, err := diskArtifact(disks, ann)
	if err != nil {
		return nil, keep, true, err
	}
	ropts := registry.Options{Insecure: c.Insecure}
	desc, err := registry.Write(ctx, c.dst, img, nil, ropts)
	if err != nil {
		return nil, keep, true, fmt.Errorf("pushing to %s: %w", c.dst, err)
	}
	a := &Artifact{Digest: desc.Digest.String(), Reference: c.dst.WithDigest(desc.Digest.String()).String(), SourceDigest: c.sourceDigst}
	for _, d := range disks {
		a.Disks = append(a.Disks, filepath.Base(d.path))
	}
	ui.Say("Pushed " + a.Reference)
	if c.SignKey != "" {
		signAt := c.dst.WithDigest(a.Digest)
		if _, err := signing.Sign(ctx, signAt, signing.SignOptions{
			KeyOptions: signing.KeyOptions{Key: c.SignKey, Password: pluginutil.Password(c.SignKeyPassword)},
			Registry:   ropts,
		}); err != nil {
			return nil, keep, true, err
		}
		a.Signed = true
		ui.Say("Signed " + a.Reference)
	}
	return a, keep, true, nil
}

// diskFile is one file to publish.
type diskFile struct {
	path, format string
	size         int64
}

// pickDisks selects the disk files among files, in name order, and checks
// each one's header against its format.
func pickDisks(files []string, force string) (disks []diskFile, skipped []string, err error) {
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	for _, f := range sorted {
		format := force
		if format == "" {
			format = formatOf(f)
		}
		if format == "" {
			skipped = append(skipped, f)
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("%s: not a regular file", f)
		}
		if err := checkHeader(f, format); err != nil {
			return nil, nil, err
		}
		disks = append(disks, diskFile{path: f, format: format, size: fi.Size()})
	}
	if len(disks) == 0 {
		return nil, nil, fmt.Errorf("no disk files (.qcow2, .raw, .img, .vmdk) among %d files %v; set format to publish other names", len(files), files)
	}
	return disks, skipped, nil
}

func formatOf(name string) string { return disk.FileFormat(strings.ToLower(name)) }

// checkHeader refuses a file whose first bytes contradict its format.
func checkHeader(file, format string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 21)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch format {
	case "qcow2":
		if !bytes.HasPrefix(head, []byte("QFI\xfb")) {
			return fmt.Errorf("%s: not a qcow2 image (header %q, expected \"QFI\\xfb\")", file, head[:min(4, n)])
		}
	case "vmdk":
		if !bytes.HasPrefix(head, []byte("KDMV")) && !bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) {
			return fmt.Errorf("%s: not a vmdk image (header %q, expected \"KDMV\" or a descriptor)", file, head[:min(4, n)])
		}
	}
	return nil
}

// diskArtifact builds the artifact over the disks (registry.FileArtifact:
// each file hashed once, checked again while it is pushed).
func diskArtifact(disks []diskFile, ann map[string]string) (v1.Image, error) {
	files := make([]registry.File, len(disks))
	for i, d := range disks {
		files[i] = disk.PublishedFile(d.path, d.format)
	}
	return registry.FileArtifact(ArtifactType, files, ann)
}
