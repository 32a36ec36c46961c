// Command gendocs writes the CLI reference under docs/cli from prebake's
// command tree (`make docs`), or checks it is current (`-check`, `make verify`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/prebake/prebake/internal/cli"
)

func main() {
	check := flag.Bool("check", false, "only check that the pages are current")
	flag.Parse()
	dir := "docs/cli"
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	if err := cli.WriteDocs(dir, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
