// Command prebake builds, publishes, signs and renders Kubernetes node images.
//
// main only wires signals and the exit code; everything else lives in
// internal/cli and the library packages it calls. The cloud KMS providers
// are linked only into the kms build (kms.go, `make build-kms`): their four
// SDKs would double the binary and the start-up time of every command.
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
