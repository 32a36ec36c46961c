package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ServeConfig is what `prebake serve`'s flags ask for.
type ServeConfig struct {
	Root, Addr, TLSCert, TLSKey, Htpasswd, BootstrapDir string
	AnonymousPull, Delete, Debug, Quiet                 bool
}

// GCConfig is what `prebake gc`'s flags ask for. Grace <= 0 keeps no
// unreferenced blob.
type GCConfig struct {
	Root   string
	DryRun bool
	Grace  time.Duration
}

// ServerCommands run `serve` and `gc`, the two commands that need the
// registry server (registry/server and olareg, whose package initialisation
// alone costs ~100 ms of CPU). The prebake binary leaves them unset, so that
// no other command pays for them, and replaces itself with prebake-serve
// (cmd/prebake-serve: this CLI with the server linked in, built next to
// prebake) when one of the two is run.
type ServerCommands struct {
	Serve func(ctx context.Context, c ServeConfig, s Streams) error
	GC    func(ctx context.Context, c GCConfig, s Streams) error
}

var serverCmds ServerCommands

// SetServer links the registry server's commands into this program
// (cmd/prebake-serve, and tests).
func SetServer(sc ServerCommands) { serverCmds = sc }

// ServerBinary is the program `prebake serve` and `prebake gc` run.
const ServerBinary = "prebake-serve"

// errNoServer: prebake-serve is neither next to prebake nor in PATH.
var errNoServer = errors.New(ServerBinary + " not found")

// execServer replaces this process with prebake-serve running the same
// command with the same flags (so the PID, signals, streams and exit code
// are the server's own).
func execServer(cmd *cobra.Command) error {
	// A prebake-serve without the server (a copy of prebake under that
	// name) would exec itself forever.
	const guard = "PREBAKE_SERVE_EXEC"
	if os.Getenv(guard) != "" {
		return fmt.Errorf("%s: %w: this %s has no registry server linked in", cmd.Name(), errNoServer, ServerBinary)
	}
	bin := ""
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), ServerBinary); isExecutable(p) {
			bin = p
		}
	}
	if bin == "" {
		p, err := exec.LookPath(ServerBinary)
		if err != nil {
			return fmt.Errorf("%s needs the registry server: %w next to this prebake or in PATH (make build writes bin/%s; go build ./cmd/%s)", cmd.Name(), errNoServer, ServerBinary, ServerBinary)
		}
		bin = p
	}
	argv := []string{bin, cmd.Name()}
	// Flags() holds the command's and the inherited flags as parsed.
	cmd.Flags().Visit(func(f *pflag.Flag) { argv = append(argv, "--"+f.Name+"="+f.Value.String()) })
	if err := syscall.Exec(bin, argv, append(os.Environ(), guard+"=1")); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func newServeCmd(a *app) *cobra.Command {
	var (
		root, addr, cert, key, htpasswd, bootstrap string
		anonPull, enableDelete, debug              bool
	)
	cmd := &cobra.Command{
		Use:   "serve --root DIR [--addr HOST:PORT]",
		Short: "Run an OCI registry over a directory",
		Long: `serve runs an OCI distribution registry (OCI 1.1, with the referrers API)
that stores one OCI image layout per repository under --root.

Every write is durable before it is acknowledged (temp file, fsync, rename,
directory fsync), and a tag only ever names a complete graph: kill the server
at any moment, start it again, and every tag still resolves to verified
content. Several servers may share one root; pushes to one repository are
serialised with a lock file.

The first line on stdout is "listening on HOST:PORT"; with --addr HOST:0 the
port is chosen free, so scripts can read it. SIGINT or SIGTERM stops the
server gracefully (running requests finish).

With --htpasswd every request needs a user from the file (bcrypt entries, as
written by "htpasswd -B"); --anonymous-pull lets requests without credentials
pull. --bootstrap-dir serves one-time join documents under /bootstrap/TOKEN
(the token is the credential). Deletes are off unless --delete; "prebake gc" reclaims unreferenced
blobs either way.`,
		Example: `  # a local registry for pushes from this machine
  prebake serve --root /var/lib/prebake/registry --addr 127.0.0.1:5000

  # on a free port, e.g. in a test script: read the port from the first line
  prebake serve --root "$tmp/reg" --addr 127.0.0.1:0 >"$tmp/serve.out" &
  until addr=$(sed -n 's/^listening on //p' "$tmp/serve.out") && [ -n "$addr" ]; do sleep 0.1; done

  # TLS and users; anyone may pull
  prebake serve --root /srv/reg --addr :5443 --tls-cert reg.crt --tls-key reg.key \
      --htpasswd /etc/prebake/htpasswd --anonymous-pull`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if anonPull && htpasswd == "" {
				return fmt.Errorf("--anonymous-pull needs --htpasswd")
			}
			if serverCmds.Serve == nil {
				return execServer(cmd)
			}
			return serverCmds.Serve(cmd.Context(), ServeConfig{
				Root: root, Addr: addr, TLSCert: cert, TLSKey: key, Htpasswd: htpasswd, BootstrapDir: bootstrap,
				AnonymousPull: anonPull, Delete: enableDelete, Debug: debug, Quiet: a.quiet,
			}, a.Streams)
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "directory holding the registry's data (created if missing)")
	f.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on; port 0 picks a free port")
	f.StringVar(&cert, "tls-cert", "", "PEM certificate file: serve HTTPS")
	f.StringVar(&key, "tls-key", "", "PEM private key file for --tls-cert")
	f.StringVar(&htpasswd, "htpasswd", "", "require basic auth against this htpasswd file (bcrypt entries)")
	f.BoolVar(&anonPull, "anonymous-pull", false, "with --htpasswd: allow pulls without credentials")
	f.StringVar(&bootstrap, "bootstrap-dir", "", "serve one-time bootstrap documents from DIR under /bootstrap/ (see prebake render --bootstrap-url)")
	f.BoolVar(&enableDelete, "delete", false, "enable the DELETE API for manifests, tags and blobs")
	f.BoolVar(&debug, "debug", false, "log every request")
	_ = cmd.MarkFlagRequired("root")
	return cmd
}
