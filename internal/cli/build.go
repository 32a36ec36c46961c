package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// fetchFlags configure downloading sources.
type fetchFlags struct {
	cacheDir string
	mirrors  []string
	offline  bool
	jobs     int
}

func (f *fetchFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "download and layer cache (default $XDG_CACHE_HOME/prebake)")
	cmd.Flags().StringArrayVar(&f.mirrors, "mirror", nil, "rewrite source URLs starting with FROM to start with TO, FROM=TO (repeatable); without a scheme, FROM and TO are registries: pre-pulled images of registry FROM are pulled from TO (registry.k8s.io=127.0.0.1:5000)")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "use only the cache; fail on anything not in it")
	cmd.Flags().IntVar(&f.jobs, "jobs", 0, "parallel downloads and layer builds (0: the number of CPUs)")
}

func (f *fetchFlags) fetcher(a *app, opts ...fetch.Option) (*fetch.Fetcher, error) {
	var ms []fetch.Mirror
	for _, s := range f.mirrors {
		if isRegistryMirror(s) {
			continue
		}
		m, err := fetch.ParseMirror(s)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	opts = append(opts, fetch.WithMirrors(ms...), fetch.WithOffline(f.offline))
	if f.cacheDir != "" {
		opts = append(opts, fetch.WithCacheDir(f.cacheDir))
	}
	return fetch.New(opts...)
}

// isRegistryMirror tells a registry mirror (registry.k8s.io=127.0.0.1:5000)
// from a URL prefix mirror (https://dl.k8s.io/=file:///srv/mirror/).
func isRegistryMirror(s string) bool {
	from, _, _ := strings.Cut(s, "=")
	return !strings.Contains(from, "://")
}

// registryMirrors are the --mirror flags that name registries.
func (f *fetchFlags) registryMirrors() (map[string]string, error) {
	ms := map[string]string{}
	for _, s := range f.mirrors {
		if !isRegistryMirror(s) {
			continue
		}
		from, to, ok := strings.Cut(s, "=")
		if !ok || from == "" || to == "" || strings.Contains(from, "/") || strings.Contains(to, "://") {
			return nil, fmt.Errorf("--mirror %q: want FROM=TO with URL prefixes (https://dl.k8s.io/=https://mirror/dl.k8s.io/) or registries (registry.k8s.io=mirror.example.com[/prefix])", s)
		}
		ms[from] = to
	}
	return ms, nil
}

// buildOutput is what `prebake build --json` prints.
type buildOutput struct {
	Digest       string                   `json:"digest"`
	Reference    string                   `json:"reference"`
	Pushed       string                   `json:"pushed,omitempty"`
	Name         string                   `json:"name"`
	Version      string                   `json:"version"`
	RecipeDigest string                   `json:"recipeDigest"`
	SBOM         string                   `json:"sbom"`
	Signatures   int                      `json:"signatures,omitempty"`
	Attestations int                      `json:"attestations,omitempty"`
	Platforms    []builder.PlatformResult `json:"platforms"`
}

func newBuildCmd(a *app) *cobra.Command {
	var (
		rf          recipeFlags
		ff          fetchFlags
		output      string
		push        string
		compression string
		revision    string
		asJSON      bool
		insecure    bool
		signKey     string
	)
	cmd := &cobra.Command{
		Use:   "build RECIPE",
		Short: "Build a node image from a recipe",
		Long: `Build fetches every source of the recipe (verifying its sha256 before use),
lays each component out as one deterministic layer, and writes an OCI image
index with one image per platform plus an SPDX SBOM attached to it.

The same recipe, variables, lock file and SOURCE_DATE_EPOCH give the same
digest on any machine; unchanged components are taken from the layer cache and
never recompressed.

Output goes to the local store (an OCI layout under $XDG_DATA_HOME/prebake/store)
tagged NAME:VERSION, or to -o oci:DIR[:TAG]; --push also copies the result to a
registry.`,
		Example: `  # build the quickstart recipe into the local store
  prebake build examples/quickstart/recipe.yaml --mirror https://dl.k8s.io/=file://$PWD/testdata/mirror/dl.k8s.io/ ...

  # a new Kubernetes patch release, arm64 only, into a layout directory
  prebake build recipe.yaml --set kubernetes=1.36.5 --platform linux/arm64 -o oci:out:1.36.5

  # CI: machine-readable result, pushed to a registry, signed and attested
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) COSIGN_PASSWORD=… \
    prebake build recipe.yaml --push registry.example.com/nodes --sign-key cosign.key --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, res, err := rf.load(args[0])
			if err != nil {
				return err
			}
			prog, done := a.newProgress()
			defer done()
			fetcher, err := ff.fetcher(a, fetch.WithProgress(prog))
			if err != nil {
				return err
			}
			regMirrors, err := ff.registryMirrors()
			if err != nil {
				return err
			}
			result, err := builder.Build(ctx, res, builder.Options{
				RegistryMirrors: regMirrors,
				Fetcher:         fetcher,
				Compression:     builder.Compression(compression),
				Jobs:            ff.jobs,
				Revision:        revision,
				Progress:        prog,
			})
			if err != nil {
				return err
			}
			dst, err := outputRef(output, res.Name, res.Version)
			if err != nil {
				return err
			}
			ropts := registry.Options{Insecure: insecure, Jobs: ff.jobs, Progress: prog}
			desc, err := registry.Write(ctx, dst, result.Index, []registry.Artifact{result.SBOM}, ropts)
			if err != nil {
				return fmt.Errorf("writing %s: %w", dst, err)
			}
			out := buildOutput{
				Digest: desc.Digest.String(), Reference: dst.String(), Name: res.Name, Version: res.Version,
				RecipeDigest: res.Digest, Platforms: result.Platforms,
			}
			if d, err := result.SBOM.Digest(); err == nil {
				out.SBOM = d.String()
			}
			if signKey != "" && push == "" {
				return fmt.Errorf("--sign-key signs the pushed image: give --push REF too (or run prebake sign on the output)")
			}
			if push != "" {
				pdst, err := registry.ParseReference(push)
				if err != nil {
					return err
				}
				if pdst.Digest != "" {
					return fmt.Errorf("--push %s: name a repository (optionally :TAG); the digest is the build's", push)
				}
				if !hasTag(push) {
					pdst.Tag = res.Version
				}
				if _, err := registry.Write(ctx, pdst, result.Index, []registry.Artifact{result.SBOM}, ropts); err != nil {
					return fmt.Errorf("pushing %s: %w", pdst, err)
				}
				out.Pushed = pdst.WithDigest(out.Digest).String()
				if signKey != "" {
					sr, err := signing.SignAndAttest(ctx, pdst.WithDigest(out.Digest), signing.SignAndAttestOptions{
						KeyOptions: signing.KeyOptions{Key: signKey, Password: a.keyPassword()},
						Registry:   ropts,
					})
					if err != nil {
						return fmt.Errorf("signing %s: %w", out.Pushed, err)
					}
					out.Signatures = len(sr.Signed)
					out.Attestations = len(sr.Attested)
				}
			}
			done()
			if asJSON {
				return writeJSON(a, out)
			}
			fmt.Fprintf(a.Out, "built %s:%s %s\n", res.Name, res.Version, out.Digest)
			for _, p := range result.Platforms {
				cached := 0
				for _, l := range p.Layers {
					if l.Cached {
						cached++
					}
				}
				fmt.Fprintf(a.Out, "  %-12s %s (%d layers, %d from cache)\n", p.Platform, p.Digest, len(p.Layers), cached)
			}
			fmt.Fprintf(a.Out, "  sbom         %s\n", out.SBOM)
			fmt.Fprintf(a.Out, "written to %s\n", out.Reference)
			if out.Pushed != "" {
				fmt.Fprintf(a.Out, "pushed to %s\n", out.Pushed)
			}
			if out.Signatures > 0 {
				fmt.Fprintf(a.Out, "signed %d manifests, %d attestations (SBOM, provenance)\n", out.Signatures, out.Attestations)
			}
			return nil
		},
	}
	rf.register(cmd)
	ff.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write: oci:DIR[:TAG] or store:NAME[:TAG] (default: the local store, NAME:VERSION)")
	cmd.Flags().StringVar(&push, "push", "", "also push the image and its SBOM to this registry repository (tag defaults to the version)")
	cmd.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip or zstd")
	cmd.Flags().StringVar(&revision, "revision", "", "source revision to record in org.opencontainers.image.revision")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry (loopback test registries)")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "after --push, sign the image and attest its SBOM and provenance with this key (file, env://VAR or KMS URI; password from COSIGN_PASSWORD)")
	return cmd
}

// outputRef turns -o into a reference, defaulting to the store and the tag to
// the version.
func outputRef(output, name, version string) (registry.Reference, error) {
	if output == "" {
		return registry.ParseReference("store:" + name + ":" + version)
	}
	ref, err := registry.ParseReference(output)
	if err != nil {
		return ref, err
	}
	if ref.Digest != "" {
		return ref, fmt.Errorf("-o %s: an output is named by a tag, not a digest", output)
	}
	if ref.Tag == "" || (ref.Transport == registry.TransportStore && ref.Tag == "latest" && !hasExplicitTag(output)) {
		ref.Tag = version
	}
	return ref, nil
}

func hasExplicitTag(s string) bool {
	r, err := registry.ParseReference(s)
	if err != nil {
		return false
	}
	return r.String() == s || r.String() == "store:"+s
}

// hasTag reports whether a registry reference names a tag explicitly (the
// parser defaults a missing one to "latest").
func hasTag(s string) bool {
	last := s[strings.LastIndex(s, "/")+1:]
	return strings.Contains(last, ":")
}
