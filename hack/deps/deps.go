//go:build tools

// Package deps pins the libraries prebake's packages are being built on, so
// that `go mod tidy` keeps them while the code that imports them lands. It is
// never compiled into anything.
package deps

import (
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-containerregistry/pkg/authn"
	_ "github.com/google/go-containerregistry/pkg/name"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/empty"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/google/go-containerregistry/pkg/v1/mutate"
	_ "github.com/google/go-containerregistry/pkg/v1/partial"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/v1/types"
	_ "github.com/klauspost/compress/gzip"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/olareg/olareg"
	_ "github.com/olareg/olareg/config"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
	_ "github.com/sigstore/cosign/v2/pkg/cosign"
	_ "github.com/sigstore/cosign/v2/pkg/oci/remote"
	_ "github.com/sigstore/cosign/v2/pkg/signature"
	_ "github.com/spf13/cobra"
	_ "gopkg.in/yaml.v3"
	_ "sigs.k8s.io/yaml"
)
