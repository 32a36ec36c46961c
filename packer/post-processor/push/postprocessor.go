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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/packer/internal/pluginutil"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

const (
	// BuilderID identifies the post-processor's artifacts.
	BuilderID = "prebake.post-processor.push"
	// ArtifactType is the artifactType of a published disk.
	ArtifactType = "application/vnd.prebake.disk.v1"
	// AnnotationSourceImage and AnnotationSourceDigest link a disk to the
	// prebake node image it was made from.
	AnnotationSourceImage  = "dev.prebake.disk.source.image"
	AnnotationSourceDigest = "dev.prebake.disk.source.digest"
	// AnnotationFormat is each layer's disk format.
	AnnotationFormat = "dev.prebake.disk.format"

	emptyConfigType = "application/vnd.oci.empty.v1+json"
	annotationTitle = "org.opencontainers.image.title"
)

// mediaTypes maps a disk format to its layer media type.
var mediaTypes = map[string]types.MediaType{
	"qcow2": "application/vnd.prebake.disk.layer.v1.qcow2",
	"raw":   "application/vnd.prebake.disk.layer.v1.raw",
	"vmdk":  "application/vnd.prebake.disk.layer.v1.vmdk",
}

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

// disk is one file to publish.
type disk struct {
	path, format string
	size         int64
	digest       v1.Hash
}

// pickDisks selects the disk files among files, in name order, and checks
// each one's header against its format.
func pickDisks(files []string, force string) (disks []disk, skipped []string, err error) {
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
		disks = append(disks, disk{path: f, format: format, size: fi.Size()})
	}
	if len(disks) == 0 {
		return nil, nil, fmt.Errorf("no disk files (.qcow2, .raw, .img, .vmdk) among %d files %v; set format to publish other names", len(files), files)
	}
	return disks, skipped, nil
}

func formatOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".qcow2":
		return "qcow2"
	case ".raw", ".img":
		return "raw"
	case ".vmdk":
		return "vmdk"
	}
	return ""
}

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

// diskArtifact builds the artifact manifest over the disks, hashing each
// file once; layer contents are read from the files when pushed.
func diskArtifact(disks []disk, ann map[string]string) (v1.Image, error) {
	empty := []byte("{}")
	emptyDigest := sha(empty)
	layers := map[v1.Hash]partial.CompressedLayer{}
	var descs []v1.Descriptor
	for i := range disks {
		d := &disks[i]
		h, n, err := hashFile(d.path)
		if err != nil {
			return nil, err
		}
		if n != d.size {
			return nil, fmt.Errorf("%s changed while it was read (%d bytes, then %d)", d.path, d.size, n)
		}
		d.digest = h
		mt := mediaTypes[d.format]
		descs = append(descs, v1.Descriptor{
			MediaType: mt, Digest: h, Size: n,
			Annotations: map[string]string{annotationTitle: filepath.Base(d.path), AnnotationFormat: d.format},
		})
		layers[h] = &fileLayer{path: d.path, digest: h, size: n, mediaType: mt}
	}
	if len(ann) == 0 {
		ann = nil
	}
	m := struct {
		SchemaVersion int64             `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        v1.Descriptor     `json:"config"`
		Layers        []v1.Descriptor   `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType,
		Config:      v1.Descriptor{MediaType: emptyConfigType, Digest: emptyDigest, Size: 2, Data: empty},
		Layers:      descs,
		Annotations: ann,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifactCore{manifest: raw, config: empty, layers: layers})
}

func hashFile(file string) (v1.Hash, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("reading %s: %w", file, err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// artifactCore is the manifest, config and layers of a disk artifact.
type artifactCore struct {
	manifest, config []byte
	layers           map[v1.Hash]partial.CompressedLayer
}

func (a *artifactCore) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifactCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifactCore) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifactCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	if h == sha(a.config) {
		return &bytesLayer{data: a.config, mediaType: emptyConfigType}, nil
	}
	return nil, fmt.Errorf("blob %s: not in this artifact", h)
}

// fileLayer is a disk file served as a layer, as is. Reads are checked
// against the digest computed when the artifact was built, so a file that
// changes before it is pushed fails the push instead of publishing bytes
// nobody hashed.
type fileLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	return &verifyingReader{f: f, h: sha256.New(), want: l.digest, size: l.size, name: l.path}, nil
}

type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	n    int64
	size int64
	want v1.Hash
	name string
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); r.n != r.size || got != r.want.Hex {
			return n, fmt.Errorf("%s changed after it was hashed (now %d bytes, sha256:%s; published as %s)", r.name, r.n, got, r.want)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }

type bytesLayer struct {
	data      []byte
	mediaType types.MediaType
}

func (l *bytesLayer) Digest() (v1.Hash, error)            { return sha(l.data), nil }
func (l *bytesLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *bytesLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *bytesLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
