package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/remote"
	"github.com/prebake/prebake/registry/store"
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

func (o Options) remote() remote.Options {
	return remote.Options{Insecure: o.Insecure, Keychain: o.Keychain, Transport: o.Transport}
}

// Open opens the place ref names as a store.Store: a layout, a name in the
// local store, or a registry repository. With push it is opened for writing
// (a layout is created; a registry token has push scope), and mountFrom
// lists repositories a write may mount blobs from.
func Open(ctx context.Context, ref Reference, o Options, push bool, mountFrom ...Reference) (store.Store, error) {
	switch ref.Transport {
	case reference.TransportLayout, reference.TransportStore:
		return store.Open(ref, push)
	case reference.TransportRemote:
		return remote.Open(ctx, ref, o.remote(), push, mountFrom...)
	}
	return nil, fmt.Errorf("reference %s: unknown transport %q", ref, ref.Transport)
}

// openResolved opens ref's place for reading and resolves ref in it.
func openResolved(ctx context.Context, ref Reference, o Options) (store.Store, v1.Descriptor, error) {
	s, err := Open(ctx, ref, o, false)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	d, err := s.Resolve(ctx, ref.Tag, ref.Digest)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return s, d, nil
}
