package cli

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/registry/server"
)

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
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			} else if a.quiet {
				level = slog.LevelError
			}
			opts := []server.Option{
				server.WithLogger(slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: level}))),
				server.WithDelete(enableDelete),
			}
			if htpasswd != "" {
				opts = append(opts, server.WithHtpasswd(htpasswd), server.WithAnonymousPull(anonPull))
			} else if anonPull {
				return fmt.Errorf("--anonymous-pull needs --htpasswd")
			}
			if bootstrap != "" {
				opts = append(opts, server.WithBootstrapDir(bootstrap))
			}
			if cert != "" || key != "" {
				opts = append(opts, server.WithTLS(cert, key))
			}
			srv, err := server.New(root, opts...)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				srv.Close()
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			if _, err := fmt.Fprintf(a.Out, "listening on %s\n", ln.Addr()); err != nil {
				ln.Close()
				srv.Close()
				return err
			}
			return srv.Serve(cmd.Context(), ln)
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
