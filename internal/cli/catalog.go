package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
)

func newCatalogCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List and show the recipes shipped with prebake",
		Long: `The catalog holds ready-made recipes (kubernetes-node, kubernetes-control-plane)
with a lock of the real upstream sha256 of every download, for every supported
Kubernetes patch release on amd64 and arm64. Build one by name; only the
Kubernetes version needs choosing, the runtime versions that go with it come
from the catalog's version matrix. See docs/catalog.md.`,
		Example: `  prebake catalog list
  prebake catalog show kubernetes-node --kubernetes 1.35.2
  prebake build kubernetes-node --set kubernetes=1.35.2`,
	}
	cmd.AddCommand(newCatalogListCmd(a), newCatalogShowCmd(a))
	return cmd
}

// catalogEntry is one recipe of `prebake catalog list --json`.
type catalogEntry struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Versions are the supported Kubernetes versions, newest first;
	// Ranges the same, one range per minor.
	Versions []string `json:"versions"`
	Ranges   []string `json:"ranges"`
}

func newCatalogListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the catalog recipes and the Kubernetes versions they support",
		Long: `List prints each catalog recipe with its description and the Kubernetes
versions its lock covers, as one range per minor (newest first); --json lists
every version.`,
		Example: `  prebake catalog list
  prebake catalog list --json | jq -r '.[0].versions[]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []catalogEntry
			for _, name := range catalog.List() {
				e, err := catalog.Get(name)
				if err != nil {
					return err
				}
				vs, err := e.SupportedKubernetes()
				if err != nil {
					return err
				}
				list = append(list, catalogEntry{Name: name, Description: e.Recipe.Metadata.Description, Versions: vs, Ranges: pipeline.CompactVersions(vs)})
			}
			return writeRows(a, asJSON, list, "NAME\tKUBERNETES\tDESCRIPTION", func(e catalogEntry) string {
				return e.Name + "\t" + strings.Join(e.Ranges, ", ") + "\t" + e.Description
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: every recipe with every supported version")
	return cmd
}

// catalogShow is what `prebake catalog show --json` prints.
type catalogShow struct {
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Versions    []catalogVersion `json:"versions"`
}

type catalogVersion struct {
	catalog.Versions
	Platforms []catalogPlatform `json:"platforms"`
}

type catalogPlatform struct {
	Platform   string             `json:"platform"`
	Components []catalogComponent `json:"components"`
}

type catalogComponent struct {
	Name    string                   `json:"name"`
	Version string                   `json:"version,omitempty"`
	Sources []recipes.ResolvedSource `json:"sources,omitempty"`
}

func newCatalogShowCmd(a *app) *cobra.Command {
	var (
		asJSON     bool
		kubernetes []string
	)
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Print every component's version, URL and sha256 per Kubernetes version and platform",
		Long: `Show resolves the catalog recipe for each supported Kubernetes version (or
only those given with --kubernetes) and each platform, and prints every
component's version and every download's URL and sha256 from the lock.`,
		Example: `  prebake catalog show kubernetes-node
  prebake catalog show kubernetes-control-plane --kubernetes 1.36.4 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := catalog.Get(args[0])
			if err != nil {
				return err
			}
			rows, err := e.Supported()
			if err != nil {
				return err
			}
			show := catalogShow{Name: e.Name, Description: e.Recipe.Metadata.Description}
			for _, k := range kubernetes {
				if _, err := e.Variables(map[string]string{"kubernetes": k}); err != nil {
					return err
				}
			}
			for _, row := range rows {
				if len(kubernetes) > 0 && !containsString(kubernetes, row.Kubernetes) {
					continue
				}
				res, err := e.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": row.Kubernetes}, Locked: true})
				if err != nil {
					return err
				}
				v := catalogVersion{Versions: row}
				for _, b := range res.Builds {
					p := catalogPlatform{Platform: b.Platform()}
					for _, c := range b.Components {
						p.Components = append(p.Components, catalogComponent{Name: c.Name, Version: c.Version, Sources: c.Sources})
					}
					v.Platforms = append(v.Platforms, p)
				}
				show.Versions = append(show.Versions, v)
			}
			if asJSON {
				return writeJSON(a, show)
			}
			fmt.Fprintf(a.Out, "%s: %s\n", show.Name, show.Description)
			for _, v := range show.Versions {
				fmt.Fprintf(a.Out, "\nKubernetes %s (containerd %s, runc %s, CNI plugins %s, crictl %s, pause %s)\n",
					v.Kubernetes, v.Containerd, v.Runc, v.CNI, v.Crictl, v.Pause)
				for _, p := range v.Platforms {
					fmt.Fprintf(a.Out, "  %s\n", p.Platform)
					for _, c := range p.Components {
						fmt.Fprintf(a.Out, "    %s %s\n", c.Name, c.Version)
						for _, s := range c.Sources {
							fmt.Fprintf(a.Out, "      %s %s %s sha256:%s\n", s.Name, s.Version, s.URL, s.SHA256)
						}
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringSliceVar(&kubernetes, "kubernetes", nil, "only these Kubernetes versions (default: every supported one)")
	return cmd
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
