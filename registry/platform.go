package registry

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
