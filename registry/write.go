package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Write stores root (an image or index) and its referrers at dst: in a layout
// or the store it is tagged dst.RefName(); in a registry it is pushed by
// digest, referrers after it, and tagged dst.Tag last, so the tag never names
// an incomplete graph.
func Write(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (v1.Descriptor, error) {
	switch dst.Transport {
	case TransportLayout, TransportStore:
		l, err := OpenLayout(dst.Dir)
		if err != nil {
			return v1.Descriptor{}, err
		}
		return l.Put(ctx, dst.RefName(), root, referrers, PutOptions{Jobs: o.Jobs, Progress: o.Progress})
	case TransportRemote:
		return writeRemote(ctx, dst, root, referrers, o)
	}
	return v1.Descriptor{}, fmt.Errorf("reference %s: unknown transport %q", dst, dst.Transport)
}

func writeRemote(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (v1.Descriptor, error) {
	desc, err := descriptorOf(root)
	if err != nil {
		return v1.Descriptor{}, err
	}
	byDigest, err := dst.WithDigest(desc.Digest.String()).Remote(o.nameOptions()...)
	if err != nil {
		return v1.Descriptor{}, err
	}
	ropts := o.remoteOptions(ctx)
	if err := putRemote(byDigest, root, ropts); err != nil {
		return v1.Descriptor{}, fmt.Errorf("pushing %s: %w", dst, err)
	}
	for _, r := range referrers {
		rd, err := descriptorOf(r)
		if err != nil {
			return v1.Descriptor{}, err
		}
		rref, err := dst.WithDigest(rd.Digest.String()).Remote(o.nameOptions()...)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if err := putRemote(rref, r, ropts); err != nil {
			return v1.Descriptor{}, fmt.Errorf("pushing referrer %s of %s: %w", rd.Digest, dst, err)
		}
	}
	if dst.Tag != "" {
		tagged, err := dst.Remote(o.nameOptions()...)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if err := remote.Tag(tagged.Context().Tag(dst.Tag), root.(remote.Taggable), ropts...); err != nil {
			return v1.Descriptor{}, fmt.Errorf("tagging %s: %w", dst, err)
		}
	}
	return desc, nil
}

func putRemote(ref name.Reference, a Artifact, ropts []remote.Option) error {
	switch v := a.(type) {
	case v1.ImageIndex:
		return remote.WriteIndex(ref, v, ropts...)
	case v1.Image:
		return remote.Write(ref, v, ropts...)
	}
	return fmt.Errorf("unsupported artifact %T", a)
}
