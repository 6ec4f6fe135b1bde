package app

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/check"
	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/manifest"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "pre-submit checks on a change to promoter manifests (base → head)",
		Description: `Compares a base version of the manifests (what is merged) with a head version
(the change) and reports what the change would do wrong: invalid entries,
removed images or tags, moved tags, tags on two digests, dropped destinations,
digests missing from their source, oversized images, floating tags, files not
in canonical form. A problem the base already has is a warning, so an old
mistake never blocks a later change. Exit 1 when any finding is an error.

The head is --head PATH, --manifest FILE or --thin-manifest-dir DIR; the base is
--base PATH or --base-ref REF, which reads the same path from git at REF
(no checkout). Without a base every entry is new.

source-presence and image-size sync exactly the source repositories of the
digests the change adds into the inventory (--db); --offline skips them.

Examples:
   cip check --base old/registry.k8s.io --head registry.k8s.io --offline
   cip check --thin-manifest-dir registry.k8s.io --base-ref origin/main --output github
   cip check --manifest promoter-manifest.yaml --base-ref HEAD~1 --skip-checks format
   cip check --list`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "base", EnvVars: []string{"CIP_BASE"}, Usage: "base version: a thin-manifest `DIR` or a plain manifest file"},
			&cli.StringFlag{Name: "head", EnvVars: []string{"CIP_HEAD"}, Usage: "head version: a thin-manifest `DIR` or a plain manifest file"},
			manifestFlag, thinDirFlag,
			&cli.StringFlag{Name: "base-ref", EnvVars: []string{"CIP_BASE_REF"}, Usage: "read the base from git at `REF` (same path as the head)"},
			&cli.StringFlag{Name: "checks", EnvVars: []string{"CIP_CHECKS"}, Usage: "run only these checks (comma separated `NAMES`)"},
			&cli.StringFlag{Name: "skip-checks", EnvVars: []string{"CIP_SKIP_CHECKS"}, Usage: "skip these checks (comma separated `NAMES`)"},
			&cli.BoolFlag{Name: "list", EnvVars: []string{"CIP_CHECK_LIST"}, Usage: "list the checks and exit"},
			&cli.BoolFlag{Name: "offline", EnvVars: []string{"CIP_OFFLINE"}, Usage: "skip the checks that read registries (source-presence, image-size)"},
			&cli.StringFlag{Name: "max-image-size", EnvVars: []string{"CIP_MAX_IMAGE_SIZE"}, Value: "2GiB", Usage: "image-size limit per image (`SIZE`: bytes, or with KiB, MiB, GiB)"},
			&cli.StringFlag{Name: "floating-tags", EnvVars: []string{"CIP_FLOATING_TAGS"}, Usage: "refuse new tags matching `REGEXP` besides latest"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"CIP_CHECK_OUTPUT"}, Value: "table", Usage: "table, wide (a table with no cell cut), json or github (workflow-command annotations)"},
			&cli.BoolFlag{Name: "strict", EnvVars: []string{"CIP_STRICT"}, Usage: "turn warnings into errors"},
		}, registryFlags()...),
		Action: runCheck,
	}
}

func runCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("check: unexpected argument %q", c.Args().First())
	}
	output := c.String("output")
	if output != "table" && output != "wide" && output != "json" && output != "github" {
		return usagef("check: --output %q: want table, wide, json or github", output)
	}
	width := tableWidth(c, output == "wide")
	maxSize, err := parseSize(c.String("max-image-size"))
	if err != nil {
		return usagef("check: --max-image-size: %v", err)
	}
	opts := check.Options{MaxImageSize: maxSize}
	if p := c.String("floating-tags"); p != "" {
		re, err := regexp.Compile(p)
		if err != nil {
			return usagef("check: --floating-tags: %v", err)
		}
		opts.FloatingTags = re
	}
	if c.Bool("list") {
		return listChecks(c.App.Writer, check.All(opts), width)
	}

	head, err := pathSource(c, "head")
	if err != nil {
		return err
	}
	if c.String("base") != "" && c.String("base-ref") != "" {
		return usagef("check: give --base or --base-ref, not both")
	}
	if !c.Bool("offline") {
		db, err := openDB(c)
		if err != nil {
			return err
		}
		defer db.Close()
		// With --use-service-account, the source registries are read with
		// the service accounts the head names (its problems are findings,
		// so a head that does not load simply names none).
		var set *manifest.Set
		if c.Bool("use-service-account") {
			set, _ = manifest.Load(head.File, head.Dir, manifest.Options{SkipInvalid: true})
		}
		client, keepQuotas := newInventoryClient(c, db, set, newProgress(c))
		defer keepQuotas()
		opts.Inventory = &check.Inventory{DB: db, Client: client, Jobs: c.Int("jobs")}
	}
	checks, err := check.Select(check.All(opts), splitList(c.String("checks")), splitList(c.String("skip-checks")))
	if err != nil {
		return &usageError{err}
	}

	change := &check.Change{}
	if change.Head, err = check.LoadState(head); err != nil {
		return &usageError{err}
	}
	switch {
	case c.String("base") != "":
		src, err := pathSource(c, "base")
		if err != nil {
			return err
		}
		if change.Base, err = check.LoadState(src); err != nil {
			return &usageError{err}
		}
	case c.String("base-ref") != "":
		base, cleanup, err := check.LoadGitState(c.Context, head, c.String("base-ref"))
		defer cleanup()
		if err != nil {
			return &usageError{err}
		}
		change.Base = base
	}

	findings, err := check.Run(c.Context, change, checks, c.Bool("strict"))
	if inv := opts.Inventory; inv != nil {
		prog := newProgress(c)
		prog.synced(inv.Synced)
		if inv.SyncErr != nil && prog.w != nil {
			fmt.Fprintf(prog.w, "warning: %v\n", inv.SyncErr)
		}
	}
	if err != nil {
		return err
	}
	if err := writeFindings(c.App.Writer, output, findings, width); err != nil {
		return err
	}
	errs, warns := check.Count(findings)
	if !c.Bool("quiet") {
		var skipped []string
		for _, ch := range checks {
			if !ch.Applies(change) {
				skipped = append(skipped, ch.Name())
			}
		}
		fmt.Fprintf(c.App.ErrWriter, "check: %d errors, %d warnings from %d checks", errs, warns, len(checks)-len(skipped))
		if len(skipped) > 0 {
			fmt.Fprintf(c.App.ErrWriter, " (not applicable: %s)", strings.Join(skipped, ", "))
		}
		fmt.Fprintln(c.App.ErrWriter)
	}
	if errs > 0 {
		return cli.Exit("", ExitRuntime)
	}
	return nil
}

// pathSource returns the head (--head, --manifest or --thin-manifest-dir)
// or the base (--base) as a check.Source.
func pathSource(c *cli.Context, which string) (check.Source, error) {
	if which == "head" {
		n := 0
		for _, f := range []string{"head", "manifest", "thin-manifest-dir"} {
			if c.String(f) != "" {
				n++
			}
		}
		if n != 1 {
			return check.Source{}, usagef("check: give exactly one of --head, --manifest or --thin-manifest-dir")
		}
		if f := c.String("manifest"); f != "" {
			return check.Source{File: f}, nil
		}
		if d := c.String("thin-manifest-dir"); d != "" {
			return check.Source{Dir: d}, nil
		}
	}
	p := c.String(which)
	fi, err := os.Stat(p)
	if err != nil {
		return check.Source{}, usagef("check: --%s: %v", which, err)
	}
	if fi.IsDir() {
		return check.Source{Dir: p}, nil
	}
	return check.Source{File: p}, nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// parseSize reads a byte count with an optional binary unit.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size such as 2GiB or 500MiB, got %q", s)
	}
	return int64(n * float64(mult)), nil
}

func listChecks(w io.Writer, checks []check.Check, width int) error {
	var rows [][]string
	for _, ch := range checks {
		rows = append(rows, []string{ch.Name(), ch.Description()})
	}
	return writeTable(w, []table.Column{{Name: "CHECK"}, {Name: "DESCRIPTION", Fit: table.Wrap}}, rows, width)
}

// writeFindings renders findings as a table (fitted to width), JSON, or
// GitHub Actions workflow commands (annotations on the pull request's
// files).
func writeFindings(w io.Writer, output string, fs []check.Finding, width int) error {
	switch output {
	case "json":
		if fs == nil {
			fs = []check.Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(fs)
	case "github":
		for _, f := range fs {
			level := "error"
			if f.Severity == check.Warning {
				level = "warning"
			}
			props := []string{"title=" + ghProperty("cip check "+f.Check)}
			if f.File != "" {
				props = append([]string{"file=" + ghProperty(f.File)}, props...)
				if f.Line > 0 {
					props = append(props[:1], append([]string{"line=" + strconv.Itoa(f.Line)}, props[1:]...)...)
				}
			}
			if _, err := fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), ghData(f.Message)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(fs) == 0 {
		return nil
	}
	var rows [][]string
	for _, f := range fs {
		loc := f.File
		if f.Line > 0 {
			loc += ":" + strconv.Itoa(f.Line)
		}
		rows = append(rows, []string{string(f.Severity), f.Check, loc, f.Message})
	}
	cols := []table.Column{{Name: "SEVERITY"}, {Name: "CHECK"}, {Name: "FILE", Fit: table.CutStart}, {Name: "MESSAGE", Fit: table.Wrap}}
	return writeTable(w, cols, rows, width)
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
