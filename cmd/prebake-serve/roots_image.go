//go:build image

package main

// The container image (`make image`) has no CA bundle: with the image tag,
// the binary carries Mozilla's roots (x509roots/fallback), used only when
// the system has none, so it can reach registries over HTTPS.
import _ "golang.org/x/crypto/x509roots/fallback"
