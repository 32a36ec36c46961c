// Command prebake-serve is prebake with the registry server linked in: the
// program `prebake serve` and `prebake gc` replace themselves with (it takes
// the same commands and flags as prebake). The server's dependencies
// (olareg hashes a bcrypt password while its packages initialise) stay out
// of every other command's start-up this way.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prebake/prebake/internal/cli"
	"github.com/prebake/prebake/internal/servecmd"
)

func main() {
	cli.SetServer(servecmd.Commands())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
