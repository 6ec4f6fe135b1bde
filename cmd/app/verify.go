package app

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/promote"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check with live HEADs that destinations serve what the manifests promise",
		Description: `For every (destination, image, digest) and (destination, image, tag) the
manifests name, HEADs the destination and compares digests. Prints every
mismatch (want, got: a digest, "absent" or an error) and a one-line summary
("verified: 24 references, all match"; -o json and yaml print the
mismatches only, [] when none), and exits 1 when there is any mismatch.
No sync is needed.

It also checks each promoted digest's referrers (--referrers, default all)
that the inventory knows its source holds (the last promote, run or sync
of the source found them): listed with their subject by the destination's
referrers API or its sha256-<hex> index, or at cosign's tag (that manifest,
or a merge holding its signatures). A missing one is a mismatch (want the
referrer, got "not listed", "absent" or an error).

Examples:
   cip verify --manifest promoter-manifest.yaml
   cip verify --thin-manifest-dir ./registry.k8s.io -o json`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag, planOutputFlag, referrersFlag}, registryFlags()...),
		Action: func(c *cli.Context) error {
			format := c.String("output")
			switch format {
			case "table", "wide", "json", "yaml":
			default:
				return usagef("unknown output format %q (want table, wide, json or yaml)", format)
			}
			sel, err := referrersOf(c)
			if err != nil {
				return err
			}
			set, err := loadManifests(c)
			if err != nil {
				return err
			}
			db, err := openDB(c)
			if err != nil {
				return err
			}
			defer db.Close()
			origin := c.String("manifest")
			if origin == "" {
				origin = c.String("thin-manifest-dir")
			}
			loadID, err := db.LoadRoutes(c.Context, origin, promote.Routes(set))
			if err != nil {
				return err
			}
			client, keepQuotas := newInventoryClient(c, db, set, newProgress(c))
			defer keepQuotas()
			opts := promote.Options{Jobs: c.Int("jobs"), Referrers: sel}
			checked, mismatches, err := promote.Verify(c.Context, db, client, loadID, opts)
			if err != nil {
				return err
			}
			nref, rms, err := promote.VerifyReferrers(c.Context, db, client, loadID, opts)
			if err != nil {
				return err
			}
			checked += nref
			for _, m := range rms {
				mismatches = append(mismatches, promote.Mismatch{Destination: m.Destination, Image: m.Image, Subject: m.Subject,
					Want: m.Referrer, Got: m.Got, File: m.File, Line: m.Line})
			}
			if err := writeMismatches(c, format, mismatches); err != nil {
				return err
			}
			if format == "table" || format == "wide" {
				// The answer, for people: stdout, like the table.
				summary := "all match"
				if len(mismatches) > 0 {
					summary = fmt.Sprintf("%d do not match the manifests", len(mismatches))
				}
				fmt.Fprintf(c.App.Writer, "verified: %d references, %s\n", checked, summary)
			} else {
				newProgress(c).info("verify", fmt.Sprintf("verify: %d references checked, %d mismatches", checked, len(mismatches)),
					slog.Int("checked", checked), slog.Int("mismatches", len(mismatches)))
			}
			if len(mismatches) > 0 {
				return cli.Exit(fmt.Sprintf("verify: %d of %d references do not match the manifests", len(mismatches), checked), ExitRuntime)
			}
			return nil
		},
	}
}

func writeMismatches(c *cli.Context, format string, ms []promote.Mismatch) error {
	w := c.App.Writer
	switch format {
	case "json", "yaml":
		if ms == nil {
			ms = []promote.Mismatch{}
		}
		return writeData(w, format, ms)
	}
	if len(ms) == 0 {
		return nil
	}
	var rows [][]string
	for _, m := range ms {
		rows = append(rows, []string{m.Ref(), m.Want, m.Got, fmt.Sprintf("%s:%d", m.File, m.Line)})
	}
	cols := []table.Column{{Name: "REFERENCE"}, {Name: "WANT"}, {Name: "GOT", Fit: table.Wrap}, {Name: "MANIFEST", Fit: table.CutStart}}
	return writeTable(w, cols, rows, tableWidth(c, format == "wide"))
}
