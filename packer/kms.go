//go:build kms

package main

// The cloud KMS providers for sign_key and public_key = awskms://, gcpkms://,
// azurekms://, hashivault:// (registered here, not by signing). Built with
// `make plugin-kms` (go build -tags kms); the default build answers such
// keys with signing.ErrNoKMS, naming this build.
import _ "github.com/prebake/prebake/signing/kms"
