package app

import (
	"errors"
	"fmt"
	"strings"

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
			manifestFlag, thinDirFlag, skipInvalidFlag,
		},
		Action: runQuery,
	}
}

func runQuery(c *cli.Context) error {
	format, err := query.ParseFormat(c.String("output"))
	if err != nil {
		return &usageError{err}
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
		res, err = query.Schema(c.Context, path)
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
			res, err = query.SQL(c.Context, path, input, opts)
		} else {
			res, err = query.Ask(c.Context, path, input, opts)
		}
	}
	if err != nil {
		if errors.Is(err, query.ErrRefused) || errors.Is(err, query.ErrInvalid) || errors.Is(err, query.ErrUnknownQuestion) ||
			errors.Is(err, query.ErrNotSupported) || errors.Is(err, query.ErrAmbiguous) {
			return &usageError{err}
		}
		return err
	}
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
	return res.Fit(c.App.Writer, format, tableWidth(c, format == query.Wide))
}

// dbPath is --db, $CIP_DB or the default path (query never creates it).
func dbPath(c *cli.Context) (string, error) {
	if p := c.String("db"); p != "" {
		return p, nil
	}
	return inventory.DefaultPath()
}
