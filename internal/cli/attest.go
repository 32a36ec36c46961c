package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func newAttestCmd(a *app) *cobra.Command {
	var (
		rf       registryFlags
		key      string
		sbomFile string
		noSBOM   bool
		noProv   bool
		prov     signing.Provenance
		identity string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "attest REF@DIGEST --key KEY",
		Short: "Attach signed SBOM and provenance attestations to an image",
		Long: `Attest signs in-toto statements about the image at REF@DIGEST and stores
them as cosign does (DSSE envelopes under the tag sha256-<hex>.att):

  - the SBOM: the SPDX JSON document the build attached to the image (the
    referrer with artifact type application/spdx+json), or --sbom FILE;
    predicate type https://spdx.dev/Document ("cosign verify-attestation
    --type spdxjson" accepts it);
  - the provenance: a SLSA v1 statement naming the recipe and its digest, the
    lock digest, the prebake version and the source revision; predicate type
    https://slsa.dev/provenance/v1. Empty fields are taken from the image's
    annotations (dev.prebake.recipe, dev.prebake.recipe.digest,
    org.opencontainers.image.source and .revision).

"prebake verify --attestations" requires both. Attesting again with the same
key replaces this key's earlier attestation of the same type (an identical
one is kept as is). KEY is as for "prebake sign"; like sign, attest needs a
digest and talks to nothing but the image's registry.`,
		Example: `  prebake attest 127.0.0.1:5000/nodes/k8s@sha256:… --key cosign.key --insecure
  prebake attest oci:out@sha256:… --key cosign.key --sbom sbom.spdx.json --source-revision $(git rev-parse HEAD)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			o := signing.AttestOptions{
				KeyOptions:     signing.KeyOptions{Key: key, Password: a.keyPassword()},
				SkipSBOM:       noSBOM,
				SkipProvenance: noProv,
				Provenance:     prov,
				Identity:       identity,
				Registry:       rf.options(),
			}
			if sbomFile != "" {
				if o.SBOM, err = os.ReadFile(sbomFile); err != nil {
					return fmt.Errorf("reading SBOM: %w", err)
				}
			}
			res, err := signing.Attest(cmd.Context(), ref, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, res)
			}
			for _, r := range res {
				verb := "attested"
				if r.Existed {
					verb = "already attested"
				}
				fmt.Fprintf(a.Out, "%s %s %s -> %s\n", verb, r.Digest, r.PredicateType, r.Attestations)
			}
			return nil
		},
	}
	rf.register(cmd, false)
	cmd.Flags().StringVar(&key, "key", "", "private key: cosign key file, env://VAR or KMS URI (required)")
	cmd.Flags().StringVar(&sbomFile, "sbom", "", "SPDX JSON file to attest (default: the image's SBOM referrer)")
	cmd.Flags().BoolVar(&noSBOM, "no-sbom", false, "do not attest an SBOM")
	cmd.Flags().BoolVar(&noProv, "no-provenance", false, "do not attest provenance")
	cmd.Flags().StringVar(&prov.Recipe, "recipe", "", "provenance: recipe name (default: image annotation)")
	cmd.Flags().StringVar(&prov.RecipeDigest, "recipe-digest", "", "provenance: sha256 of the resolved recipe (default: image annotation)")
	cmd.Flags().StringVar(&prov.LockDigest, "lock-digest", "", "provenance: sha256 of the recipe's lock file")
	cmd.Flags().StringVar(&prov.Source, "source", "", "provenance: source repository URL (default: image annotation)")
	cmd.Flags().StringVar(&prov.SourceRevision, "source-revision", "", "provenance: source revision (default: image annotation)")
	cmd.Flags().StringVar(&identity, "identity", "", "subject name in the statements (default: the repository)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was attested as JSON")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}
