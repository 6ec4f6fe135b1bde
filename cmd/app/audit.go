package app

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/audit"
	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

var auditOutputFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"CIP_AUDIT_OUTPUT"}, Value: "table",
	Usage: "findings `FORMAT`: table, wide (a table with every cell in full), json, yaml or github (workflow-command annotations)"}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "report what production holds that no manifest promotes (and what it lacks)",
		ArgsUsage: "[REG...]",
		Description: `Syncs the manifests' destination registries (incrementally; every tag is
confirmed with a HEAD, so a tag moved behind cip's back is seen), then
reports from the inventory every difference from the manifests:
   not-in-manifest     a digest no manifest promotes into its repository
   tag-mismatch        a tag at another digest than the manifests', or a tag
                       no manifest gives that digest
   unknown-repository  a repository no manifest promotes into
   deletion            a promoted digest or tag that the tag history saw go
   missing             a promoted digest or tag that is not there (not promoted
                       yet, or deleted before cip first saw it)
Children of promoted indexes and signatures, attestations and SBOMs of
promoted digests (cosign's sha256-<hex>.sig/.att/.sbom tags, the OCI
referrers tag sha256-<hex>, and untagged referrers the inventory records
with their subject: the referrers API's, a manifest's subject field) are
accounted for, and so are their own referrers (3 levels). REG limits the audit to
registries or paths below them; --offline reads the inventory as it stands.

Exit codes: 0 nothing found, 1 findings (or a runtime failure), 2 invalid
manifests or flags.

"cip audit serve" judges each change as it happens instead (see
"cip audit serve --help").

Examples:
   cip audit --thin-manifest-dir ./registry.k8s.io
   cip audit --manifest promoter-manifest.yaml us.gcr.io/k8s-artifacts-prod -o json
   cip audit --thin-manifest-dir ./registry.k8s.io --offline --output github`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag, auditOutputFlag,
			&cli.BoolFlag{Name: "offline", EnvVars: []string{"CIP_OFFLINE"}, Usage: "audit the inventory as it stands (after a cip sync), with no registry request"},
		}, registryFlags()...),
		Action:      runAudit,
		Subcommands: []*cli.Command{auditServeCommand()},
	}
}

func runAudit(c *cli.Context) error {
	format := c.String("output")
	switch format {
	case "table", "wide", "json", "yaml", "github":
	default:
		return usagef("audit: --output %q: want table, wide, json, yaml or github", format)
	}
	scopes := c.Args().Slice()
	for _, s := range scopes {
		if err := checkRef(s); err != nil {
			return err
		}
	}
	set, err := loadManifests(c)
	if err != nil {
		return err
	}
	policy := audit.NewPolicy(set)
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(scopes) == 0 {
		scopes = policy.Destinations()
	}
	var opts audit.ScanOptions
	if !c.Bool("offline") {
		targets := make([]cipsync.Target, len(scopes))
		for i, s := range scopes {
			targets[i] = cipsync.Target{Ref: s}
		}
		prog := newProgress(c)
		client, keepQuotas := newInventoryClient(c, db, set, prog)
		defer keepQuotas()
		res, err := cipsync.Run(c.Context, db, client, targets, cipsync.Options{Jobs: c.Int("jobs"), Progress: prog.sync()})
		prog.synced(res)
		if err != nil {
			return err
		}
		opts = audit.ScanOptions{Present: audit.LivePresence(client), Jobs: c.Int("jobs")}
	}
	findings, err := audit.Scan(c.Context, db, policy, scopes, opts)
	if err != nil {
		return err
	}
	if err := writeAuditFindings(c.App.Writer, format, findings, tableWidth(c, format == "wide")); err != nil {
		return err
	}
	newProgress(c).info("audit", fmt.Sprintf("audit: %s under %s", countFindings(findings), strings.Join(scopes, ", ")),
		slog.Int("findings", len(findings)), slog.String("scopes", strings.Join(scopes, ", ")))
	if len(findings) > 0 {
		return cli.Exit("", ExitRuntime)
	}
	return nil
}

// countFindings says "N findings (a reason-x, b reason-y)" or "nothing found".
func countFindings(fs []audit.Finding) string {
	if len(fs) == 0 {
		return "nothing found"
	}
	by := map[audit.Reason]int{}
	for _, f := range fs {
		by[f.Reason]++
	}
	var parts []string
	for r, n := range by {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d findings (%s)", len(fs), strings.Join(parts, ", "))
}

func writeAuditFindings(w io.Writer, format string, fs []audit.Finding, width int) error {
	switch format {
	case "json", "yaml":
		if fs == nil {
			fs = []audit.Finding{}
		}
		return writeData(w, format, fs)
	case "github":
		for _, f := range fs {
			props := []string{"title=" + ghProperty("cip audit "+string(f.Reason))}
			if f.File != "" {
				props = append([]string{"file=" + ghProperty(f.File), "line=" + strconv.Itoa(f.Line)}, props...)
			}
			if _, err := fmt.Fprintf(w, "::error %s::%s\n", strings.Join(props, ","), ghData(f.Detail)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(fs) == 0 {
		return nil
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	var rows [][]string
	for _, f := range fs {
		tag := f.Tag
		if tag == "" {
			tag = strings.Join(f.Tags, ",")
		}
		where := ""
		if f.File != "" {
			where = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		rows = append(rows, []string{string(f.Reason), f.Repository, dash(f.Digest), dash(tag), dash(f.Want), dash(f.Since), dash(where)})
	}
	cols := table.Columns("REASON", "REPOSITORY", "DIGEST", "TAG", "WANT", "SINCE")
	cols = append(cols, table.Column{Name: "MANIFEST", Fit: table.CutStart})
	return writeTable(w, cols, rows, width)
}

func auditServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "judge registry notifications against the manifests, as they happen",
		Description: `An HTTP server for the production registries' change notifications:
POST /events takes distribution's envelope (docker-registry's
notifications.endpoints) or a GCR / Artifact Registry Pub/Sub push. Each
manifest push or deletion gets a verdict, VERIFIED or REJECTED with its
reason (see "cip audit --help"); deletions are always rejected, pulls and
blob uploads are not judged. Verdicts go to stdout as JSON lines (log/slog),
to the inventory's audit_events table (one row per event id: a redelivered
event counts once) and to GET /metrics (Prometheus). GET /healthz answers
while the process runs, GET /readyz once the manifests' source repositories
are synced (so that the children of promoted indexes are known; --offline
skips that and trusts the inventory).

A pushed manifest the inventory does not hold is read from its repository
(one GET, its bytes checked against the event's digest; at most 3 per
event, up a chain of referrers): an OCI 1.1 referrer pushed by digest,
untagged, is verified when its subject field names something that belongs
there. --offline reads nothing, and such a referrer is rejected until the
inventory records it.

Every request to /events and /metrics needs the token in --token-file, as
"Authorization: Bearer TOKEN" (docker-registry: the endpoint's headers) or
"?token=TOKEN" (a Pub/Sub push subscription's URL). Bodies are capped at
1 MiB and 100 events; malformed JSON is a 400.

The manifests are reloaded when their files change (polled every
--reload-interval) or on SIGHUP, validated first: an invalid change keeps
the last good set and logs so. SIGTERM or SIGINT stops taking requests and
waits up to 10 s for those in flight. Diagnostics go to stderr as JSON.

Examples:
   cip audit serve --thin-manifest-dir ./registry.k8s.io --token-file /etc/cip/token
   cip audit serve --manifest promoter-manifest.yaml --token-file token --listen 0.0.0.0:8080 --db /var/lib/cip/audit.db`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag,
			&cli.StringFlag{Name: "listen", EnvVars: []string{"CIP_LISTEN"}, Value: "127.0.0.1:8080", Usage: "`ADDRESS` to serve on (host:port)"},
			&cli.StringFlag{Name: "token-file", EnvVars: []string{"CIP_TOKEN_FILE"}, Usage: "`FILE` holding the token requests must carry (at least 16 bytes; required)"},
			&cli.DurationFlag{Name: "reload-interval", EnvVars: []string{"CIP_RELOAD_INTERVAL"}, Value: audit.DefaultPollInterval, Usage: "how often to check the manifests for changes (`DURATION`)"},
			&cli.BoolFlag{Name: "offline", EnvVars: []string{"CIP_OFFLINE"}, Usage: "do not sync the manifests' sources; judge index children from the inventory as it stands"},
		}, registryFlags()...),
		Action: runAuditServe,
	}
}

func runAuditServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("audit serve takes no arguments (got %q)", c.Args().First())
	}
	file, dir := c.String("manifest"), c.String("thin-manifest-dir")
	if (file == "") == (dir == "") {
		return usagef("give exactly one of --manifest or --thin-manifest-dir")
	}
	if c.String("token-file") == "" {
		return usagef("audit serve: --token-file is required (the token every request must carry)")
	}
	raw, err := os.ReadFile(c.String("token-file"))
	if err != nil {
		return usagef("audit serve: read --token-file: %v", err)
	}
	token := bytes.TrimSpace(raw)
	if len(token) < audit.MinTokenBytes {
		return usagef("audit serve: the token in %s has %d bytes, want at least %d (e.g. head -c 32 /dev/urandom | base64)", c.String("token-file"), len(token), audit.MinTokenBytes)
	}
	if c.Duration("reload-interval") <= 0 {
		return usagef("audit serve: --reload-interval must be positive")
	}
	level := slog.LevelInfo
	if c.Bool("quiet") {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewJSONHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	verdicts := slog.New(slog.NewJSONHandler(c.App.Writer, nil))
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	// The client that reads pushed manifests is made anew for each set
	// loaded: its service accounts are the set's, and a registry given up
	// (its retry budget spent) is tried again after a reload.
	var reader atomic.Pointer[registry.Client]
	opts := audit.ServerOptions{
		Store: db, Token: token, Logger: logger, Verdicts: verdicts,
		Load: func() (*manifest.Set, error) {
			set, err := manifest.Load(file, dir, manifest.Options{SkipInvalid: c.Bool("skip-invalid")})
			if err == nil && !c.Bool("offline") {
				reader.Store(newClient(c, set, warningsOnly(c)))
			}
			return set, err
		},
		Watch:        []string{cmp.Or(file, dir)},
		PollInterval: c.Duration("reload-interval"),
	}
	if !c.Bool("offline") {
		opts.Read = func(ctx context.Context, repo, digest string) (registry.Manifest, error) {
			return audit.LiveManifests(reader.Load())(ctx, repo, digest)
		}
		opts.Refresh = func(ctx context.Context, set *manifest.Set) error {
			_, err := cipsync.Run(ctx, db, newClient(c, set, warningsOnly(c)), sourceTargets(set), cipsync.Options{Jobs: c.Int("jobs")})
			return err
		}
	}
	srv, err := audit.NewServer(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("audit serve: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-c.Context.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading the manifests")
				srv.Reload(c.Context) //nolint:errcheck // logged; the last good set stays
			}
		}
	}()
	return srv.Serve(c.Context, ln)
}

// sourceTargets lists the source repositories of every promotion, crawled
// exactly: what `cip audit serve` syncs so that the inventory knows the
// children of the indexes the manifests promote.
func sourceTargets(set *manifest.Set) []cipsync.Target {
	seen := map[string]bool{}
	for _, m := range set.Manifests {
		src := m.Source().Name
		for _, img := range m.Images {
			seen[src+"/"+img.Name] = true
		}
	}
	out := make([]cipsync.Target, 0, len(seen))
	for r := range seen {
		out = append(out, cipsync.Target{Ref: r, Exact: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}
