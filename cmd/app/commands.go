package app

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/snapshot"
	cipsync "github.com/cipdev/cip/sync"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:  "validate",
		Usage: "parse and validate promoter manifests, offline",
		Description: `Reads a plain manifest or a thin-manifest directory and checks every rule:
strict YAML, exactly one source registry, valid registry and image names,
digests and tags, and no (destination, image, tag) pointing at two digests.
Every problem is listed with its file and line; any problem exits 2.

Examples:
   cip validate --manifest promoter-manifest.yaml
   cip validate --thin-manifest-dir ./k8s.io/registry.k8s.io
   cip validate --thin-manifest-dir ./k8s.io/registry.k8s.io --skip-invalid`,
		Flags: []cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag},
		Action: func(c *cli.Context) error {
			set, err := loadManifests(c)
			if err != nil {
				return err
			}
			images, digests := 0, 0
			for _, m := range set.Manifests {
				images += len(m.Images)
				for _, img := range m.Images {
					digests += len(img.Digests)
				}
			}
			fmt.Fprintf(c.App.Writer, "ok: %d manifests, %d images, %d digests, %d promotions, %d skipped\n",
				len(set.Manifests), images, digests, len(set.Promotions()), len(set.Warnings))
			return nil
		},
	}
}

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "crawl registries into the inventory (incrementally)",
		ArgsUsage: "[REF...]",
		Description: `REF is a registry host (127.0.0.1:5000), a path prefix (gcr.io/foo) or one
repository (gcr.io/foo/app). Repositories are found with the catalog, GCR's
tags/list extension or taken as given. Manifests already in the inventory are
never fetched again. With --manifest or --thin-manifest-dir, exactly the
repositories those manifests touch (source and every destination) are
crawled. Digests the inventory knows a repository holds untagged (a tag
listing cannot show them) are confirmed with a HEAD by digest, and kept
unless the registry answers 404.

Credentials are ambient (docker config, credential helpers, the Google
keychain); --use-service-account borrows the service accounts the
manifests name, on Google registries only (gcloud impersonation).

Examples:
   cip sync 127.0.0.1:5000
   cip sync gcr.io/k8s-staging-foo us.gcr.io/k8s-artifacts-prod/foo
   cip sync --thin-manifest-dir ./registry.k8s.io --jobs 16
   cip sync 127.0.0.1:5000 --confirm-ttl 10m`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag, confirmTTLFlag, tagTTLFlag}, registryFlags()...),
		Action: func(c *cli.Context) error {
			var targets []cipsync.Target
			var set *manifest.Set
			if c.String("manifest") != "" || c.String("thin-manifest-dir") != "" {
				if c.NArg() > 0 {
					return usagef("give REFs or a manifest, not both")
				}
				var err error
				if set, err = loadManifests(c); err != nil {
					return err
				}
				targets = cipsync.ManifestTargets(set)
			} else {
				if c.NArg() == 0 {
					return usagef("sync: give at least one REF, or --manifest / --thin-manifest-dir")
				}
				for _, ref := range c.Args().Slice() {
					if err := checkRef(ref); err != nil {
						return err
					}
					targets = append(targets, cipsync.Target{Ref: ref})
				}
			}
			db, err := openDB(c)
			if err != nil {
				return err
			}
			defer db.Close()
			prog := newProgress(c)
			client, keepQuotas := newInventoryClient(c, db, set, prog)
			defer keepQuotas()
			res, err := cipsync.Run(c.Context, db, client, targets, cipsync.Options{Jobs: c.Int("jobs"), Progress: prog.sync(), ConfirmTTL: confirmTTL(c, prog)})
			prog.synced(res)
			return err
		},
	}
}

// checkRef validates a REF argument: a registry host, or host/path.
func checkRef(ref string) error {
	if err := manifest.ValidateRegistryName(strings.TrimSuffix(ref, "/")); err != nil {
		return usagef("invalid REF %q: %v", manifest.RedactCredentials(ref), err)
	}
	return nil
}

var snapshotTagFlag = &cli.StringFlag{Name: "snapshot-tag", EnvVars: []string{"CIP_SNAPSHOT_TAG"},
	Usage: "snapshot only the digests carrying `TAG` (each listed with that tag alone)"}

var outputFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"CIP_SNAPSHOT_OUTPUT"}, Value: "yaml",
	Usage: "output `FORMAT`: yaml (thin images.yaml) or csv"}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshot",
		Usage:     "print what a registry holds (or what manifests promote into it)",
		ArgsUsage: "REF",
		Description: `Prints the images at or below REF as a thin images.yaml (images, digests and
tags sorted) or as CSV (image@digest,image:tag; image@digest,- when untagged).
REF is synced first unless --offline. --minimal drops untagged children of
manifest lists and indexes. --snapshot-tag TAG keeps only the digests that
carry TAG, each listed with TAG alone (as the Kubernetes promoter's
--snapshot-tag), in either kind of snapshot. Referrer tags (sha256-<hex>, and cosign's .sig,
.att, .sbom) and the digests held only as referrers are left out: they
travel with their images and are no manifest's content; --include-referrers
lists them.

With --manifest-based-snapshot-of REG, prints instead what the manifests
promote into REG (or below it), offline.

Examples:
   cip snapshot 127.0.0.1:5000/prod
   cip snapshot gcr.io/foo --output csv --minimal
   cip snapshot gcr.io/foo --snapshot-tag latest
   cip snapshot --manifest-based-snapshot-of us.gcr.io/k8s-artifacts-prod --thin-manifest-dir ./k8s.gcr.io -o csv`,
		Flags: append([]cli.Flag{outputFlag,
			&cli.BoolFlag{Name: "minimal", EnvVars: []string{"CIP_MINIMAL"}, Usage: "drop untagged children of manifest lists and indexes"},
			&cli.BoolFlag{Name: "include-referrers", EnvVars: []string{"CIP_INCLUDE_REFERRERS"}, Usage: "list referrer tags (sha256-<hex>, .sig, .att, .sbom) and the digests held only as referrers too"},
			&cli.BoolFlag{Name: "offline", EnvVars: []string{"CIP_OFFLINE"}, Usage: "answer from the inventory without syncing"},
			&cli.StringFlag{Name: "manifest-based-snapshot-of", EnvVars: []string{"CIP_MANIFEST_BASED_SNAPSHOT_OF"}, Usage: "snapshot what the manifests promote into `REG`"},
			snapshotTagFlag, manifestFlag, thinDirFlag, skipInvalidFlag,
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			format, err := snapshot.ParseFormat(c.String("output"))
			if err != nil {
				return &usageError{err}
			}
			if err := checkSnapshotTag(c); err != nil {
				return err
			}
			if reg := c.String("manifest-based-snapshot-of"); reg != "" {
				if c.NArg() > 0 {
					return usagef("give REF or --manifest-based-snapshot-of, not both")
				}
				return manifestSnapshot(c, reg, format)
			}
			if c.NArg() != 1 {
				return usagef("snapshot: give exactly one REF")
			}
			return registrySnapshot(c, c.Args().First(), format, c.Bool("minimal"), c.Bool("offline"), c.Bool("include-referrers"))
		},
	}
}

// checkSnapshotTag refuses a --snapshot-tag no tag can equal.
func checkSnapshotTag(c *cli.Context) error {
	if tag := c.String("snapshot-tag"); tag != "" {
		if err := manifest.ValidateTag(tag); err != nil {
			return usagef("--snapshot-tag %q: %v", tag, err)
		}
	}
	return nil
}

func manifestSnapshot(c *cli.Context, reg string, format snapshot.Format) error {
	if err := checkRef(reg); err != nil {
		return err
	}
	set, err := loadManifests(c)
	if err != nil {
		return err
	}
	return snapshot.Write(c.App.Writer, format, snapshot.WithTag(snapshot.FromManifests(set, reg), c.String("snapshot-tag")))
}

func registrySnapshot(c *cli.Context, ref string, format snapshot.Format, minimal, offline, referrers bool) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	if !offline {
		prog := newProgress(c)
		res, err := cipsync.Run(c.Context, db, newClient(c, nil, prog), []cipsync.Target{{Ref: ref}}, cipsync.Options{Jobs: c.Int("jobs"), Progress: prog.sync()})
		prog.synced(res)
		if err != nil {
			return err
		}
	}
	images, skipped, err := snapshot.FromInventory(c.Context, db, ref, minimal, referrers)
	if err != nil {
		return err
	}
	prog := newProgress(c)
	for _, s := range skipped {
		prog.warn("left out", "left out of the snapshot (cip validate would refuse it): "+s, slog.String("entry", s))
	}
	return snapshot.Write(c.App.Writer, format, snapshot.WithTag(images, c.String("snapshot-tag")))
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "the Container Image Promoter's original flags, mapped onto cip's commands",
		Description: `Keeps the seed's command line working:
   --parse-only                      validate the manifests (cip validate)
   --snapshot REF                    snapshot a registry (cip snapshot REF)
   --manifest-based-snapshot-of REG  snapshot what manifests promote into REG
   --output yaml|csv, --minimal-snapshot, --snapshot-tag TAG
   --manifest F | --thin-manifest-dir D [--confirm]  promote (dry run by default)
A promotion only warns about lost rows (as the original promoter; cip
promote fails on them). --parse-only, --snapshot and
--manifest-based-snapshot-of are one each: combining them is refused.

Examples:
   cip run --manifest promoter-manifest.yaml --parse-only
   cip run --snapshot gcr.io/foo --output csv --minimal-snapshot
   cip run --snapshot gcr.io/foo --snapshot-tag latest
   cip run --thin-manifest-dir ./registry.k8s.io --confirm`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag, outputFlag,
			&cli.StringFlag{Name: "snapshot", EnvVars: []string{"CIP_SNAPSHOT"}, Usage: "snapshot registry `REF`"},
			&cli.BoolFlag{Name: "minimal-snapshot", EnvVars: []string{"CIP_MINIMAL_SNAPSHOT"}, Usage: "drop untagged children of manifest lists from snapshots"},
			&cli.StringFlag{Name: "manifest-based-snapshot-of", EnvVars: []string{"CIP_MANIFEST_BASED_SNAPSHOT_OF"}, Usage: "snapshot what the manifests promote into `REG`"},
			&cli.BoolFlag{Name: "parse-only", EnvVars: []string{"CIP_PARSE_ONLY"}, Usage: "only parse and validate the manifests"},
			snapshotTagFlag, confirmFlag, confirmTTLFlag, tagTTLFlag, fullFlag, referrersFlag,
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			format, err := snapshot.ParseFormat(c.String("output"))
			if err != nil {
				return &usageError{err}
			}
			if err := checkRunModes(c); err != nil {
				return err
			}
			switch {
			case c.String("snapshot") != "":
				return registrySnapshot(c, c.String("snapshot"), format, c.Bool("minimal-snapshot"), false, false)
			case c.String("manifest-based-snapshot-of") != "":
				return manifestSnapshot(c, c.String("manifest-based-snapshot-of"), format)
			case c.Bool("parse-only"):
				if _, err := loadManifests(c); err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "ok")
				return nil
			}
			set, err := loadManifests(c)
			if err != nil {
				return err
			}
			// The original promoter only warns about lost images.
			return promotion(c, set, promotionFlags{output: "table", confirm: c.Bool("confirm"), allowLost: true})
		},
	}
}

// checkRunModes refuses cip run flags that would be silently ignored: the
// original promoter's modes are one at a time, and --snapshot-tag belongs
// to a snapshot.
func checkRunModes(c *cli.Context) error {
	var modes []string
	if c.Bool("parse-only") {
		modes = append(modes, "--parse-only")
	}
	for _, f := range []string{"snapshot", "manifest-based-snapshot-of"} {
		if c.String(f) != "" {
			modes = append(modes, "--"+f)
		}
	}
	if len(modes) > 1 {
		return usagef("give one of --parse-only, --snapshot or --manifest-based-snapshot-of, not %s", strings.Join(modes, " and "))
	}
	snap := c.String("snapshot") != "" || c.String("manifest-based-snapshot-of") != ""
	if c.String("snapshot-tag") != "" && !snap {
		return usagef("--snapshot-tag needs --snapshot or --manifest-based-snapshot-of")
	}
	return checkSnapshotTag(c)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and VCS revision",
		Description: `Prints the release version, or the module version and VCS revision from the
build info ("(devel)" for a plain go build without VCS stamping). The same
as --version.

Examples:
   cip version
   cip --version`,
		Action: func(c *cli.Context) error {
			versionLine(c)
			return nil
		},
	}
}

// versionLine is what `cip version` and `cip --version` print.
func versionLine(c *cli.Context) { fmt.Fprintf(c.App.Writer, "%s %s\n", c.App.Name, version()) }

func init() {
	// urfave/cli prints --version with its package-level VersionPrinter
	// ("cip version X" by default): the same line as `cip version`.
	cli.VersionPrinter = versionLine
}

// releaseVersion is set by release builds (scripts/dist.sh passes -ldflags
// "-X github.com/cipdev/cip/cmd/app.releaseVersion=v0.1.0"). They are built
// without VCS stamping so that an archive is byte-for-byte reproducible and
// its sha256 in plugins.yaml can be checked by rebuilding.
var releaseVersion string

// version reports the release version, or else the module version and VCS
// revision from the build info.
func version() string {
	if releaseVersion != "" {
		return releaseVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return fmt.Sprintf("%s (%s%s)", v, rev, dirty)
	}
	return v
}
