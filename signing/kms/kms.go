// Package kms registers the KMS providers cosign registers in its own main,
// so that key references awskms://, gcpkms://, azurekms:// and hashivault://
// work with signing.LoadSigner and signing.LoadVerifier exactly as with
// `cosign sign --key`. Only commands import it (cmd/prebake, the Packer
// plugin's main), for its side effect: the four cloud SDKs it pulls in stay
// out of every program that merely imports signing.
package kms

import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
