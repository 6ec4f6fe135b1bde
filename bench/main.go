// Command bench measures cip against its peers on real registries: it
// starts docker-registry servers (in-memory storage, loopback) behind
// counting reverse proxies, seeds deterministic workloads, and runs, in
// alternating rounds, `cip promote --confirm`, `crane copy` of each tag (8
// processes at once), `regsync once` (parallel 8) and a plain push of the
// same content from memory, each cold (fresh empty destination) and warm (a
// no-op rerun); and `cip sync` against a `crane ls` + `crane digest` loop
// for the crawl. It writes medians, ratios, request counts, bytes and peak
// RSS to a Markdown report.
//
// Usage (make bench-compare runs bench/run.sh, which builds the pinned
// peers into bench/.bin first):
//
//	go run ./bench -bin bench/.bin -out bench/RESULTS.md
//	go run ./bench -bin bench/.bin -workloads W200 -rounds 3 -tools cip,regsync
//
// With -wan it runs the WAN benchmark of issue 17 instead (wanbench.go;
// make bench-wan runs bench/wan.sh):
//
//	go run ./bench -wan -bin bench/.bin -scale 1/16 -scenarios a,b,c -out /tmp/wan.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Config is one bench invocation.
type Config struct {
	Bin       string
	Out       string
	Rounds    int
	Workloads []string
	Tools     []string
	Work      string
	Log       io.Writer
}

func run(ctx context.Context, args []string, log io.Writer) error {
	if len(args) > 0 && args[0] == "-serve-wan" {
		return serveWAN(ctx, args[1:], os.Stdin, os.Stdout, log)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := Config{Log: log}
	fs.StringVar(&cfg.Bin, "bin", "bench/.bin", "directory holding the cip, crane and regsync binaries (and cip-base, a baseline build run beside cip when present)")
	fs.StringVar(&cfg.Out, "out", "", "write the Markdown report to `FILE` (default: stdout)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "alternating rounds per workload (medians are over rounds)")
	workloads := fs.String("workloads", "W200,W200x3,W2000,Wbig,"+signedWorkload, "comma-separated workloads: W200, W200x3, W2000 (crawl), Wbig, W200signed (W200 with every image signed)")
	tools := fs.String("tools", "", "comma-separated promoters to compare: cip, regsync, crane, push (default: per workload, see defaultTools; the crawl always uses cip and crane)")
	fs.StringVar(&cfg.Work, "work", "", "scratch `DIR` (default: a new temporary directory, removed after)")
	serve := fs.String("serve", "", "seed `WORKLOAD`'s source and fresh destinations, print a cip command line for them, and keep them up until interrupted (for profiling by hand)")
	wan := fs.Bool("wan", false, "run the WAN benchmark (issue 17) instead: a k8s-shaped tree on simulated quota-limited hosts (flags below)")
	var wcfg WANConfig
	wcfg.Setup.register(fs)
	scenarios := fs.String("scenarios", strings.Join(DefaultWANScenarios, ","), "with -wan: comma-separated scenarios: "+strings.Join(wanScenarios, ", "))
	regsync := fs.String("regsync", "", "with -wan: the regsync `BINARY` (default: regsync in -bin)")
	jsonOut := fs.String("json", "", "with -wan: also write every run's counts as JSON to `FILE`")
	render := fs.String("render", "", "with -wan: run nothing, render the Markdown report of a -json `FILE` to -out")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return serveWorkload(ctx, *serve, log)
	}
	if *wan && *render != "" {
		return renderWAN(*render, cfg.Out)
	}
	if *wan {
		wcfg.Scenarios = strings.Split(*scenarios, ",")
		wcfg.Log = log
		bin, err := filepath.Abs(cfg.Bin)
		if err != nil {
			return err
		}
		wcfg.Cip, wcfg.Regsync = filepath.Join(bin, "cip"), *regsync
		if wcfg.Regsync == "" {
			wcfg.Regsync = filepath.Join(bin, "regsync")
		}
		return runWANCommand(ctx, wcfg, cfg.Work, cfg.Out, *jsonOut, args)
	}
	cfg.Workloads = strings.Split(*workloads, ",")
	if *tools != "" {
		cfg.Tools = strings.Split(*tools, ",")
	}
	for _, w := range cfg.Workloads {
		if _, ok := shapes[w]; !ok {
			return fmt.Errorf("unknown workload %q", w)
		}
	}
	if cfg.Rounds < 1 {
		return fmt.Errorf("-rounds must be at least 1")
	}
	if cfg.Work == "" {
		dir, err := os.MkdirTemp("", "cip-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Work = dir
	}
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return err
	}
	cfg.Bin = bin
	rep, err := Bench(ctx, cfg)
	if err != nil {
		return err
	}
	var out io.Writer = os.Stdout
	var keep string
	if cfg.Out != "" {
		keep = wanSection(cfg.Out)
		f, err := os.Create(cfg.Out)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if err := rep.Write(out); err != nil {
		return err
	}
	if keep != "" {
		_, err = io.WriteString(out, "\n"+keep)
	}
	return err
}

// wanSectionHeading starts the WAN benchmark's section of RESULTS.md,
// which `make bench-wan` measures and this harness does not: rewriting
// the report keeps it.
const wanSectionHeading = "## WAN (issue 17)"

// wanSection returns the WAN section of the report file (up to the next
// second-level heading), or "".
func wanSection(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.Index(s, "\n"+wanSectionHeading+"\n")
	if i < 0 {
		return ""
	}
	s = s[i+1:]
	if j := strings.Index(s[len(wanSectionHeading):], "\n## "); j >= 0 {
		s = s[:len(wanSectionHeading)+j+1]
	}
	return strings.TrimRight(s, "\n") + "\n"
}

// Bench runs the configured workloads and returns the report.
func Bench(ctx context.Context, cfg Config) (*Report, error) {
	e, err := newToolEnv(cfg.Bin, cfg.Work)
	if err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Rounds: cfg.Rounds, Machine: machine(), Versions: versions(ctx, e)}
	canPromote := cipCanPromote(ctx, e)
	if !canPromote {
		rep.Notes = append(rep.Notes, "`cip promote` is not available in this build: cip was left out of the promotion workloads.")
	}
	for _, name := range cfg.Workloads {
		tools := cfg.Tools
		if tools == nil {
			tools = defaultTools[name]
		}
		if !canPromote {
			tools = without(without(tools, "cip"), "cip-ttl")
		}
		if cfg.Tools == nil && e.has("cip-base") {
			tools = append(append([]string(nil), tools...), "cip-base")
		}
		w, err := Generate(shapes[name])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "bench: %s: %d repositories, %d tags\n", name, len(w.Repos()), w.Tags())
		var rs []Result
		if name == "W2000" {
			rs, err = benchCrawl(ctx, cfg, e, w)
		} else {
			rs, err = benchPromote(ctx, cfg, e, w, tools)
		}
		if err != nil {
			// Keep what the other workloads measured.
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s failed: %v", name, err))
			fmt.Fprintf(cfg.Log, "bench: %s: %v\n", name, err)
			continue
		}
		rep.Workloads = append(rep.Workloads, WorkloadResult{Workload: w, Results: rs})
	}
	rep.Finished = time.Now()
	rep.LoadEnd = loadavg()
	return rep, nil
}

// defaultTools keeps a full run to minutes: every peer on W200 (crane
// runs one process per tag, the slowest by far), regsync (the target's
// yardstick) on the larger promotions, and the push floor where the
// issue sets a target against it.
var defaultTools = map[string][]string{
	"W200":   {"cip", "cip-ttl", "regsync", "crane", "push"},
	"W200x3": {"cip", "cip-ttl", "regsync"},
	"Wbig":   {"cip", "regsync", "push"},
}

func without(tools []string, t string) []string {
	var out []string
	for _, x := range tools {
		if x != t {
			out = append(out, x)
		}
	}
	return out
}

func cipCanPromote(ctx context.Context, e *toolEnv) bool {
	return e.run(ctx, &procStats{}, "cip", "promote", "--help") == nil
}

// Result is one timed tool run.
type Result struct {
	Tool, Phase string
	Round       int
	Wall        time.Duration
	MaxRSSKiB   int64
	Procs       int
	Src, Dst    Counts
}

func newPromoter(name string, e *toolEnv) (promoter, error) {
	switch name {
	case "cip":
		return &cipTool{e: e, name: "cip", bin: "cip"}, nil
	case "cip-ttl":
		return &cipTool{e: e, name: "cip-ttl", bin: "cip", extra: ttlFlags}, nil
	case "cip-base":
		// The same promotion by a baseline build (bench/run.sh builds it
		// from CIP_BASE_REF), so a change is compared with what it
		// replaces in one run on one machine's load.
		return &cipTool{e: e, name: "cip-base", bin: "cip-base"}, nil
	case "regsync":
		return &regsyncTool{e: e}, nil
	case "crane":
		return &craneTool{e: e}, nil
	case "push":
		return &pushTool{}, nil
	}
	return nil, fmt.Errorf("unknown tool %q", name)
}

// benchPromote seeds the source once, then per round and tool starts fresh
// destinations, runs the tool cold and warm, checks the destinations, and
// stops them.
func benchPromote(ctx context.Context, cfg Config, e *toolEnv, w *Workload, tools []string) ([]Result, error) {
	src, err := startRegistry(ctx)
	if err != nil {
		return nil, err
	}
	defer src.Stop()
	var out []Result
	d, err := timed(func() error { return Push(ctx, w, src.Host(), "staging", parallel, pushTransport()) })
	if err != nil {
		return nil, fmt.Errorf("seed source: %w", err)
	}
	if signed(w) {
		sd, err := timed(func() error { return Sign(ctx, w, src.Host(), "staging", parallel, pushTransport()) })
		if err != nil {
			return nil, fmt.Errorf("sign source: %w", err)
		}
		d += sd
	}
	c := src.Proxy.Take()
	out = append(out, Result{Tool: "seed", Phase: "source", Wall: d, Dst: c})
	fmt.Fprintf(cfg.Log, "bench: %s: seeded source in %s\n", w.Shape.Name, d.Round(time.Millisecond))
	srcName := src.Host() + "/staging"
	for round := range cfg.Rounds {
		for _, name := range tools {
			rs, err := promoteOnce(ctx, cfg, e, w, name, round, src, srcName)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	return out, nil
}

func promoteOnce(ctx context.Context, cfg Config, e *toolEnv, w *Workload, name string, round int, src *Registry, srcName string) ([]Result, error) {
	tool, err := newPromoter(name, e)
	if err != nil {
		return nil, err
	}
	var dsts []*Registry
	defer func() {
		for _, d := range dsts {
			d.Stop()
		}
	}()
	var dstNames []string
	for range w.Shape.Dests {
		d, err := startRegistry(ctx)
		if err != nil {
			return nil, err
		}
		dsts = append(dsts, d)
		dstNames = append(dstNames, d.Host()+"/prod")
	}
	dir := filepath.Join(cfg.Work, w.Shape.Name, fmt.Sprintf("%s-%d", name, round))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := tool.Prepare(dir, w, srcName, dstNames); err != nil {
		return nil, err
	}
	phases := []string{"cold", "warm"}
	if name == "push" {
		phases = phases[:1]
	}
	var out []Result
	for _, phase := range phases {
		src.Proxy.Take()
		for _, d := range dsts {
			d.Proxy.Take()
		}
		st := &procStats{}
		wall, err := timed(func() error { return tool.Run(ctx, st) })
		if err != nil {
			return nil, fmt.Errorf("%s %s round %d: %w", name, phase, round, err)
		}
		r := Result{Tool: name, Phase: phase, Round: round, Wall: wall, MaxRSSKiB: st.maxRSS, Procs: st.procs, Src: src.Proxy.Take(), Dst: Counts{}}
		for _, d := range dsts {
			r.Dst = r.Dst.Add(d.Proxy.Take())
		}
		for _, d := range dsts {
			if err := verify(ctx, w, d.Direct()+"/prod"); err != nil {
				return nil, fmt.Errorf("%s %s round %d: %w", name, phase, round, err)
			}
			if signed(w) {
				if err := verifySigned(ctx, w, src.Direct()+"/staging", d.Direct()+"/prod"); err != nil {
					return nil, fmt.Errorf("%s %s round %d: %w", name, phase, round, err)
				}
			}
		}
		fmt.Fprintf(cfg.Log, "bench: %s round %d: %-8s %-4s %8s  %5d requests\n", w.Shape.Name, round, name, phase, wall.Round(time.Millisecond), r.Src.Total()+r.Dst.Total())
		out = append(out, r)
	}
	return out, nil
}

// benchCrawl seeds the source, then per round runs cip sync (fresh
// inventory, then incremental) and the crane loop (twice).
func benchCrawl(ctx context.Context, cfg Config, e *toolEnv, w *Workload) ([]Result, error) {
	src, err := startRegistry(ctx)
	if err != nil {
		return nil, err
	}
	defer src.Stop()
	d, err := timed(func() error { return Push(ctx, w, src.Host(), "staging", parallel, pushTransport()) })
	if err != nil {
		return nil, fmt.Errorf("seed source: %w", err)
	}
	out := []Result{{Tool: "seed", Phase: "source", Wall: d, Dst: src.Proxy.Take()}}
	fmt.Fprintf(cfg.Log, "bench: %s: seeded source in %s\n", w.Shape.Name, d.Round(time.Millisecond))
	var repos []string
	for _, r := range w.Repos() {
		repos = append(repos, src.Host()+"/staging/"+r)
	}
	for round := range cfg.Rounds {
		dir := filepath.Join(cfg.Work, w.Shape.Name, fmt.Sprintf("crawl-%d", round))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		crawlers := []crawler{
			&cipCrawl{e: e, name: "cip", bin: "cip", db: filepath.Join(dir, "inventory.db"), target: src.Host() + "/staging"},
			&cipCrawl{e: e, name: "cip-ttl", bin: "cip", extra: ttlFlags, db: filepath.Join(dir, "inventory-ttl.db"), target: src.Host() + "/staging"},
			&craneCrawl{e: e, repos: repos},
		}
		if e.has("cip-base") {
			crawlers = append(crawlers, &cipCrawl{e: e, name: "cip-base", bin: "cip-base", db: filepath.Join(dir, "inventory-base.db"), target: src.Host() + "/staging"})
		}
		for _, c := range crawlers {
			for _, phase := range []string{"crawl", "recrawl"} {
				src.Proxy.Take()
				st := &procStats{}
				wall, err := timed(func() error { return c.Run(ctx, st) })
				if err != nil {
					return nil, fmt.Errorf("%s %s round %d: %w", c.Name(), phase, round, err)
				}
				r := Result{Tool: c.Name(), Phase: phase, Round: round, Wall: wall, MaxRSSKiB: st.maxRSS, Procs: st.procs, Src: src.Proxy.Take()}
				fmt.Fprintf(cfg.Log, "bench: %s round %d: %-8s %-7s %8s  %5d requests\n", w.Shape.Name, round, c.Name(), phase, wall.Round(time.Millisecond), r.Src.Total())
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// serveWorkload seeds a workload's source and starts its destinations
// (behind their counting proxies), writes the promoter manifest, prints a
// cip command line, and waits for ctx (an interrupt): for profiling one
// tool by hand against the same registries the harness uses.
func serveWorkload(ctx context.Context, name string, log io.Writer) error {
	shape, ok := shapes[name]
	if !ok {
		return fmt.Errorf("unknown workload %q", name)
	}
	w, err := Generate(shape)
	if err != nil {
		return err
	}
	src, err := startRegistry(ctx)
	if err != nil {
		return err
	}
	defer src.Stop()
	if err := Push(ctx, w, src.Host(), "staging", parallel, pushTransport()); err != nil {
		return fmt.Errorf("seed source: %w", err)
	}
	var dsts []string
	for range shape.Dests {
		d, err := startRegistry(ctx)
		if err != nil {
			return err
		}
		defer d.Stop()
		dsts = append(dsts, d.Host()+"/prod")
	}
	dir, err := os.MkdirTemp("", "cip-bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	if err := os.WriteFile(mf, []byte(w.Manifest(src.Host()+"/staging", dsts)), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(log, "bench: %s served: source %s/staging, destinations %s\n", name, src.Host(), strings.Join(dsts, " "))
	fmt.Fprintf(log, "cip --db %s promote --manifest %s --confirm\n", filepath.Join(dir, "inventory.db"), mf)
	fmt.Fprintf(log, "cip --db %s sync %s/staging\n", filepath.Join(dir, "crawl.db"), src.Host())
	<-ctx.Done()
	return nil
}
