package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/store"
)

// Write stores root (an image or index) and its referrers at dst: in a layout
// or the store it is tagged dst.RefName(); in a registry it is pushed by
// digest, referrers after it, and tagged dst.Tag last, so the tag never names
// an incomplete graph.
func Write(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (v1.Descriptor, error) {
	switch dst.Transport {
	case TransportLayout, TransportStore:
		l, err := store.OpenLayout(store.Dir(dst))
		if err != nil {
			return v1.Descriptor{}, err
		}
		return l.Put(ctx, dst.RefName(), root, referrers, PutOptions{Jobs: o.Jobs, Progress: o.Progress})
	case TransportRemote:
		return writeRemote(ctx, dst, root, referrers, o)
	}
	return v1.Descriptor{}, fmt.Errorf("reference %s: unknown transport %q", dst, dst.Transport)
}

// writeRemote pushes through the same engine as Copy (see Push): HEAD before
// upload, parallel streaming PUTs of the layers as stored, referrers indexed
// (API or tag fallback), the tag last.
func writeRemote(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (v1.Descriptor, error) {
	res, err := Push(ctx, dst, root, referrers, o)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("pushing %s: %w", dst, err)
	}
	return res.Descriptor, nil
}
