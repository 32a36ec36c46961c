package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The plugin links the cloud KMS providers only when built with the kms tag
// (kms.go), as cmd/prebake does: the Packer SDK brings some AWS and Vault
// clients of its own, but the four KMS signers and their SDKs stay out.
func TestKMSOnlyInKMSBuild(t *testing.T) {
	kms := func(tags string) []string {
		args := []string{"list", "-deps"}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		out, err := exec.Command("go", append(args, ".")...).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tags, err)
		}
		var ps []string
		for _, p := range strings.Fields(string(out)) {
			switch p {
			case "github.com/prebake/prebake/signing/kms",
				"github.com/sigstore/sigstore/pkg/signature/kms/aws",
				"github.com/sigstore/sigstore/pkg/signature/kms/azure",
				"github.com/sigstore/sigstore/pkg/signature/kms/gcp",
				"github.com/sigstore/sigstore/pkg/signature/kms/hashivault":
				ps = append(ps, p)
			}
		}
		return ps
	}
	if ps := kms(""); len(ps) > 0 {
		t.Errorf("the default plugin build links the KMS providers: %v", ps)
	}
	if ps := kms("kms"); len(ps) != 5 {
		t.Errorf("the kms plugin build links %v: want signing/kms and the aws, azure, gcp and hashivault providers", ps)
	}
}
