package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/store"
)

// Get resolves ref to its descriptor and the image or index it names, read
// through the Store of its place (see store.Load): every manifest and blob is
// checked against its digest as it is read.
func Get(ctx context.Context, ref Reference, o Options) (Artifact, v1.Descriptor, error) {
	s, d, err := openResolved(ctx, ref, o)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	a, err := store.Load(ctx, s, d)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("reading %s: %w", ref, err)
	}
	return a, d, nil
}

// Annotations returns the manifest annotations of ref. For an index, the
// index's annotations are merged with those of the platform's image
// ("os/arch"; empty picks the first image).
func Annotations(ctx context.Context, ref Reference, platform string, o Options) (map[string]string, error) {
	a, _, err := Get(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if idx, ok := a.(v1.ImageIndex); ok {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for k, v := range im.Annotations {
			out[k] = v
		}
		var pick *v1.Descriptor
		if platform != "" {
			d, err := store.MatchPlatform(im.Manifests, platform)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref, err)
			}
			pick = &d
		}
		for i, d := range im.Manifests {
			if pick == nil && d.MediaType.IsImage() {
				pick = &im.Manifests[i]
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("%s has no image: %w", ref, ErrNotFound)
		}
		img, err := idx.Image(pick.Digest)
		if err != nil {
			return nil, err
		}
		a = img
	}
	m, err := a.(v1.Image).Manifest()
	if err != nil {
		return nil, err
	}
	for k, v := range m.Annotations {
		out[k] = v
	}
	return out, nil
}
