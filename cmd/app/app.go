// Package app is cip's command line: it turns flags into options, calls one
// library function per command and renders the result. It is shared by the
// cip and kubectl-cip binaries.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/internal/memprof"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitRuntime     = 1   // a registry, network or inventory failure
	ExitUsage       = 2   // bad flags or invalid manifests
	ExitInterrupted = 130 // SIGINT (Ctrl-C), as shells report a process it killed: 128 + the signal's number
)

// usageError marks errors that exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// interrupted is what a run stopped by an interrupt says: how far it
// got (promote: "interrupted: 3 of 10 copies done; rerun to finish").
type interrupted struct {
	msg string
	err error
}

func (e *interrupted) Error() string { return e.msg }
func (e *interrupted) Unwrap() error { return e.err }

// signalled is the cause of a context cancelled by a signal.
type signalled struct{ sig os.Signal }

func (s *signalled) Error() string { return "interrupted by " + s.sig.String() }

// exitCode is the shell's code for a process a signal stopped: 128 plus
// its number (130 for SIGINT, 143 for SIGTERM).
func (s *signalled) exitCode() int {
	if n, ok := s.sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return ExitInterrupted
}

// Main runs the process's command line as name ("cip" or "kubectl cip"),
// cancelled by SIGINT or SIGTERM, and exits with Run's code: the whole of
// cmd/cip and cmd/kubectl-cip. A first signal cancels the run, which
// stops at the next safe point and says how far it got; a second one
// exits at once (the inventory survives even that: every write is one
// transaction).
func Main(name string) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(&signalled{sig})
		sig = <-sigs
		os.Exit((&signalled{sig}).exitCode())
	}()
	code := Run(ctx, name, os.Args, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}

// Run runs the command line args (args[0] is the program) and returns the
// exit code. name is how the program is invoked ("cip" or "kubectl cip").
// A run cut short by ctx (Main's signals) exits 130 (128 + the signal).
func Run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	// CIP_CPUPROFILE=FILE writes a CPU profile of the run, for speed work
	// (bench/RESULTS.md); an environment variable, not a flag, since users
	// never need it.
	if path := os.Getenv("CIP_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() {
				pprof.StopCPUProfile()
				f.Close()
			}()
		}
	}
	// CIP_MEMPROFILE=FILE writes a heap profile near the run's peak
	// (internal/memprof), for memory work.
	if path := os.Getenv("CIP_MEMPROFILE"); path != "" {
		stop := memprof.Start(path, 250*time.Millisecond)
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "write heap profile %s: %v\n", path, err)
			}
		}()
	}
	app := newApp(name, stdout, stderr)
	if len(args) > 1 && args[1] == "__complete" {
		completeWords(app, args[2:], stdout) // kubectl's plugin completion (kubectl_complete-cip)
		return ExitOK
	}
	st := app.Metadata[stateKey].(*runState)
	stderr = app.ErrWriter
	if n := len(args); n > 0 && args[n-1] == "--generate-bash-completion" {
		// urfave/cli v2.27 panics completing a partial flag (`cip sync --j`)
		// when short-option handling is on.
		app.UseShortOptionHandling = false
	}
	notFound := false
	app.CommandNotFound = func(c *cli.Context, cmd string) {
		fmt.Fprintln(stderr, commandNotFound(name, c.App, cmd))
		notFound = true
	}
	err := app.RunContext(ctx, reorderArgs(app, args))
	code := exitCode(ctx, name, stderr, err)
	if notFound {
		code = ExitUsage
	}
	if st.metricsFile != "" {
		if err := st.writeMetrics(code, time.Now()); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			if code == ExitOK {
				code = ExitRuntime
			}
		}
	}
	return code
}

// exitCode prints err (once) and returns the exit code it means.
func exitCode(ctx context.Context, name string, stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil {
		// Cut short: say how far it got instead of "context canceled".
		msg := "interrupted; rerun to finish"
		var in *interrupted
		if errors.As(err, &in) {
			msg = in.msg
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		var sig *signalled
		if errors.As(context.Cause(ctx), &sig) {
			return sig.exitCode()
		}
		return ExitInterrupted
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, err)
	if inventory.IsDamaged(err) && !strings.Contains(err.Error(), "inventory rebuild") {
		// SQLite found the file malformed while a command read it.
		fmt.Fprintf(stderr, "%s: the inventory is damaged: run '%s inventory check' to see what, and '%s inventory rebuild' to rebuild it from the registries\n", name, name, name)
	}
	var ue *usageError
	var ve *manifest.ValidationError
	if errors.As(err, &ue) || errors.As(err, &ve) {
		return ExitUsage
	}
	return ExitRuntime
}

// Flags shared by several commands.
var (
	dbFlag = &cli.StringFlag{Name: "db", EnvVars: []string{"CIP_DB"},
		Usage: "inventory `PATH` (default: cip/inventory.db under the user cache dir)"}
	quietFlag = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"CIP_QUIET"},
		Usage: "print no progress on stderr"}
	logFormatFlag = &cli.StringFlag{Name: "log-format", EnvVars: []string{"CIP_LOG_FORMAT"}, Value: logText,
		Usage: "stderr `FORMAT`: text (lines for people), or json (one JSON object per line, log/slog's)",
		Action: func(_ *cli.Context, v string) error {
			if v != logText && v != logJSON {
				return usagef("--log-format %q: want text or json", v)
			}
			return nil
		}}
	heartbeatFlag = &cli.DurationFlag{Name: "heartbeat", EnvVars: []string{"CIP_HEARTBEAT"}, Value: DefaultHeartbeat, Action: atLeast[time.Duration]("heartbeat", 0),
		Usage: "when stderr is not a terminal (a CI log), log sync and promote progress every `DURATION` (0: never)"}
	metricsFileFlag = &cli.StringFlag{Name: "metrics-file", EnvVars: []string{"CIP_METRICS_FILE"},
		Usage: "write the run's metrics to `FILE` in Prometheus text format (for node-exporter's textfile collector), atomically"}
	jobsFlag = &cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, EnvVars: []string{"CIP_JOBS"}, Value: cipsync.DefaultJobs,
		Usage: "registry requests in flight per registry host (the hosts are worked side by side)", Action: atLeast("jobs", 1)}
	confirmTTLFlag = &cli.DurationFlag{Name: "confirm-ttl", EnvVars: []string{"CIP_CONFIRM_TTL"}, Action: atLeast[time.Duration]("confirm-ttl", 0),
		Usage: "trust what cip confirmed live less than `DURATION` ago (e.g. 1h; 0, the default, confirms everything): promote plans a destination repository whose wanted images did not change from the inventory, with no request, and a crawl takes a tag the registry still lists from the inventory without a HEAD"}
	tagTTLFlag = &cli.DurationFlag{Name: "tag-ttl", EnvVars: []string{"CIP_TAG_TTL"}, Action: atLeast[time.Duration]("tag-ttl", 0),
		Usage: "deprecated: the old name of --confirm-ttl (`DURATION`)"}
	fullFlag = &cli.BoolFlag{Name: "full", EnvVars: []string{"CIP_FULL"},
		Usage: "confirm everything live, whatever --confirm-ttl says (as cip verify does)"}
	qpsFlag = &cli.Float64Flag{Name: "qps", EnvVars: []string{"CIP_QPS"}, Action: atLeast[float64]("qps", 0),
		Usage: "ceiling of requests per second to each registry host (0: none; the pace adapts to 429 answers either way)"}
	hostsConfigFlag = &cli.StringFlag{Name: "hosts-config", EnvVars: []string{"CIP_HOSTS_CONFIG"},
		Usage: "YAML `FILE` of known limits per registry host (qps, jobs; patterns such as *-docker.pkg.dev)",
		Action: func(c *cli.Context, file string) error {
			cfg, err := registry.LoadHostsConfig(file)
			if err != nil {
				return &usageError{err}
			}
			c.App.Metadata[hostsConfigKey] = cfg
			return nil
		}}
	insecureFlag = &cli.StringSliceFlag{Name: "insecure-registry", EnvVars: []string{"CIP_INSECURE_REGISTRY"},
		Usage: "registry `HOST` to speak plain HTTP to (loopback hosts need no flag); repeatable"}
	manifestFlag = &cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, EnvVars: []string{"CIP_MANIFEST"},
		Usage: "plain promoter manifest `FILE`"}
	thinDirFlag = &cli.StringFlag{Name: "thin-manifest-dir", EnvVars: []string{"CIP_THIN_MANIFEST_DIR"},
		Usage: "thin-manifest `DIR` (holding images/ and manifests/)"}
	referrersFlag = &cli.StringFlag{Name: "referrers", EnvVars: []string{"CIP_REFERRERS"}, Value: "all",
		Usage: "referrers that travel with each digest (signatures, attestations, SBOMs): `WHICH` is all, none, signatures (cosign, sigstore bundles, notation) or artifact types, comma separated"}
	skipInvalidFlag = &cli.BoolFlag{Name: "skip-invalid", EnvVars: []string{"CIP_SKIP_INVALID"},
		Usage: "skip invalid manifest entries (warning on stderr) instead of stopping"}
	useServiceAccountFlag = &cli.BoolFlag{Name: "use-service-account", EnvVars: []string{"CIP_USE_SERVICE_ACCOUNT"},
		Usage: "authenticate to a Google registry as the service-account its manifest names (gcloud impersonation) instead of with ambient credentials"}
)

// How cip talks to registries: timeouts, retry budgets, listing caps.
var (
	dialTimeoutFlag = &cli.DurationFlag{Name: "dial-timeout", EnvVars: []string{"CIP_DIAL_TIMEOUT"}, Value: registry.DefaultDialTimeout,
		Usage: "give up connecting to a registry host after `DURATION` (0: never)", Action: nonNegative[time.Duration]("dial-timeout")}
	tlsTimeoutFlag = &cli.DurationFlag{Name: "tls-handshake-timeout", EnvVars: []string{"CIP_TLS_HANDSHAKE_TIMEOUT"}, Value: registry.DefaultTLSHandshakeTimeout,
		Usage: "give up a TLS handshake with a registry after `DURATION` (0: never)", Action: nonNegative[time.Duration]("tls-handshake-timeout")}
	responseTimeoutFlag = &cli.DurationFlag{Name: "response-header-timeout", EnvVars: []string{"CIP_RESPONSE_HEADER_TIMEOUT"}, Value: registry.DefaultResponseHeaderTimeout,
		Usage: "give up a request the registry has not answered `DURATION` after it was sent (0: never)", Action: nonNegative[time.Duration]("response-header-timeout")}
	idleTimeoutFlag = &cli.DurationFlag{Name: "idle-timeout", EnvVars: []string{"CIP_IDLE_TIMEOUT"}, Value: registry.DefaultIdleTimeout,
		Usage: "give up a transfer, blob streams included, that moves no byte for `DURATION` (0: never)", Action: nonNegative[time.Duration]("idle-timeout")}
	requestTimeoutFlag = &cli.DurationFlag{Name: "request-timeout", EnvVars: []string{"CIP_REQUEST_TIMEOUT"}, Value: registry.DefaultRequestTimeout,
		Usage: "give up a request, blob streams excepted, that takes longer than `DURATION` in all (0: never)", Action: nonNegative[time.Duration]("request-timeout")}
	retryBudgetFlag = &cli.IntFlag{Name: "retry-budget", EnvVars: []string{"CIP_RETRY_BUDGET"}, Value: registry.DefaultHostRetryBudget,
		Usage: "retries one registry host may cost a run (a timeout counts 10), beyond one earned back per answer; then cip gives up on the host (0: no retries)", Action: nonNegative[int]("retry-budget")}
	runRetryBudgetFlag = &cli.IntFlag{Name: "run-retry-budget", EnvVars: []string{"CIP_RUN_RETRY_BUDGET"}, Value: registry.DefaultRunRetryBudget,
		Usage: "the same budget for all registry hosts together (0: no retries)", Action: nonNegative[int]("run-retry-budget")}
	maxTagsFlag = &cli.IntFlag{Name: "max-tags", EnvVars: []string{"CIP_MAX_TAGS"}, Value: registry.DefaultMaxTags,
		Usage: "refuse a repository whose tag listing holds more than `N` entries (tags; with GCR's listing also digests and their tags)", Action: positive("max-tags")}
	maxReposFlag = &cli.IntFlag{Name: "max-repositories", EnvVars: []string{"CIP_MAX_REPOSITORIES"}, Value: registry.DefaultMaxRepositories,
		Usage: "refuse a catalog (or GCR child walk) of more than `N` repositories", Action: positive("max-repositories")}
	maxPagesFlag = &cli.IntFlag{Name: "max-pages", EnvVars: []string{"CIP_MAX_PAGES"}, Value: registry.DefaultMaxPages,
		Usage: "refuse a tag listing or catalog of more than `N` pages", Action: positive("max-pages")}
)

// confirmTTL reads --confirm-ttl, or the deprecated --tag-ttl (with a
// warning) when only that is given.
func confirmTTL(c *cli.Context, prog progress) time.Duration {
	if !c.IsSet("confirm-ttl") && c.IsSet("tag-ttl") {
		prog.warn("deprecated flag", "--tag-ttl (CIP_TAG_TTL) is deprecated: use --confirm-ttl (CIP_CONFIRM_TTL); it also lets promote take unchanged destination repositories from the inventory",
			slog.String("flag", "tag-ttl"), slog.String("use", "confirm-ttl"))
		return c.Duration("tag-ttl")
	}
	return c.Duration("confirm-ttl")
}

func registryFlags() []cli.Flag {
	return []cli.Flag{jobsFlag, qpsFlag, hostsConfigFlag, insecureFlag, useServiceAccountFlag, dialTimeoutFlag, tlsTimeoutFlag, responseTimeoutFlag,
		idleTimeoutFlag, requestTimeoutFlag, retryBudgetFlag, runRetryBudgetFlag, maxTagsFlag, maxReposFlag, maxPagesFlag}
}

func nonNegative[T int | time.Duration](name string) func(*cli.Context, T) error {
	return func(_ *cli.Context, v T) error {
		if v < 0 {
			return usagef("--%s must not be negative", name)
		}
		return nil
	}
}

func positive(name string) func(*cli.Context, int) error {
	return func(_ *cli.Context, v int) error {
		if v < 1 {
			return usagef("--%s must be at least 1", name)
		}
		return nil
	}
}

// referrersOf reads --referrers (exit 2 when it is not a selection).
func referrersOf(c *cli.Context) (referrer.Selection, error) {
	sel, err := referrer.ParseSelection(c.String("referrers"))
	if err != nil {
		return referrer.Selection{}, usagef("%v", err)
	}
	return sel, nil
}

// hostsConfigKey holds, in the app's Metadata, the --hosts-config its
// flag's action read.
const hostsConfigKey = "hosts-config"

func newApp(name string, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      name,
		Usage:     "promote container images between registries, planned over a local SQLite inventory",
		Version:   version(),
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     []cli.Flag{dbFlag, quietFlag, logFormatFlag, heartbeatFlag, metricsFileFlag},
		// Errors are printed once, by Run.
		ExitErrHandler:         func(*cli.Context, error) {},
		HideHelpCommand:        true,
		UseShortOptionHandling: true,
		EnableBashCompletion:   true,
		Commands: []*cli.Command{
			validateCommand(),
			syncCommand(),
			snapshotCommand(),
			queryCommand(),
			promoteCommand(),
			verifyCommand(),
			runCommand(),
			versionCommand(),
			completionCommand(),
			checkCommand(),
			fmtCommand(),
			auditCommand(),
			inventoryCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return flagUsageError(c, err) },
	}
	st := &runState{start: time.Now()}
	app.Metadata = map[string]any{stateKey: st}
	app.ErrWriter = &syncWriter{w: stderr}
	app.Before = func(c *cli.Context) error {
		st.metricsFile = c.String("metrics-file")
		return nil
	}
	setupCommands(app, name)
	return app
}

// openDB opens the inventory named by --db, $CIP_DB or the default path.
func openDB(c *cli.Context) (*inventory.DB, error) {
	path := c.String("db")
	if path == "" {
		p, err := inventory.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	return inventory.Open(c.Context, path)
}

// progressWriter returns stderr unless --quiet, and whether it is a
// terminal (for live progress).
func progressWriter(c *cli.Context) (io.Writer, bool) {
	if c.Bool("quiet") {
		return nil, false
	}
	return c.App.ErrWriter, terminal(c.App.ErrWriter)
}

// newClient returns the run's registry client: clientOptions, and a
// Transport built from the registry flags that logs retries and failures
// on stderr (Warn only with --quiet; above the live line on a terminal),
// shows its retries on the live line, and is counted for --metrics-file.
// Credentials are ambient (docker config, credential helpers, the Google
// keychain) unless --use-service-account borrows the service accounts
// set's manifests name (set may be nil: none); the registry package uses
// an account on Google registries only.
func newClient(c *cli.Context, set *manifest.Set, prog progress) *registry.Client {
	return newClientQuotas(c, set, prog, nil)
}

// quotaMemory is how long a quota a run measured starts the next runs'
// paces: a week, so that daily and hourly promotions meet each quota at
// most once a week; a quota raised meanwhile is found by the slow climb
// past the plateau (1% of it per 10 s under load), or at once with the
// hosts config's qps.
const quotaMemory = 7 * 24 * time.Hour

// newInventoryClient is newClient for a command with an inventory: each
// host and project starts its pace from the quota an earlier run measured
// there (within quotaMemory), and the returned function, deferred, keeps
// the quotas this run measured for the next (a failure to is a warning:
// nothing of the run's own is lost).
func newInventoryClient(c *cli.Context, db *inventory.DB, set *manifest.Set, prog progress) (*registry.Client, func()) {
	var quotas []registry.Quota
	kept, err := db.Quotas(c.Context, db.Now().Add(-quotaMemory))
	if err != nil {
		prog.warn("read quotas", fmt.Sprintf("%v (each host starts at its guess)", err), slog.String("error", err.Error()))
	}
	for _, q := range kept {
		quotas = append(quotas, registry.Quota{Host: q.Host, Project: q.Project, QPS: q.QPS, MeasuredAt: q.MeasuredAt})
	}
	client := newClientQuotas(c, set, prog, quotas)
	return client, func() {
		var measured []inventory.Quota
		for _, q := range client.Transport().MeasuredQuotas() {
			measured = append(measured, inventory.Quota{Host: q.Host, Project: q.Project, QPS: q.QPS, MeasuredAt: q.MeasuredAt})
		}
		// Under a context of its own: a run cut short (Ctrl-C) still
		// keeps what it measured.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 10*time.Second)
		defer cancel()
		if err := db.RecordQuotas(ctx, measured); err != nil {
			prog.warn("keep quotas", err.Error(), slog.String("error", err.Error()))
		}
	}
}

func newClientQuotas(c *cli.Context, set *manifest.Set, prog progress, quotas []registry.Quota) *registry.Client {
	// A flag's 0 means none (no timeout, no retry); the library's 0 means
	// its default.
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	none := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	logOut := io.Writer(c.App.ErrWriter)
	if prog.notes != nil {
		logOut = prog.notes
	}
	hosts, _ := c.App.Metadata[hostsConfigKey].(*registry.HostsConfig)
	tr := registry.NewTransport(registry.TransportOptions{
		QPS:                   c.Float64("qps"),
		Jobs:                  c.Int("jobs"),
		Hosts:                 hosts,
		Quotas:                quotas,
		DialTimeout:           off(c.Duration("dial-timeout")),
		TLSHandshakeTimeout:   off(c.Duration("tls-handshake-timeout")),
		ResponseHeaderTimeout: off(c.Duration("response-header-timeout")),
		IdleTimeout:           off(c.Duration("idle-timeout")),
		RequestTimeout:        off(c.Duration("request-timeout")),
		HostRetryBudget:       none(c.Int("retry-budget")),
		RunRetryBudget:        none(c.Int("run-retry-budget")),
		Logger:                transportLogger(c, logOut),
		Events:                prog.notes.event,
	})
	state(c).addTransport(tr)
	opts := clientOptions(c, set)
	opts.Transport = tr
	opts.Warn = func(msg string) { prog.warn("registry", msg) }
	return registry.New(opts)
}

func clientOptions(c *cli.Context, set *manifest.Set) registry.Options {
	var accounts map[string]string
	if c.Bool("use-service-account") && set != nil {
		accounts = serviceAccounts(set)
	}
	return registry.Options{Insecure: c.StringSlice("insecure-registry"), ServiceAccounts: accounts,
		MaxTags: c.Int("max-tags"), MaxRepositories: c.Int("max-repositories"), MaxPages: c.Int("max-pages")}
}

// transportLogger is the registry transport's logger: its retries (Info for
// a 429, Warn otherwise) and requests given up (Warn), on stderr as JSON
// with --log-format json, else as key=value text without a timestamp
// (stderr's other lines have none).
func transportLogger(c *cli.Context, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if c.Bool("quiet") {
		opts.Level = slog.LevelWarn
	}
	if c.String("log-format") == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadManifests loads --manifest or --thin-manifest-dir; warnings (what
// --skip-invalid skipped, and the notices: a stale imagesPath, a service
// account cip will not use) go to stderr.
func loadManifests(c *cli.Context) (*manifest.Set, error) {
	file, dir := c.String("manifest"), c.String("thin-manifest-dir")
	if (file == "") == (dir == "") {
		return nil, usagef("give exactly one of --manifest or --thin-manifest-dir")
	}
	set, err := manifest.Load(file, dir, manifest.Options{SkipInvalid: c.Bool("skip-invalid")})
	if err != nil {
		var ve *manifest.ValidationError
		if errors.As(err, &ve) {
			return nil, err
		}
		return nil, &usageError{err}
	}
	for _, w := range set.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "warning: skipped: %s\n", w)
	}
	for _, n := range set.Notices {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", n)
	}
	return set, nil
}

// serviceAccounts maps each registry of the set to its service account.
func serviceAccounts(set *manifest.Set) map[string]string {
	out := map[string]string{}
	for _, m := range set.Manifests {
		for _, r := range m.Registries {
			if r.ServiceAccount != "" {
				out[r.Name] = r.ServiceAccount
			}
		}
	}
	return out
}
