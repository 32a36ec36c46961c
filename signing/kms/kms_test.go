package kms_test

import (
	"testing"

	"github.com/sigstore/sigstore/pkg/signature/kms"

	_ "github.com/prebake/prebake/signing/kms"
)

// TestKMSProvidersRegistered: the KMS schemes cosign accepts resolve to
// their providers in prebake too, once this package is imported (a key reference with such a scheme reaches
// the provider instead of being read as a file name).
func TestKMSProvidersRegistered(t *testing.T) {
	have := map[string]bool{}
	for _, p := range kms.SupportedProviders() {
		have[p] = true
	}
	for _, scheme := range []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"} {
		if !have[scheme] {
			t.Errorf("no KMS provider for %s (have %v)", scheme, kms.SupportedProviders())
		}
	}
}
