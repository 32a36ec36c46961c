package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/pipeline"
)

// fetchFlags configure downloading sources.
type fetchFlags struct {
	cacheDir         string
	mirrors          []string
	offline          bool
	jobs             int
	allowFileSources bool
	stallTimeout     time.Duration
	fetchTimeout     time.Duration
}

func (f *fetchFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "download and layer cache (default $XDG_CACHE_HOME/prebake)")
	cmd.Flags().StringArrayVar(&f.mirrors, "mirror", nil, "rewrite source URLs starting with FROM to start with TO, FROM=TO (repeatable); without a scheme, FROM and TO are registries: pre-pulled images of registry FROM are pulled from TO (registry.k8s.io=127.0.0.1:5000)")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "use only the cache; fail on anything not in it (pre-pulled images: only from a registry --mirror)")
	cmd.Flags().IntVar(&f.jobs, "jobs", 0, "parallel downloads and layer builds (0: the number of CPUs)")
	cmd.Flags().BoolVar(&f.allowFileSources, "allow-file-sources", false, "let file:// source URLs that no --mirror rewrites read local files")
	cmd.Flags().DurationVar(&f.stallTimeout, "stall-timeout", fetch.DefaultStallTimeout, "retry a download that receives no byte for this long")
	cmd.Flags().DurationVar(&f.fetchTimeout, "download-timeout", fetch.DefaultTimeout, "give up on one download (every retry included) after this long")
}

func (f *fetchFlags) fetch() pipeline.Fetch {
	return pipeline.Fetch{CacheDir: f.cacheDir, Mirrors: f.mirrors, Offline: f.offline,
		AllowFileSources: f.allowFileSources, StallTimeout: f.stallTimeout, Timeout: f.fetchTimeout}
}

func (f *fetchFlags) fetcher(a *app, opts ...fetch.Option) (*fetch.Fetcher, error) {
	return f.fetch().Fetcher(opts...)
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
		mf          matrixFlags
	)
	cmd := &cobra.Command{
		Use:   "build RECIPE|NAME",
		Short: "Build a node image from a recipe",
		Long: `Build fetches every source of the recipe (verifying its sha256 before use),
lays each component out as one deterministic layer, and writes an OCI image
index with one image per platform plus an SPDX SBOM attached to it.

The same recipe, variables, lock file and SOURCE_DATE_EPOCH give the same
digest on any machine; unchanged components are taken from the layer cache and
never recompressed.

Output goes to the local store (an OCI layout under $XDG_DATA_HOME/prebake/store)
tagged NAME:VERSION, or to -o oci:DIR[:TAG]; --push also copies the result to a
registry.

--matrix builds one image per Kubernetes version in one run: every version a
catalog recipe supports (or --versions RANGE, --latest N per minor), or the
rows of --matrix-file; each image has every platform. Layers the images share
(kernel, runtime, join) are built once, at most --parallel images at once, and
each image is tagged its version. --shard I/N builds one deterministic part of
the matrix (contiguous, newest first), so N CI jobs build each image once;
--cache REGISTRY/REPO shares layers between them.`,
		Example: `  # build the quickstart recipe into the local store
  prebake build examples/quickstart/recipe.yaml --mirror https://dl.k8s.io/=file://$PWD/testdata/mirror/dl.k8s.io/ ...

  # a new Kubernetes patch release, arm64 only, into a layout directory
  prebake build recipe.yaml --set kubernetes=1.36.5 --platform linux/arm64 -o oci:out:1.36.5

  # CI: machine-readable result, pushed to a registry, signed and attested
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) COSIGN_PASSWORD=… \
    prebake build recipe.yaml --push registry.example.com/nodes --sign-key cosign.key --json

  # nightly: the 3 newest patch releases of every supported minor, shard 2 of 4
  prebake build kubernetes-node --matrix --latest 3 --shard 2/4 \
    --push registry.example.com/nodes --cache registry.example.com/prebake-cache --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mf.enabled(cmd) {
				return mf.run(cmd, a, &rf, &ff, args[0], func(prog progress.Func) (pipeline.Options, error) {
					return buildOptions(a, &ff, prog, compression, revision, output, push, insecure, signKey)
				}, asJSON)
			}
			res, err := rf.load(args[0])
			if err != nil {
				return err
			}
			prog, done := a.newProgress()
			defer done()
			o, err := buildOptions(a, &ff, prog, compression, revision, output, push, insecure, signKey)
			if err != nil {
				return err
			}
			if o.LayerCache, err = mf.layerCache(o); err != nil {
				return err
			}
			if _, err := pipeline.Check(res, o); err != nil {
				return buildFlagError(err)
			}
			out, err := pipeline.Run(cmd.Context(), res, o)
			if err != nil {
				return buildFlagError(err)
			}
			done()
			var pushed []string
			if out.Pushed != "" {
				pushed = []string{out.Pushed}
			}
			if err := mf.save(out, pushed); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, out)
			}
			fmt.Fprintf(a.Out, "built %s:%s %s\n", res.Name, res.Version, out.Digest)
			for _, p := range out.Platforms {
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
	mf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write: oci:DIR[:TAG] or store:NAME[:TAG] (default: the local store, NAME:VERSION)")
	cmd.Flags().StringVar(&push, "push", "", "also push the image and its SBOM to this registry repository (tag defaults to the version)")
	cmd.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip or zstd")
	cmd.Flags().StringVar(&revision, "revision", "", "source revision to record in org.opencontainers.image.revision")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry (loopback test registries)")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "after --push, sign the image and attest its SBOM and provenance with this key (file, env://VAR or KMS URI; password from COSIGN_PASSWORD)")
	return cmd
}

// buildOptions are the pipeline options the flags of build give.
func buildOptions(a *app, ff *fetchFlags, prog progress.Func, compression, revision, output, push string, insecure bool, signKey string) (pipeline.Options, error) {
	o := pipeline.Options{
		Compression: builder.Compression(compression), Jobs: ff.jobs, Revision: revision,
		Output: output, Push: push, Insecure: insecure, SignKey: signKey, Password: a.keyPassword(), Progress: prog,
	}
	err := ff.fetch().Configure(&o, fetch.WithProgress(prog))
	return o, err
}

// buildFlagError names the flag a pipeline error is about.
func buildFlagError(err error) error {
	var de *pipeline.DestinationError
	switch {
	case errors.As(err, &de) && de.Push:
		return fmt.Errorf("--push %w", err)
	case errors.As(err, &de):
		return fmt.Errorf("-o %w", err)
	case errors.Is(err, pipeline.ErrShard):
		return fmt.Errorf("--shard: %w", err)
	case errors.Is(err, pipeline.ErrVersionRange):
		return fmt.Errorf("--versions: %w", err)
	case errors.Is(err, pipeline.ErrNoMatrix):
		return fmt.Errorf("--matrix: %w: give --matrix-file FILE", err)
	case errors.Is(err, pipeline.ErrMatrixSet):
		return fmt.Errorf("--set: %w", err)
	case errors.Is(err, pipeline.ErrSignWithoutPush):
		return fmt.Errorf("--sign-key: %w: give --push REF too (or run prebake sign on the output)", err)
	}
	return err
}
