// Command prebake builds, publishes, signs and renders Kubernetes node images.
//
// main only wires signals, the exit code and the KMS providers; everything
// else lives in internal/cli and the library packages it calls.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prebake/prebake/internal/cli"
	// The cloud KMS providers for --key/--sign-key awskms://, gcpkms://,
	// azurekms://, hashivault:// (registered here, not by signing).
	_ "github.com/prebake/prebake/signing/kms"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
