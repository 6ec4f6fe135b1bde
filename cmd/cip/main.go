// Command cip promotes container images from a staging registry into
// production registries, as promoter manifests say, planned over a local
// SQLite inventory of what the registries hold. Run `cip --help`.
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
	code := app.Run(ctx, "cip", os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
