package registry

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/unpack"
)

// Reference names an image or index in one of the transports (see package
// reference).
type Reference = reference.Reference

// Transport says where a Reference lives.
type Transport = reference.Transport

// ParseOptions adjust ParseReference.
type ParseOptions = reference.ParseOptions

// The transports.
const (
	TransportLayout = reference.TransportLayout
	TransportStore  = reference.TransportStore
	TransportRemote = reference.TransportRemote
)

// ParseReference parses s (see reference.Parse); it reads no environment.
func ParseReference(s string, opts ...ParseOptions) (Reference, error) {
	return reference.Parse(s, opts...)
}

// MustParse is ParseReference for constants in tests and examples.
func MustParse(s string) Reference { return reference.MustParse(s) }

// DefaultStoreDir is $PREBAKE_STORE, else $XDG_DATA_HOME/prebake/store, else
// ~/.local/share/prebake/store (see store.DefaultDir).
func DefaultStoreDir() string { return store.DefaultDir() }

// Layout is an OCI image layout directory that prebake writes durably.
type Layout = store.Layout

// PutOptions tune Layout.Put.
type PutOptions = store.PutOptions

// Artifact is what a layout or registry holds at a manifest: a v1.Image or a
// v1.ImageIndex.
type Artifact = store.Artifact

// OpenLayout opens the layout at dir, creating an empty one if dir does not
// hold one yet.
func OpenLayout(dir string) (*Layout, error) { return store.OpenLayout(dir) }

// MatchPlatform is the one platform matcher (see store.MatchPlatform).
func MatchPlatform(manifests []v1.Descriptor, platform string) (v1.Descriptor, error) {
	return store.MatchPlatform(manifests, platform)
}

// PlatformImage is the image of a for platform (see store.PlatformImage).
func PlatformImage(a Artifact, platform string) (v1.Image, error) {
	return store.PlatformImage(a, platform)
}

// UnpackOptions tune Unpack.
type UnpackOptions = unpack.Options

// Unpack writes img's root filesystem to dir (see unpack.Unpack).
func Unpack(ctx context.Context, img v1.Image, dir string, o UnpackOptions) error {
	return unpack.Unpack(ctx, img, dir, o)
}
