// Command kubectl-cip is cip as a kubectl plugin: with kubectl-cip on the
// PATH (krew puts it there), `kubectl cip sync gcr.io/foo` runs `cip sync
// gcr.io/foo`. It is the same program as cmd/cip; only its help and errors
// say `kubectl cip`. Run `kubectl cip --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cipdev/cip/cmd/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, "kubectl cip", os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
