package store

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// MatchPlatform is the one platform matcher: it returns the entry of an
// index's manifests for platform ("os/arch[/variant]"; a variant is matched
// only when given; empty means linux/<this machine's architecture>). When
// none matches, the error lists the platforms the index has and wraps
// ErrNotFound. Pull, export, annotations and the Packer provisioner choose
// an index's image through it.
func MatchPlatform(manifests []v1.Descriptor, platform string) (v1.Descriptor, error) {
	if platform == "" {
		platform = "linux/" + runtime.GOARCH
	}
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("platform %q: %w", platform, err)
	}
	var have []string
	for _, d := range manifests {
		if d.Platform == nil {
			continue
		}
		have = append(have, d.Platform.String())
		if d.Platform.Satisfies(*want) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s (the index has %s): %w", platform, strings.Join(have, ", "), ErrNotFound)
}

// PlatformImage is the image of a for platform: a itself when it is an
// image, else the index entry MatchPlatform picks (through nested indexes).
// When platform is given and a is a single image whose config names another
// OS or architecture, it fails instead of returning an image that would not
// run.
func PlatformImage(a Artifact, platform string) (v1.Image, error) {
	for depth := 0; depth < 8; depth++ {
		switch x := a.(type) {
		case v1.Image:
			if platform == "" {
				return x, nil
			}
			want, err := v1.ParsePlatform(platform)
			if err != nil {
				return nil, fmt.Errorf("platform %q: %w", platform, err)
			}
			cf, err := x.ConfigFile()
			if err != nil {
				return nil, err
			}
			if cf.OS != "" && (cf.OS != want.OS || cf.Architecture != want.Architecture) {
				return nil, fmt.Errorf("the image is for %s/%s, not %s: %w", cf.OS, cf.Architecture, want, ErrNotFound)
			}
			return x, nil
		case v1.ImageIndex:
			im, err := x.IndexManifest()
			if err != nil {
				return nil, err
			}
			d, err := MatchPlatform(im.Manifests, platform)
			if err != nil {
				return nil, err
			}
			if a, err = ChildOf(x, d); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%T is neither an image nor an index", a)
		}
	}
	return nil, fmt.Errorf("indexes nested deeper than 8 levels")
}
