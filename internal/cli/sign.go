package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func newSignCmd(a *app) *cobra.Command {
	var (
		rf        registryFlags
		key       string
		recursive bool
		ann       []string
		identity  string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "sign REF@DIGEST --key KEY",
		Short: "Sign an image by digest with a cosign-compatible signature",
		Long: `Sign signs the image or index at REF@DIGEST with the private key KEY and
stores the signature where cosign does: the tag sha256-<hex>.sig next to the
image in its registry, or that name in an oci: layout's or the store's
index.json. "cosign verify" accepts it, and "prebake copy" carries it along.

Only a digest can be signed: a tag is refused, and the error names the
digest it resolves to now, so that what you sign is what you looked at. For
an index, every platform manifest is signed as well (--recursive=false signs
the index alone). Signing the same digest again with the same key and
annotations adds nothing.

KEY is a cosign key file (password from $COSIGN_PASSWORD or a prompt),
env://VAR holding one, or a KMS URI: awskms://, gcpkms://, azurekms://,
hashivault://. Nothing is sent to a transparency log or certificate
authority; the signature goes only where the image is.`,
		Example: `  prebake sign 127.0.0.1:5000/nodes/k8s@sha256:… --key cosign.key --insecure
  prebake sign oci:out@sha256:… --key awskms:///alias/prebake-release -a release=2026.05`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			annotations, err := parseKeyValues("-a", "KEY=VALUE", ann, false)
			if err != nil {
				return err
			}
			res, err := signing.Sign(cmd.Context(), ref, signing.SignOptions{
				KeyOptions:  signing.KeyOptions{Key: key, Password: a.keyPassword()},
				TopOnly:     !recursive,
				Annotations: annotations,
				Identity:    identity,
				Registry:    rf.options(),
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, res)
			}
			for _, s := range res {
				verb := "signed"
				if s.Existed {
					verb = "already signed"
				}
				fmt.Fprintf(a.Out, "%s %s -> %s\n", verb, s.Digest, s.Signatures)
			}
			return nil
		},
	}
	rf.register(cmd, false)
	cmd.Flags().StringVar(&key, "key", "", "private key: cosign key file, env://VAR or KMS URI (required)")
	cmd.Flags().BoolVar(&recursive, "recursive", true, "for an index, also sign every manifest it lists")
	cmd.Flags().StringArrayVarP(&ann, "annotation", "a", nil, "KEY=VALUE to sign into the payload (repeatable)")
	cmd.Flags().StringVar(&identity, "identity", "", "docker-reference the signature claims (default: the repository)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was signed as JSON")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
