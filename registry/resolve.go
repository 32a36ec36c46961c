package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/progress"
)

// Options configure every operation that talks to a registry. The zero value
// uses the Docker config keychain over HTTPS.
type Options struct {
	// Insecure allows plain HTTP (for loopback registries).
	Insecure bool
	// Keychain resolves credentials; nil means the Docker config and its
	// credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Jobs is how many blobs move at once; 0 means 4.
	Jobs int
	// Progress receives byte counts; nil is silent.
	Progress progress.Func
}

func (o Options) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o Options) remoteOptions(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	if o.Jobs > 0 {
		opts = append(opts, remote.WithJobs(o.Jobs))
	}
	return opts
}

// Get resolves ref to its descriptor and the image or index it names.
func Get(ctx context.Context, ref Reference, o Options) (Artifact, v1.Descriptor, error) {
	switch ref.Transport {
	case TransportLayout, TransportStore:
		l, err := openExisting(ref.LayoutDir())
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		d, err := l.Resolve(ref)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		a, err := l.Artifact(d)
		return a, d, err
	case TransportRemote:
		r, err := ref.Remote(o.nameOptions()...)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		desc, err := remote.Get(r, o.remoteOptions(ctx)...)
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("getting %s: %w", ref, err)
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			return idx, desc.Descriptor, err
		}
		img, err := desc.Image()
		return img, desc.Descriptor, err
	}
	return nil, v1.Descriptor{}, fmt.Errorf("reference %s: unknown transport %q", ref, ref.Transport)
}

func openExisting(dir string) (*Layout, error) {
	if _, err := os.Stat(dir + "/index.json"); err != nil {
		return nil, fmt.Errorf("opening layout %s: %w", dir, ErrNotFound)
	}
	return &Layout{dir: dir}, nil
}

// Resolve finds the descriptor ref names in the layout: by digest (top-level
// entry or any blob present), by ref name, or the only image when neither is
// given.
func (l *Layout) Resolve(ref Reference) (v1.Descriptor, error) {
	im, err := l.ReadIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if ref.Digest != "" {
		h, err := v1.NewHash(ref.Digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, d := range im.Manifests {
			if d.Digest == h {
				d.Annotations = nil
				return d, nil
			}
		}
		// A nested manifest (a platform image of an index).
		b, err := os.ReadFile(l.blobPath(h))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		if err := json.Unmarshal(b, &probe); err != nil || probe.MediaType == "" {
			return v1.Descriptor{}, fmt.Errorf("%s: blob is not a manifest", ref)
		}
		return v1.Descriptor{MediaType: probe.MediaType, Digest: h, Size: int64(len(b))}, nil
	}
	want := ref.RefName()
	var only []v1.Descriptor
	for _, d := range im.Manifests {
		n := d.Annotations[refNameAnnotation]
		if want != "" && n == want {
			return d, nil
		}
		if n != "" {
			only = append(only, d)
		}
	}
	if want == "" && len(only) == 1 {
		return only[0], nil
	}
	if want == "" {
		return v1.Descriptor{}, fmt.Errorf("%s holds %d tagged images: name one with :TAG or @DIGEST", l.dir, len(only))
	}
	return v1.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
}

// Artifact opens the image or index d describes.
func (l *Layout) Artifact(d v1.Descriptor) (Artifact, error) {
	p := l.Path()
	if d.MediaType.IsIndex() {
		ii, err := p.ImageIndex()
		if err != nil {
			return nil, err
		}
		return ii.ImageIndex(d.Digest)
	}
	img, err := p.Image(d.Digest)
	if err != nil {
		// A manifest nested in an index (a platform image) is not in
		// index.json; open it through the index that lists it.
		if a := nestedArtifact(p, d); a != nil {
			return a, nil
		}
	}
	return img, err
}

// nestedArtifact finds d below the indexes listed in the layout's
// index.json and opens it through its parent; nil when no index lists it.
func nestedArtifact(p layout.Path, d v1.Descriptor) Artifact {
	top, err := p.ImageIndex()
	if err != nil {
		return nil
	}
	var find func(ii v1.ImageIndex, depth int) Artifact
	find = func(ii v1.ImageIndex, depth int) Artifact {
		im, err := ii.IndexManifest()
		if err != nil || depth > 8 {
			return nil
		}
		for _, c := range im.Manifests {
			if c.Digest == d.Digest {
				if c.MediaType.IsIndex() {
					a, err := ii.ImageIndex(c.Digest)
					if err == nil {
						return a
					}
				} else if a, err := ii.Image(c.Digest); err == nil {
					return a
				}
			}
		}
		for _, c := range im.Manifests {
			if !c.MediaType.IsIndex() {
				continue
			}
			child, err := ii.ImageIndex(c.Digest)
			if err != nil {
				continue
			}
			if a := find(child, depth+1); a != nil {
				return a
			}
		}
		return nil
	}
	return find(top, 0)
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
			d, err := MatchPlatform(im.Manifests, platform)
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
