package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
)

// Start-up budget (issue 18): every command but serve links and initialises
// only what it uses. Counts and sizes are asserted; the package
// initialisation time is only logged (make bench compares it with crane).
const (
	maxPackages = 600      // go list -deps, standard library included (crane: ~270)
	maxBinary   = 40 << 20 // stripped, as make build
)

// Dependencies only other programs may link: the registry server (olareg
// hashes a bcrypt password in its initializer; prebake-serve has it), cosign's
// packages (its tlog, Fulcio, TUF and Kubernetes clients), and the cloud KMS
// SDKs (the kms build).
var forbidden = []string{
	"github.com/olareg/olareg",
	"github.com/prebake/prebake/registry/server",
	"github.com/sigstore/cosign",
	"k8s.io/client-go",
	"github.com/aws/aws-sdk-go-v2",
	"cloud.google.com/go",
	"github.com/Azure/",
	"github.com/hashicorp/vault",
}

func deps(t *testing.T, tags ...string) []string {
	t.Helper()
	args := []string{"list", "-deps"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := exec.Command("go", append(args, ".")...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	return strings.Fields(string(out))
}

func TestPackagesLinked(t *testing.T) {
	ps := deps(t)
	if len(ps) > maxPackages {
		t.Errorf("prebake links %d packages, over %d", len(ps), maxPackages)
	}
	for _, p := range ps {
		for _, f := range forbidden {
			if (p == f || strings.HasPrefix(p, f+"/") || strings.HasSuffix(f, "/") && strings.HasPrefix(p, f)) && p != "github.com/prebake/prebake/registry/server/bootstrap" {
				t.Errorf("prebake links %s", p)
			}
		}
	}
	t.Logf("prebake links %d packages (the kms build %d)", len(ps), len(deps(t, "kms")))
}

func TestBinarySizeAndInit(t *testing.T) {
	testenv.Short(t, "builds prebake")
	bin := filepath.Join(t.TempDir(), "prebake")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-buildid= -s -w", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxBinary {
		t.Errorf("prebake is %d bytes, over %d", fi.Size(), maxBinary)
	}
	v := exec.Command(bin, "version")
	v.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := v.CombinedOutput()
	if err != nil {
		t.Fatalf("prebake version: %v\n%s", err, out)
	}
	n := strings.Count(string(out), "\ninit ")
	t.Logf("prebake: %d bytes, %d package initialisers ran (GODEBUG=inittrace=1 for their times)", fi.Size(), n)
}
