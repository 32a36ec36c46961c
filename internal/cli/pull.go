package cli

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// pullOutput is what pull --json prints.
type pullOutput struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Image     string `json:"image,omitempty"`
	Output    string `json:"output"`
	Blobs     int    `json:"blobs"`
	Bytes     int64  `json:"downloadedBytes"`
	Verified  bool   `json:"verified,omitempty"`
}

func newPullCmd(a *app) *cobra.Command {
	var (
		rf            registryFlags
		output        string
		platform      string
		requireDigest bool
		allowRevoked  bool
		verifyKey     string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "pull REF -o DIR|oci:DIR[:TAG]",
		Short: "Pull an image by digest into a root filesystem or an OCI layout",
		Long: `Pull resolves REF to a digest once, prints it, and from then on fetches
only by digest, checking every manifest and blob against its digest while it
streams. A tampered blob or manifest fails with the expected and actual digest.

-o DIR unpacks the root filesystem of one platform (--platform, default
linux/<this machine>): layers in order, OCI whiteouts applied; entries that
would land outside DIR (.. paths, writes through symlinks leading out, hard
links out) and device nodes are refused. -o oci:DIR stores the whole image
(every platform, with its referrers) in an OCI layout, merging into an
existing one. Either way nothing appears at the output unless the pull
completes: content is staged next to it and renamed into place.

Provisioners should pass --require-digest, which refuses tag references, and
--verify-key, which requires a valid signature on the digest before anything
is pulled. Revoked digests (prebake revoke) are refused unless --allow-revoked.`,
		Example: `  # a provisioner: exact digest, signed, unpacked
  prebake pull registry.example.com/nodes/k8s@sha256:… --require-digest --verify-key cosign.pub -o /var/lib/prebake/rootfs

  # keep the OCI image (all platforms, SBOM) in a layout
  prebake pull 127.0.0.1:5000/quickstart:1.0 --insecure -o oci:./quickstart`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if output == "" {
				return fmt.Errorf("-o DIR or -o oci:DIR is required")
			}
			src, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			if requireDigest && src.Digest == "" {
				return fmt.Errorf("pulling %s: %w: name the image as REF@sha256:…", src, registry.ErrDigestRequired)
			}
			o := rf.options()
			verified := false
			if verifyKey != "" {
				// Verify resolves the reference; the pull then uses that digest.
				vr, err := signing.Verify(ctx, src, signing.VerifyOptions{Key: verifyKey, SkipBlobs: true, AllowRevoked: allowRevoked, Registry: o})
				if err != nil {
					return err
				}
				src = src.WithDigest(vr.Digest)
				verified = true
			}
			prog, done := a.newProgress()
			defer done()
			o.Progress = prog
			res, err := registry.Pull(ctx, src, output, registry.PullOptions{
				Options: o, Platform: platform, RequireDigest: requireDigest, AllowRevoked: allowRevoked,
				Resolved: func(d v1.Descriptor) {
					if !asJSON {
						done()
						fmt.Fprintf(a.Out, "%s\n", src.WithDigest(d.Digest.String()))
					}
				},
			})
			done()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.Out)
				enc.SetIndent("", "  ")
				out := pullOutput{
					Reference: src.WithDigest(res.Descriptor.Digest.String()).String(), Digest: res.Descriptor.Digest.String(),
					Output: output, Blobs: res.Blobs, Bytes: res.Uploaded, Verified: verified,
				}
				if res.Image.Digest != res.Descriptor.Digest && res.Image.Size > 0 {
					out.Image = res.Image.Digest.String()
				}
				return enc.Encode(out)
			}
			fmt.Fprintf(a.Err, "wrote %s: downloaded %s, %s already present (%d blobs)\n", output, progress.Bytes(res.Uploaded), progress.Bytes(res.Skipped), res.Blobs)
			return nil
		},
	}
	rf.register(cmd, true)
	cmd.Flags().StringVarP(&output, "output", "o", "", "DIR (root filesystem) or oci:DIR[:TAG] (OCI layout)")
	cmd.Flags().StringVar(&platform, "platform", "", "platform to unpack from an index, os/arch[/variant] (default linux/<this machine>)")
	cmd.Flags().BoolVar(&requireDigest, "require-digest", false, "refuse tag references")
	cmd.Flags().BoolVar(&allowRevoked, "allow-revoked", false, "pull a revoked digest anyway")
	cmd.Flags().StringVar(&verifyKey, "verify-key", "", "require a valid cosign signature by this public key (PEM file, env://VAR or KMS URI)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
