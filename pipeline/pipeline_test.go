package pipeline

import (
	"errors"
	"testing"

	"github.com/prebake/prebake/recipes"
)

// The one set of destination rules both the CLI and the Packer builder use.
func TestParseDestinations(t *testing.T) {
	t.Setenv("PREBAKE_STORE", t.TempDir())
	res := &recipes.Resolved{Name: "node", Version: "1.36.4"}
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		output, push      string
		wantOut, wantPush string
		err               error
	}{
		{"", "", "store:node:1.36.4", "", nil},
		{"store:other", "", "store:other:1.36.4", "", nil},
		{"other", "", "store:other:1.36.4", "", nil},
		{"store:other:latest", "", "store:other:latest", "", nil},
		{"oci:/tmp/out", "", "oci:/tmp/out:1.36.4", "", nil},
		{"oci:/tmp/out:x", "reg.example.com/nodes", "oci:/tmp/out:x", "reg.example.com/nodes:1.36.4", nil},
		{"", "reg.example.com/nodes:latest", "store:node:1.36.4", "reg.example.com/nodes:latest", nil},
		{"oci:/tmp/out@" + d, "", "", "", ErrOutputDigest},
		{"reg.example.com/nodes", "", "", "", ErrOutputRemote},
		{"", "reg.example.com/nodes@" + d, "", "", ErrOutputDigest},
		{"", "oci:/tmp/out", "", "", ErrPushLocal},
	} {
		got, err := ParseDestinations(res, tc.output, tc.push)
		if tc.err != nil {
			var de *DestinationError
			if !errors.Is(err, tc.err) || !errors.As(err, &de) || de.Push != (tc.push != "") {
				t.Errorf("%q %q: err = %v, want %v", tc.output, tc.push, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tc.output, tc.push, err)
			continue
		}
		if got.Output.String() != tc.wantOut {
			t.Errorf("%q: output %s, want %s", tc.output, got.Output, tc.wantOut)
		}
		if p := got.Push; (p == nil) != (tc.wantPush == "") || p != nil && p.String() != tc.wantPush {
			t.Errorf("%q: push %v, want %q", tc.push, p, tc.wantPush)
		}
	}
	if _, err := Check(res, Options{SignKey: "cosign.key"}); !errors.Is(err, ErrSignWithoutPush) {
		t.Errorf("sign without push: err = %v", err)
	}
}
