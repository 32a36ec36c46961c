package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func newVerifyCmd(a *app) *cobra.Command {
	var (
		rf           registryFlags
		key          string
		ann          []string
		attestations bool
		skipBlobs    bool
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "verify REF --key PUB",
		Short: "Verify an image's signature offline, with only the public key and the registry",
		Long: `Verify proves that the image REF names was signed by the key PUB and has not
changed since, using nothing but the public key and the place the image lives
(a registry, an oci: layout or the store): no transparency log, no
certificate authority, no other network access.

It resolves REF once (a tag is allowed; the digest it resolves to is
printed), then refuses, with the reason, when:
  - the digest has been revoked (prebake revoke),
  - a manifest, config or layer does not hash to its digest (tampered),
  - the digest has no signature,
  - no signature verifies with PUB (another key, or an altered signature),
  - the only valid signatures were made over another digest,
  - a required annotation (-a) is missing from the signed payload,
  - with --attestations: no SBOM (SPDX) or provenance (SLSA v1) attestation
    of the digest verifies with PUB.
On success it prints the verified digest and the signed annotations.
Signatures made by "cosign sign" are accepted just like prebake's.

PUB is a PEM public key file, env://VAR holding one, or a KMS URI.
--skip-blobs checks the manifests but not the config and layer contents
(which is all "cosign verify" checks).`,
		Example: `  prebake verify 127.0.0.1:5000/nodes/k8s@sha256:… --key cosign.pub --insecure
  prebake verify oci:./node --key cosign.pub --attestations
  prebake verify reg.example.com/nodes/k8s:1.36.4 --key cosign.pub -a release=2026.05 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			want, err := parseKeyValues("-a", "KEY=VALUE", ann, false)
			if err != nil {
				return err
			}
			res, err := signing.Verify(cmd.Context(), ref, signing.VerifyOptions{
				Key: key, Annotations: want, Attestations: attestations, SkipBlobs: skipBlobs, Registry: rf.options(),
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, res)
			}
			fmt.Fprintf(a.Out, "verified %s\n", ref.WithDigest(res.Digest))
			if a.quiet {
				return nil
			}
			fmt.Fprintf(a.Out, "  signatures:  %d valid (key %s)\n", res.Signatures, key)
			fmt.Fprintf(a.Out, "  checked:     %d manifests, %d blobs\n", res.Manifests, res.Blobs)
			if len(res.SignedAnnotations) > 0 {
				fmt.Fprintln(a.Out, "  signed annotations:")
				for _, k := range sortedKeys(res.SignedAnnotations) {
					fmt.Fprintf(a.Out, "    %s=%s\n", k, res.SignedAnnotations[k])
				}
			}
			if len(res.Annotations) > 0 {
				fmt.Fprintln(a.Out, "  manifest annotations:")
				for _, k := range sortedKeys(res.Annotations) {
					fmt.Fprintf(a.Out, "    %s=%s\n", k, res.Annotations[k])
				}
			}
			for _, at := range res.Attestations {
				fmt.Fprintf(a.Out, "  attestation: %s (%s)\n", at.PredicateType, at.Digest)
			}
			return nil
		},
	}
	rf.register(cmd, false)
	cmd.Flags().StringVar(&key, "key", "", "public key: PEM file, env://VAR or KMS URI (required)")
	cmd.Flags().StringArrayVarP(&ann, "annotation", "a", nil, "KEY=VALUE the signed payload must carry (repeatable)")
	cmd.Flags().BoolVar(&attestations, "attestations", false, "also require verified SBOM and provenance attestations")
	cmd.Flags().BoolVar(&skipBlobs, "skip-blobs", false, "check manifests only, not config and layer contents")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}
