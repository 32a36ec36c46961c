package cli

import (
	"bytes"
	"strings"
	"testing"
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
