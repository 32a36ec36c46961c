package remote

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/prebake/prebake/registry/reference"
)

// Options configure a connection to a registry. The zero value uses the
// Docker config keychain over HTTPS.
type Options struct {
	// Insecure allows plain HTTP (for loopback registries).
	Insecure bool
	// Keychain resolves credentials; nil means the Docker config and its
	// credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means a clone of
	// http.DefaultTransport tuned for parallel blob transfers.
	Transport http.RoundTripper
}

// NameOptions are the go-containerregistry name options o implies.
func (o Options) NameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Open connects to the repository ref names, for reading, or for writing
// too when push is set. mountFrom lists repositories of the same registry
// that blobs may be mounted from (they are added to the token's scope).
func Open(ctx context.Context, ref reference.Reference, o Options, push bool, mountFrom ...reference.Reference) (*Repository, error) {
	if ref.Transport != reference.TransportRemote {
		return nil, fmt.Errorf("%s is not a registry reference", ref)
	}
	scope := transport.PullScope
	if push {
		scope = transport.PushScope
	}
	var extra []name.Repository
	for _, m := range mountFrom {
		if m.Transport != reference.TransportRemote {
			continue
		}
		if r, err := name.NewRepository(m.Name, o.NameOptions()...); err == nil {
			extra = append(extra, r)
		}
	}
	c, err := newRepoClient(ctx, ref, scope, o, extra...)
	if err != nil {
		return nil, err
	}
	return &Repository{c: c}, nil
}

// MountSource is src's repository when src and dst are repositories of the
// same registry (blobs can be mounted from it), else "".
func MountSource(src, dst reference.Reference, o Options) string {
	if src.Transport != reference.TransportRemote || dst.Transport != reference.TransportRemote {
		return ""
	}
	s, err1 := name.NewRepository(src.Name, o.NameOptions()...)
	d, err2 := name.NewRepository(dst.Name, o.NameOptions()...)
	if err1 != nil || err2 != nil || s.RegistryStr() != d.RegistryStr() || s.RepositoryStr() == d.RepositoryStr() {
		return ""
	}
	return s.RepositoryStr()
}
