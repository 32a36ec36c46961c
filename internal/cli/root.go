// Package cli is prebake's command line: one file per verb, each mapping flags
// to options and calling one library function. It is the only package that
// imports cobra; it holds no logic a library user would need. It is over 2.5k
// lines because of its help text: about 25 verbs, each with a long
// description and examples (docs/cli is generated from them).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// Streams are the IO streams a command reads and writes.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// app is the state shared by all commands of one invocation.
type app struct {
	Streams
	quiet bool
}

// Main runs prebake with args and returns the process exit code.
func Main(ctx context.Context, args []string, s Streams) int {
	root := NewRootCommand(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(s.Err, "prebake: %v%s\n", err, flagHint(err))
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// NewRootCommand returns the prebake command tree writing to s.
func NewRootCommand(s Streams) *cobra.Command {
	a := &app{Streams: s}
	root := &cobra.Command{
		Use:   "prebake",
		Short: "Build, publish, sign and boot Kubernetes node images",
		Long: `prebake builds Kubernetes node images ahead of time.

A recipe describes the static part of a node - kernel settings, container
runtime, CNI plugins and the Kubernetes binaries - and prebake turns it into a
reproducible, multi-platform OCI image with one layer per component. The image
is pushed and signed like any container image and pulled by digest; at boot only
a thin cloud-init document with the per-node join data is left.

Typical flow:
  prebake recipe validate recipe.yaml
  prebake build recipe.yaml --set kubernetes=1.36.4 -o oci:out:node
  prebake inspect oci:out:node`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "print only results and errors (no progress)")
	root.AddCommand(
		newVersionCmd(a),
		newRecipeCmd(a), newCatalogCmd(a),
		newBuildCmd(a), newLockCmd(a),
		newInspectCmd(a),
		newDiffCmd(a),
		newServeCmd(a), newGCCmd(a),
		newPushCmd(a), newCopyCmd(a), newPullCmd(a), newLsCmd(a), newPromoteCmd(a), newRevokeCmd(a), newChannelCmd(a),
		newRenderCmd(a),
		newExportCmd(a), newApplyCmd(a), newStatusCmd(a),
		newKeygenCmd(a), newSignCmd(a), newVerifyCmd(a), newAttestCmd(a),
	)
	return root
}

// flagHint is what to add to a library error to tell the user which flag
// changes the outcome; libraries return typed errors and never name flags.
func flagHint(err error) string {
	var re *registry.RevokedError
	switch {
	case errors.As(err, &re):
		return "; pass --allow-revoked to use it anyway"
	case errors.Is(err, signing.ErrKeyExists):
		return "; pass --force to replace it"
	case errors.Is(err, disk.ErrTooSmall):
		return "; raise --size"
	}
	return ""
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeJSON prints v to the command's output as indented JSON (--json).
func writeJSON(a *app, v any) error {
	enc := json.NewEncoder(a.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeRows prints a listing: with --json the rows as a JSON array (empty,
// never null), else a table under header (tab-separated column names) with
// the line line gives each row.
func writeRows[T any](a *app, asJSON bool, rows []T, header string, line func(T) string) error {
	if asJSON {
		if rows == nil {
			rows = []T{}
		}
		return writeJSON(a, rows)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}

// orDash is s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseKeyValues turns the KEY=VALUE arguments of a repeatable flag (--set,
// --update, -a) into a map, nil when there are none: the one parser of such
// flags. want is the form the error shows; nonEmpty refuses an empty value.
func parseKeyValues(flag, want string, kvs []string, nonEmpty bool) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || nonEmpty && v == "" {
			return nil, fmt.Errorf("%s %q: want %s", flag, kv, want)
		}
		m[k] = v
	}
	return m, nil
}
