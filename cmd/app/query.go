package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/query"
)

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:      "query",
		Usage:     "ask the inventory: read-only SQL or a plain-English question",
		ArgsUsage: `"SELECT …" | "QUESTION"`,
		Description: `Runs one read-only SQL statement (SELECT, WITH … SELECT, VALUES, EXPLAIN,
read-only PRAGMA) on the inventory, or translates a plain-English question
into SQL (deterministically; --list shows every form). Anything that would
write is refused with exit 2 and the inventory is left unchanged.

A question is answered only when every word in it is used by one form; a
word no form uses (a "not", an "except", a platform) makes it unknown,
exit 2, naming the closest forms. stderr says how the question was read
("read as: …") and where the answer came from. Questions on signatures,
attestations or SBOMs exit 2: the inventory records no referrers yet.

Answers stream to stdout as they are read (csv, json and yaml have no
size limit; a table, which sizes its columns from every row, stops at
10000 rows and exits 1 saying so). A statement still running after
--timeout (30s by default) is stopped: exit 1.

"In REG" questions answer from the inventory when REG (a registry root or a
path below it, by whole path segments) has been synced, otherwise from the
manifests given with --manifest / --thin-manifest-dir; a registry nothing
is known of is an error, not an empty answer. A bare name ("prod") is read
as the one known registry path ending in it. "Promoted to REG" always
compares the manifests with the inventory. The manifests' promotions are a
temporary table, promotions, to SQL as well.

Examples:
   cip query "how many unique digests in us.gcr.io/k8s-artifacts-prod"
   cip query "which tags point to sha256:3f1c…" --output csv
   cip query "what is not yet promoted to us.gcr.io/k8s-artifacts-prod" --thin-manifest-dir ./k8s.gcr.io
   cip query "what in gcr.io/k8s-staging-foo is not in us.gcr.io/k8s-artifacts-prod/foo"
   cip query "which images in gcr.io/k8s-staging-foo have no arm64"
   cip query "what changed in us.gcr.io/k8s-artifacts-prod in the last 3 days"
   cip query "SELECT registry, COUNT(*) FROM repositories GROUP BY registry" -o json
   cip query --schema
   cip query --list`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"CIP_QUERY_OUTPUT"}, Value: "table",
				Usage: "output `FORMAT`: table, wide (a table with no cell cut), csv, json or yaml"},
			&cli.BoolFlag{Name: "show-sql", EnvVars: []string{"CIP_SHOW_SQL"}, Usage: "print the SQL and its parameters on stderr"},
			&cli.BoolFlag{Name: "schema", EnvVars: []string{"CIP_QUERY_SCHEMA"}, Usage: "print the inventory's tables and columns with their meanings"},
			&cli.BoolFlag{Name: "list", EnvVars: []string{"CIP_QUERY_LIST"}, Usage: "print every question form with an example"},
			&cli.DurationFlag{Name: "timeout", EnvVars: []string{"CIP_QUERY_TIMEOUT"}, Value: defaultQueryTimeout,
				Usage: "stop a statement still running after `DURATION` (0: no limit)"},
			manifestFlag, thinDirFlag, skipInvalidFlag,
		},
		Action: runQuery,
	}
}

// defaultQueryTimeout bounds a statement: the inventory's own questions
// answer in well under a second even at registry.k8s.io's size, so 30 s
// only ever stops a statement that would not end (a recursive CTE without
// a bound) or one far larger than anyone meant.
const defaultQueryTimeout = 30 * time.Second

// queryMemoryLimit is the Go heap size past which cip query's garbage
// collector works hard to stay (debug.SetMemoryLimit; a soft limit):
// answers stream to the output, so a query needs little, and a statement
// that makes a great deal of garbage slows down before it grows the
// process. GOMEMLIMIT, when set, wins.
const queryMemoryLimit = 1 << 30

func runQuery(c *cli.Context) error {
	format, err := query.ParseFormat(c.String("output"))
	if err != nil {
		return &usageError{err}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(queryMemoryLimit)
	}
	timeout := c.Duration("timeout")
	if timeout < 0 {
		return usagef("query: --timeout %s is negative", timeout)
	}
	ctx := c.Context
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	timedOut := func(err error) error {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return fmt.Errorf("query: stopped after --timeout %s: %w", timeout, err)
		}
		return err
	}
	input := strings.TrimSpace(strings.Join(c.Args().Slice(), " "))
	path, err := dbPath(c)
	if err != nil {
		return err
	}
	var res *query.Result
	switch {
	case c.Bool("list"):
		if input != "" {
			return usagef("query: --list takes no question")
		}
		res = query.List()
	case c.Bool("schema"):
		if input != "" {
			return usagef("query: --schema takes no question")
		}
		res, err = query.Schema(ctx, path)
	case input == "":
		return usagef("query: give a SQL statement or a question (see --list)")
	default:
		var opts query.Options
		if c.String("manifest") != "" || c.String("thin-manifest-dir") != "" {
			if opts.Manifests, err = loadManifests(c); err != nil {
				return err
			}
		}
		if query.IsSQL(input) {
			res, err = query.SQL(ctx, path, input, opts)
		} else {
			res, err = query.Ask(ctx, path, input, opts)
		}
	}
	if err != nil {
		if errors.Is(err, query.ErrRefused) || errors.Is(err, query.ErrInvalid) || errors.Is(err, query.ErrUnknownQuestion) ||
			errors.Is(err, query.ErrNotSupported) || errors.Is(err, query.ErrAmbiguous) {
			return &usageError{err}
		}
		return timedOut(err)
	}
	defer res.Close()
	errw := c.App.ErrWriter
	if c.Bool("show-sql") && res.SQL != "" {
		fmt.Fprintf(errw, "-- SQL:\n%s;\n", res.SQL)
		for _, a := range res.Args {
			fmt.Fprintf(errw, "-- :%s = %v\n", a.Name, a.Value)
		}
	}
	if !c.Bool("quiet") {
		if res.Reading != "" {
			fmt.Fprintf(errw, "read as: %s\n", res.Reading)
		}
		for _, n := range res.Notes {
			fmt.Fprintln(errw, n)
		}
	}
	// Rows are written as they are read: an error (the deadline) ends the
	// output where it is, and the exit code says so.
	if err := res.Fit(c.App.Writer, format, tableWidth(c, format == query.Wide)); err != nil {
		if errors.Is(err, query.ErrRefused) {
			return &usageError{err}
		}
		return timedOut(err)
	}
	return nil
}

// dbPath is --db, $CIP_DB or the default path (query never creates it).
func dbPath(c *cli.Context) (string, error) {
	if p := c.String("db"); p != "" {
		return p, nil
	}
	return inventory.DefaultPath()
}
