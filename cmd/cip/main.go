// Command cip promotes container images from a staging registry into
// production registries, as promoter manifests say, planned over a local
// SQLite inventory of what the registries hold. Run `cip --help`.
package main

import "github.com/cipdev/cip/cmd/app"

func main() { app.Main("cip") }
