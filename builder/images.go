package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/recipes"
)

// Annotations ctr and skopeo read from an OCI archive's index.json.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// stageImages pulls each of c's images by digest, for the component's
// platform, and writes it under root as an OCI archive.
func (b *build) stageImages(ctx context.Context, c recipes.ResolvedComponent, root string, modes map[string]fs.FileMode) error {
	for _, im := range c.Images {
		dst := filepath.Join(root, filepath.FromSlash(im.Path))
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("component %s: %s is installed twice", c.Name, im.Path)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		from, err := pullRepository(im.Ref, b.o.RegistryMirrors, b.o.Offline)
		if err != nil {
			return fmt.Errorf("component %s: image %s: %w", c.Name, im.Ref, err)
		}
		if err := writeImageArchive(ctx, im, from, time.Unix(b.res.Epoch, 0).UTC(), dst, b.o.Progress); err != nil {
			return fmt.Errorf("pulling image %s@%s (%s/%s) from %s: %w", im.Ref, im.Digest, im.OS, im.Arch, from, err)
		}
		modes[dst] = 0o644
	}
	return nil
}

// pullRepository is the repository im is pulled from: its own, or its
// registry's mirror with the same repository path. Offline, only a mirror.
func pullRepository(ref string, mirrors map[string]string, offline bool) (name.Repository, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Repository{}, err
	}
	m, ok := mirrors[tag.RegistryStr()]
	if !ok && offline {
		return name.Repository{}, fmt.Errorf("%w: offline, and no --mirror %s=HOST[/prefix] to pull it from", ErrOfflineImage, tag.RegistryStr())
	}
	if !ok {
		return tag.Context(), nil
	}
	repo, err := name.NewRepository(strings.TrimSuffix(m, "/") + "/" + tag.RepositoryStr())
	if err != nil {
		return name.Repository{}, fmt.Errorf("registry mirror %s=%s: %w", tag.RegistryStr(), m, err)
	}
	return repo, nil
}

// writeImageArchive pulls im from repo and writes it to dst as a tar of an OCI image
// layout holding that one image: entries sorted, owned by 0:0, dated mtime,
// every blob checked against its digest and size while it is copied. The
// index.json names the image for ctr (io.containerd.image.name) and skopeo
// (org.opencontainers.image.ref.name, the tag).
func writeImageArchive(ctx context.Context, im recipes.ResolvedImage, repo name.Repository, mtime time.Time, dst string, prog progress.Func) error {
	tag, err := name.NewTag(im.Ref, name.StrictValidation)
	if err != nil {
		return err
	}
	want, err := v1.NewHash(im.Digest)
	if err != nil {
		return err
	}
	img, err := remote.Image(repo.Digest(im.Digest), remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: im.OS, Architecture: im.Arch}),
		remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	manifest, err := v1.ParseManifest(strings.NewReader(string(rawManifest)))
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	mDigest, mSize, err := v1.SHA256(strings.NewReader(string(rawManifest)))
	if err != nil {
		return err
	}
	if mt.IsIndex() {
		return fmt.Errorf("%s resolved to an index, not an image", want)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if got := digestOf(rawConfig); got != manifest.Config.Digest || int64(len(rawConfig)) != manifest.Config.Size {
		return fmt.Errorf("config: expected %s (%d bytes), got %s (%d bytes)", manifest.Config.Digest, manifest.Config.Size, got, len(rawConfig))
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(rawConfig)))
	if err != nil {
		return err
	}
	if cfg.OS != im.OS || cfg.Architecture != im.Arch {
		return fmt.Errorf("the image is for %s/%s, not %s/%s", cfg.OS, cfg.Architecture, im.OS, im.Arch)
	}

	annotations := map[string]string{annotationContainerdName: im.Ref, annotationRefName: tag.TagStr()}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Size: mSize, Digest: mDigest, Annotations: annotations,
			Platform: &v1.Platform{OS: im.OS, Architecture: im.Arch},
		}},
	})
	if err != nil {
		return err
	}

	// Blobs in path order, each once.
	type blob struct {
		desc v1.Descriptor
		raw  []byte // manifest and config; nil for layers
	}
	blobs := map[string]blob{
		mDigest.Hex:                blob{v1.Descriptor{Digest: mDigest, Size: mSize}, rawManifest},
		manifest.Config.Digest.Hex: blob{manifest.Config, rawConfig},
	}
	for _, l := range manifest.Layers {
		if _, ok := blobs[l.Digest.Hex]; !ok {
			blobs[l.Digest.Hex] = blob{desc: l}
		}
	}

	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dir := func(p string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: 0o755, ModTime: mtime})
	}
	file := func(p string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: size, ModTime: mtime})
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, hex := range slices.Sorted(maps.Keys(blobs)) {
		bl := blobs[hex]
		if err := file("blobs/sha256/"+hex, bl.desc.Size); err != nil {
			return err
		}
		if bl.raw != nil {
			if _, err := tw.Write(bl.raw); err != nil {
				return err
			}
			continue
		}
		if err := copyLayer(ctx, img, bl.desc, tw, prog, im.Ref+" "+im.OS+"/"+im.Arch); err != nil {
			return err
		}
	}
	if err := file("index.json", int64(len(index))); err != nil {
		return err
	}
	if _, err := tw.Write(index); err != nil {
		return err
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := file("oci-layout", int64(len(layout))); err != nil {
		return err
	}
	if _, err := tw.Write(layout); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// copyLayer copies one compressed layer blob to w, refusing it unless it is
// exactly desc.Size bytes hashing to desc.Digest.
func copyLayer(ctx context.Context, img v1.Image, desc v1.Descriptor, w io.Writer, prog progress.Func, what string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	in := prog.Reader(io.LimitReader(rc, desc.Size+1), "pull", what, desc.Size)
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(in, desc.Size))
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	extra, _ := io.Copy(io.Discard, io.LimitReader(in, 1))
	prog.Report(progress.Event{Op: "pull", Name: what, Done: n, Total: desc.Size, Finished: true})
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != desc.Size || extra != 0 || got != desc.Digest.String() {
		return fmt.Errorf("layer: expected %s (%d bytes), got %s (%d+ bytes)", desc.Digest, desc.Size, got, n+extra)
	}
	return nil
}
