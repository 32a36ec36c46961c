package signing

// The KMS providers cosign registers in its own main, so that key
// references awskms://, gcpkms://, azurekms:// and hashivault:// work with
// LoadSigner and LoadVerifier exactly as with `cosign sign --key`.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
