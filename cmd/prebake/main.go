// Command prebake builds, publishes, signs and renders Kubernetes node images.
//
// main only wires signals and the exit code; everything else lives in
// internal/cli and the library packages it calls.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prebake/prebake/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
