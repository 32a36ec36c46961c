package registry

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/remote"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/transfer"
)

// CopyResult reports what a Copy or Push moved (see transfer.Result).
type CopyResult = transfer.Result

// Copy copies the image or index src names, with all its referrers (SBOMs,
// signatures, channel records, records.Revocations) and cosign's legacy
// "sha256-<hex>.sig/.att/.sbom" tags, to dst — between any of layouts, the
// store and registries. Blobs move in parallel (o.Jobs) as stored (never
// recompressed), blobs dst already has are skipped after a HEAD, and within
// one registry they are mounted across repositories. Manifests go after their
// blobs, children before parents, referrers after their subject, and dst's
// tag last, so the tag never names an incomplete graph. A dst with neither tag
// nor digest (possible for oci: layouts; ParseReference gives registry and
// store references "latest") gets src's tag. o.Progress receives "upload"
// events.
func Copy(ctx context.Context, src, dst Reference, o Options) (CopyResult, error) {
	se, err := Open(ctx, src, o, false)
	if err != nil {
		return CopyResult{}, err
	}
	root, err := se.Resolve(ctx, src.Tag, src.Digest)
	if err != nil {
		return CopyResult{}, err
	}
	de, err := Open(ctx, dst, o, true, src)
	if err != nil {
		return CopyResult{}, err
	}
	tag, err := dstTag(src, dst, root)
	if err != nil {
		return CopyResult{}, err
	}
	return transfer.Copy(ctx, se, de, root, tag, transfer.Options{Jobs: o.Jobs, Progress: o.Progress, Op: "upload", MountFrom: remote.MountSource(src, dst, o.remote())})
}

func dstTag(src, dst Reference, root v1.Descriptor) (string, error) {
	if dst.Digest != "" && dst.Digest != root.Digest.String() {
		return "", &DigestError{What: "manifest", Source: src.String(), Expected: dst.Digest, Actual: root.Digest.String()}
	}
	if dst.Tag == "" && dst.Digest == "" {
		return src.Tag, nil
	}
	return dst.Tag, nil
}

// Push writes root (an image or index held in memory, e.g. fresh from the
// builder) and its referrers to dst, like Copy: layers are streamed as stored
// (layer.Compressed), existing blobs skipped, the tag written last.
func Push(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (CopyResult, error) {
	se, err := store.NewMemory(root, referrers)
	if err != nil {
		return CopyResult{}, err
	}
	de, err := Open(ctx, dst, o, true)
	if err != nil {
		return CopyResult{}, err
	}
	if dst.Digest != "" && dst.Digest != se.Root().Digest.String() {
		return CopyResult{}, &DigestError{What: "manifest", Source: dst.String(), Expected: dst.Digest, Actual: se.Root().Digest.String()}
	}
	return transfer.Copy(ctx, se, de, se.Root(), dst.Tag, transfer.Options{Jobs: o.Jobs, Progress: o.Progress, Op: "upload"})
}
