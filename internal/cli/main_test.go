package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/internal/lazyre"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// runPrebake runs the real root command in-process with args and returns
// what it wrote to stdout and stderr: the one way the CLI tests run prebake
// (testenv.Prebake for a separate process).
func runPrebake(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// Libraries return typed errors; the CLI alone adds the flag that changes
// the outcome.
func TestFlagHint(t *testing.T) {
	revoked := fmt.Errorf("pulling: %w", &registry.RevokedError{Ref: "r@sha256:x", Revocations: []registry.Revocation{{Reason: "CVE"}}})
	if strings.Contains(revoked.Error(), "--allow-revoked") {
		t.Errorf("the library error names a CLI flag: %v", revoked)
	}
	if h := flagHint(revoked); !strings.Contains(h, "--allow-revoked") {
		t.Errorf("flagHint(revoked) = %q", h)
	}
	if h := flagHint(fmt.Errorf("x: %w", signing.ErrKeyExists)); !strings.Contains(h, "--force") {
		t.Errorf("flagHint(key exists) = %q", h)
	}
	if h := flagHint(fmt.Errorf("x: %w", disk.ErrTooSmall)); !strings.Contains(h, "--size") {
		t.Errorf("flagHint(too small) = %q", h)
	}
	if h := flagHint(errors.New("other")); h != "" {
		t.Errorf("flagHint(other) = %q", h)
	}
}

// Every pattern the libraries declare with lazyre (compiled on first use,
// not at start-up) compiles: this test binary links them all.
func TestLazyPatternsCompile(t *testing.T) {
	if err := lazyre.Check(); err != nil {
		t.Fatal(err)
	}
}
