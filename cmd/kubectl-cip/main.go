// Command kubectl-cip is cip as a kubectl plugin: with kubectl-cip on the
// PATH (krew puts it there), `kubectl cip sync gcr.io/foo` runs `cip sync
// gcr.io/foo`. It is the same program as cmd/cip; only its help and errors
// say `kubectl cip`. Run `kubectl cip --help`.
package main

import "github.com/cipdev/cip/cmd/app"

func main() { app.Main("kubectl cip") }
