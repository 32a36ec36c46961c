// Package servecmd runs `prebake serve` and `prebake gc`, the two commands
// that need the registry server (registry/server, olareg). It is apart from
// internal/cli so that the prebake binary does not link the server: only
// prebake-serve (cmd/prebake-serve) registers these with cli.SetServer.
package servecmd

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/prebake/prebake/internal/cli"
	"github.com/prebake/prebake/registry/server"
)

// Commands are the server's commands for cli.SetServer.
func Commands() cli.ServerCommands { return cli.ServerCommands{Serve: Serve, GC: GC} }

// Serve runs the registry until ctx ends; its first line on s.Out is
// "listening on HOST:PORT".
func Serve(ctx context.Context, c cli.ServeConfig, s cli.Streams) error {
	level := slog.LevelInfo
	if c.Debug {
		level = slog.LevelDebug
	} else if c.Quiet {
		level = slog.LevelError
	}
	opts := []server.Option{
		server.WithLogger(slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: level}))),
		server.WithDelete(c.Delete),
	}
	if c.Htpasswd != "" {
		opts = append(opts, server.WithHtpasswd(c.Htpasswd), server.WithAnonymousPull(c.AnonymousPull))
	} else if c.AnonymousPull {
		return fmt.Errorf("--anonymous-pull needs --htpasswd")
	}
	if c.BootstrapDir != "" {
		opts = append(opts, server.WithBootstrapDir(c.BootstrapDir))
	}
	if c.TLSCert != "" || c.TLSKey != "" {
		opts = append(opts, server.WithTLS(c.TLSCert, c.TLSKey))
	}
	srv, err := server.New(c.Root, opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	if _, err := fmt.Fprintf(s.Out, "listening on %s\n", ln.Addr()); err != nil {
		ln.Close()
		srv.Close()
		return err
	}
	return srv.Serve(ctx, ln)
}

// GC collects the unreferenced blobs of a serve root and prints what it
// removed.
func GC(ctx context.Context, c cli.GCConfig, s cli.Streams) error {
	srv, err := server.New(c.Root)
	if err != nil {
		return err
	}
	defer srv.Close()
	grace := c.Grace
	if grace <= 0 {
		grace = -1 // GCOptions: negative keeps none, zero would mean the default
	}
	res, err := srv.GC(ctx, server.GCOptions{DryRun: c.DryRun, GracePeriod: grace})
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	for _, b := range res.Removed {
		fmt.Fprintf(s.Out, "%s %s@%s (%d bytes)\n", verb, b.Repo, b.Digest, b.Size)
	}
	for _, l := range res.Leftovers {
		fmt.Fprintf(s.Out, "%s leftover %s\n", verb, l)
	}
	fmt.Fprintf(s.Out, "%s %d blobs and %d leftovers in %d repositories, %d bytes freed\n",
		verb, len(res.Removed), len(res.Leftovers), res.Repositories, res.BytesFreed)
	return err
}
