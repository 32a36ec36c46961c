package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/prebake/prebake/signing"
)

func newKeygenCmd(a *app) *cobra.Command {
	var (
		prefix string
		force  bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keygen [--prefix PATH]",
		Short: "Generate a cosign-compatible key pair for signing images",
		Long: `Keygen writes a new ECDSA P-256 key pair in cosign's format: PATH.key, the
private key encrypted with a password (mode 0600), and PATH.pub, the public
key that "prebake verify --key" and "cosign verify --key" take.

The password comes from $COSIGN_PASSWORD (which may be set to the empty
string), else from a prompt when prebake runs on a terminal. Existing key
files are never replaced unless --force is given. The files are written to a
temporary name, synced and then linked into place, so an interrupted run
leaves no partial key.`,
		Example: `  prebake keygen                      # cosign.key, cosign.pub
  COSIGN_PASSWORD=… prebake keygen --prefix keys/release
  prebake sign reg.example.com/nodes/k8s@sha256:… --key keys/release.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: prefix, Force: force, Password: a.keyPassword()})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, kp)
			}
			fmt.Fprintf(a.Out, "private key: %s (mode 0600, keep it secret)\npublic key:  %s\n", kp.PrivateKey, kp.PublicKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "cosign", "write PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing key files")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the file names as JSON")
	return cmd
}

// keyPassword reads a private key's password from $COSIGN_PASSWORD or, when
// stdin is a terminal, a prompt on stderr (twice for a new key).
func (a *app) keyPassword() signing.PassFunc {
	return func(confirm bool) ([]byte, error) {
		if p, ok := signing.EnvPassword(); ok {
			return p, nil
		}
		f, ok := a.In.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, fmt.Errorf("no key password: set %s (it may be empty) or run on a terminal", signing.PasswordEnv)
		}
		fmt.Fprint(a.Err, "Enter password for private key: ")
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Err)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !confirm {
			return p, nil
		}
		fmt.Fprint(a.Err, "Enter password for private key again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Err)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !bytes.Equal(p, again) {
			return nil, fmt.Errorf("passwords do not match")
		}
		return p, nil
	}
}
