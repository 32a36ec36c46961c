package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/lock"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/recipes"
)

func newLockCmd(a *app) *cobra.Command {
	var (
		ff       fetchFlags
		updates  []string
		lockFile string
		verify   bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "lock RECIPE",
		Short: "Add the checksums of a recipe's downloads to its lock file",
		Long: `Lock resolves every source URL of the recipe, on every platform it builds, for
the variable values given with --update (the others keep the recipe's
defaults), and adds each URL the lock file does not have yet with the sha256
upstream publishes next to it: URL.sha256 (dl.k8s.io: the bare hex) or, when
that is not found, URL.sha256sum (GitHub releases: "HEX  NAME"), and failing
both, the file's line in its release directory's STEM.sha256sum (runc),
SHA256SUMS, sha256sums.txt or checksums.txt. Each image
of an images component without a digest is locked to the digest its tag
points to now (the index, for a multi-platform image).

With --verify-downloads (the default) each new download is fetched too, into
the cache a build uses, and its sha256 must equal the checksum file's; a
mismatch is an error naming the URL, the checksum file, the expected and the
actual digest. Every problem is reported together and the lock file
(RECIPE.lock.yaml, or --lock) is written only when there is none, atomically.
Entries already in the lock are kept as they are.

Afterwards ` + "`prebake build RECIPE --set VAR=VERSION --locked`" + ` builds the new version,
and refuses any URL still missing from the lock.

The catalog recipes are embedded in prebake and locked from Kubespray's data
by hack/genlock; to lock other versions of one, copy its directory
(recipes/catalog/NAME in the source tree) and lock the copy.`,
		Example: `  # pick up a new Kubernetes patch release
  prebake lock recipe.yaml --update kubernetes=1.36.5
  prebake build recipe.yaml --set kubernetes=1.36.5 --locked

  # through a mirror of dl.k8s.io and GitHub releases (the lock keeps the upstream URLs)
  prebake lock recipe.yaml --update kubernetes=1.36.5 --update crictl=1.36.1 \
    --mirror https://dl.k8s.io/=https://mirror.example.com/k8s/ \
    --mirror https://github.com/=https://mirror.example.com/github/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pipeline.IsCatalogName(args[0]) {
				return fmt.Errorf("%s: %w; copy recipes/catalog/%s from the source tree and lock the copy", args[0], lock.ErrCatalogRecipe, args[0])
			}
			set, err := parseKeyValues("--update", "NAME=VERSION", updates, true)
			if err != nil {
				return err
			}
			r, err := recipes.Load(args[0])
			if err != nil {
				return err
			}
			prog, done := a.newProgress()
			defer done()
			fetcher, err := ff.fetcher(a, fetch.WithProgress(prog))
			if err != nil {
				return err
			}
			regMirrors, err := ff.fetch().RegistryMirrors()
			if err != nil {
				return err
			}
			res, err := lock.Update(cmd.Context(), r, lock.Options{
				Set: set, LockPath: lockFile, Fetcher: fetcher, Verify: verify, Jobs: ff.jobs, Progress: prog, RegistryMirrors: regMirrors,
			})
			if err != nil {
				return err
			}
			done()
			if asJSON {
				if res.Added == nil {
					res.Added = []lock.Entry{}
				}
				return writeJSON(a, res)
			}
			if len(res.Added) == 0 && len(res.AddedImages) == 0 {
				fmt.Fprintf(a.Out, "%s: nothing to add (%d URLs, %d images already locked)\n", res.LockPath, res.Known, res.KnownImages)
				return nil
			}
			how := "checksum files only"
			if verify {
				how = "downloads verified"
			}
			if len(res.Added) > 0 {
				fmt.Fprintf(a.Out, "%s: added %d URLs (%s), %d already locked\n", res.LockPath, len(res.Added), how, res.Known)
			}
			for _, e := range res.Added {
				fmt.Fprintf(a.Out, "  %s  %s\n", e.SHA256, e.URL)
			}
			if len(res.AddedImages) > 0 {
				fmt.Fprintf(a.Out, "%s: added %d images, %d already locked\n", res.LockPath, len(res.AddedImages), res.KnownImages)
				for _, e := range res.AddedImages {
					fmt.Fprintf(a.Out, "  %s@%s\n", e.Ref, e.Digest)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&updates, "update", nil, "lock the recipe with this variable value, NAME=VERSION (repeatable)")
	cmd.Flags().StringVar(&lockFile, "lock", "", "lock file to update (default: RECIPE.lock.yaml next to the recipe; created if missing)")
	cmd.Flags().BoolVar(&verify, "verify-downloads", true, "also download each new source and check it against its checksum file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	cmd.Flags().StringVar(&ff.cacheDir, "cache-dir", "", "download cache, shared with build (default $XDG_CACHE_HOME/prebake)")
	cmd.Flags().StringArrayVar(&ff.mirrors, "mirror", nil, "rewrite source and checksum file URLs starting with FROM to start with TO, FROM=TO (repeatable); without a scheme, FROM and TO are registries: image tags of registry FROM are resolved at TO (registry.k8s.io=127.0.0.1:5000)")
	cmd.Flags().IntVar(&ff.jobs, "jobs", 0, "parallel lookups and downloads (0: 4)")
	cmd.Flags().BoolVar(&ff.allowFileSources, "allow-file-sources", false, "let file:// source URLs that no --mirror rewrites read local files")
	return cmd
}
