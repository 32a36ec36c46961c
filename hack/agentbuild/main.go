// Command agentbuild (make agent) builds the prebake-agent release binaries
// reproducibly into DIR/agent-vVERSION/prebake-agent-linux-ARCH, laid out
// like the release URL, so `prebake build --mirror
// https://github.com/prebake/prebake/releases/download/=file://DIR/` takes
// them offline. It checks them against the catalog locks, or with -lock
// rewrites the locks' agent entries (after a change to the agent).
//
// Usage: go run ./hack/agentbuild [-o _out/agent] [-arch amd64] [-lock]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prebake/prebake/internal/agentbuild"
)

var locks = []string{
	"recipes/catalog/kubernetes-node/recipe.lock.yaml",
	"recipes/catalog/kubernetes-control-plane/recipe.lock.yaml",
}

func main() {
	out := flag.String("o", "_out/agent", "output directory")
	update := flag.Bool("lock", false, "rewrite the catalog locks' prebake-agent entries")
	arch := flag.String("arch", "", "build (and check) only this architecture (amd64 or arm64; default: both)")
	flag.Parse()
	if *arch != "" {
		if *update {
			fmt.Fprintln(os.Stderr, "agentbuild: -lock needs every architecture")
			os.Exit(2)
		}
		agentbuild.Arches = []string{*arch}
	}
	if err := run(*out, *update); err != nil {
		fmt.Fprintln(os.Stderr, "agentbuild:", err)
		os.Exit(1)
	}
}

func run(out string, update bool) error {
	ctx := context.Background()
	v, err := agentbuild.Version(".")
	if err != nil {
		return err
	}
	sums := map[string]string{}
	for _, arch := range agentbuild.Arches {
		p := agentbuild.AssetPath(v, arch)
		sum, err := agentbuild.Build(ctx, ".", arch, filepath.Join(out, p))
		if err != nil {
			return err
		}
		sums[agentbuild.ReleaseURL+p] = sum
		fmt.Printf("%s  %s\n", sum, filepath.Join(out, p))
	}
	bad := 0
	for _, l := range locks {
		b, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		if update {
			nb := agentbuild.SetEntries(b, sums)
			if !bytes.Equal(nb, b) {
				if err := os.WriteFile(l, nb, 0o644); err != nil {
					return err
				}
				fmt.Printf("updated %s\n", l)
			}
			continue
		}
		have := agentbuild.Entries(b)
		for u, s := range sums {
			if have[u] != s {
				fmt.Fprintf(os.Stderr, "%s: %s: lock sha256 %q, this build %s\n", l, u, have[u], s)
				bad++
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d lock entries differ from this build: run `go run ./hack/agentbuild -lock` (make agent-lock) after changing the agent", bad)
	}
	return nil
}
