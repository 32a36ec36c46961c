package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// GenerateDocs renders one Markdown page per command (the reference that
// docs/cli/ holds), keyed by file name. The pages are generated from the same
// command tree `prebake --help` prints, so they never drift from it.
func GenerateDocs() map[string][]byte {
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	root.InitDefaultHelpCmd()
	out := map[string][]byte{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		out[docName(c)] = commandDoc(c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

func docName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}

func commandDoc(c *cobra.Command) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Runnable() {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", c.UseLine())
	}
	if c.Long != "" {
		fmt.Fprintf(&b, "%s\n\n", c.Long)
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "## Examples\n\n```\n%s\n```\n\n", c.Example)
	}
	if f := c.NonInheritedFlags().FlagUsages(); f != "" {
		fmt.Fprintf(&b, "## Flags\n\n```\n%s```\n\n", f)
	}
	if f := c.InheritedFlags().FlagUsages(); f != "" {
		fmt.Fprintf(&b, "## Global flags\n\n```\n%s```\n\n", f)
	}
	var subs []string
	for _, s := range c.Commands() {
		if !s.Hidden && s.Name() != "help" && s.Name() != "completion" {
			subs = append(subs, fmt.Sprintf("- [%s](%s) — %s", s.CommandPath(), docName(s), s.Short))
		}
	}
	sort.Strings(subs)
	if len(subs) > 0 {
		fmt.Fprintf(&b, "## Commands\n\n%s\n\n", strings.Join(subs, "\n"))
	}
	if c.HasParent() {
		fmt.Fprintf(&b, "See also: [%s](%s)\n", c.Parent().CommandPath(), docName(c.Parent()))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// WriteDocs writes the generated pages into dir, or with check only compares
// and returns an error naming every page that is missing or stale.
func WriteDocs(dir string, check bool) error {
	docs := GenerateDocs()
	var stale []string
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want := append(docs[n], '\n')
		p := filepath.Join(dir, n)
		if check {
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				stale = append(stale, p)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, want, 0o644); err != nil {
			return err
		}
	}
	if check {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, ok := docs[e.Name()]; !ok && strings.HasSuffix(e.Name(), ".md") {
				stale = append(stale, filepath.Join(dir, e.Name())+" (no such command)")
			}
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("CLI reference out of date (run make docs):\n  %s", strings.Join(stale, "\n  "))
	}
	return nil
}
