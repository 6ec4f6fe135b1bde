package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cipdev/cip/registry"
)

// The WAN benchmark (issue 17): `bench -wan` starts the simulator in a
// separate process (`bench -serve-wan`, so that cip's CPU is measured
// alone), then runs the chosen scenarios against it, one tool process at a
// time, and writes a Markdown report.

// WANConfig is one `bench -wan` invocation.
type WANConfig struct {
	Setup     WANSetup
	Scenarios []string
	Cip       string // the cip binary
	Regsync   string // the regsync binary
	Work      string
	Log       io.Writer
	// Checkpoint, when set, is called after each scenario with the report
	// so far (a long run interrupted keeps what it measured).
	Checkpoint func(*WANReport) error
}

// wanScenarios are the scenarios, in the order they run (later ones reuse
// the inventory or the mirrors' state of earlier ones).
var wanScenarios = []string{"a", "a-qps50", "a-jobs128", "b", "c", "c-ttl", "c-jobs32", "d", "regsync"}

// DefaultWANScenarios: a, b and c at the production scale; d and regsync
// are for a small scale (a cold promotion of 1/16 into 22 mirrors takes
// hours today).
var DefaultWANScenarios = []string{"a", "a-qps50", "a-jobs128", "b", "c", "c-ttl", "c-jobs32"}

// WANRun is one timed tool run.
type WANRun struct {
	Name    string        `json:"name"`
	Title   string        `json:"title"`
	Command string        `json:"command"`
	Wall    time.Duration `json:"wall_ns"`
	CPU     time.Duration `json:"cpu_ns"`      // the tool process's user + system time
	RSSKiB  int64         `json:"max_rss_kib"` // the tool process's own peak (VmHWM, runPeak)
	Err     string        `json:"error,omitempty"`
	// ToolRequests is what cip's --report says it sent (0 when unknown).
	ToolRequests int64     `json:"tool_requests"`
	Check        *WANCheck `json:"check,omitempty"`
	Stats        WANStats  `json:"stats"`
}

// WANReport is everything one `bench -wan` measured.
type WANReport struct {
	Started, Finished time.Time
	LoadStart         string
	LoadEnd           string
	Machine           []string
	Versions          []string
	Info              WANInfo
	Setup             WANSetup
	Args              []string // the command line, for rerunning
	Runs              []WANRun
	Notes             []string
	ServerCPU         time.Duration
}

// wanControl talks to the serving process.
type wanControl struct{ addr string }

func (c wanControl) call(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("WAN control %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("WAN control %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("WAN control %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// RunWAN starts the simulator and runs the scenarios.
func RunWAN(ctx context.Context, cfg WANConfig) (*WANReport, error) {
	for _, s := range cfg.Scenarios {
		if !slices.Contains(wanScenarios, s) {
			return nil, fmt.Errorf("unknown WAN scenario %q (known: %s)", s, strings.Join(wanScenarios, ", "))
		}
	}
	rep := &WANReport{Started: time.Now(), LoadStart: loadavg(), Machine: machine(), Setup: cfg.Setup}
	cfg.Setup.Dir = filepath.Join(cfg.Work, "manifests")
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"-serve-wan"}, cfg.Setup.args()...)...)
	cmd.Stderr = cfg.Log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the WAN simulator: %w", err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("start the WAN simulator: %w", err)
	}
	if err := json.Unmarshal(line, &rep.Info); err != nil {
		return nil, fmt.Errorf("start the WAN simulator: %q: %w", line, err)
	}
	ctl := wanControl{addr: rep.Info.Control}
	env, err := newToolEnv(filepath.Dir(cfg.Cip), cfg.Work)
	if err != nil {
		return nil, err
	}
	rep.Versions = []string{"go: " + runtimeVersion(), "cip: " + firstLine(ctx, env, cfg.Cip, "version")}
	if slices.Contains(cfg.Scenarios, "regsync") {
		rep.Versions = append(rep.Versions, "regsync: "+strings.TrimSpace(strings.TrimPrefix(firstLine(ctx, env, cfg.Regsync, "version"), "VCSTag:")))
	}
	r := &wanRunner{cfg: cfg, ctl: ctl, env: env, info: rep.Info, rep: rep}
	for _, s := range cfg.Scenarios {
		if err := r.scenario(ctx, s); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("scenario %s stopped: %v", s, err))
			fmt.Fprintf(cfg.Log, "bench: WAN scenario %s: %v\n", s, err)
			if ctx.Err() != nil {
				break
			}
		}
		if cfg.Checkpoint != nil {
			rep.Finished, rep.LoadEnd = time.Now(), loadavg()
			if err := cfg.Checkpoint(rep); err != nil {
				return nil, err
			}
		}
	}
	stdin.Close()
	cmd.Wait()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.ServerCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	rep.Finished, rep.LoadEnd = time.Now(), loadavg()
	return rep, nil
}

func runtimeVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(ctx context.Context, e *toolEnv, path string, args ...string) string {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = e.env
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "unavailable"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return l
}

type wanRunner struct {
	cfg  WANConfig
	ctl  wanControl
	env  *toolEnv
	info WANInfo
	rep  *WANReport
}

func (r *wanRunner) state(ctx context.Context, mirrors string) error {
	fmt.Fprintf(r.cfg.Log, "bench: WAN: mirrors %s\n", mirrors)
	return r.ctl.call(ctx, http.MethodPost, "/state?mirrors="+mirrors, nil)
}

// scenario runs one scenario (some are several runs).
func (r *wanRunner) scenario(ctx context.Context, name string) error {
	base, head := r.info.BaseDir, r.info.HeadDir
	db := func(n string) string { return filepath.Join(r.cfg.Work, n+".db") }
	switch name {
	case "a":
		if err := r.state(ctx, "promoted"); err != nil {
			return err
		}
		return r.cip(ctx, "a", "fresh-inventory plan, mirrors already promoted", db("a"), true, base, "", "--plan")
	case "a-qps50":
		if err := r.state(ctx, "promoted"); err != nil {
			return err
		}
		return r.cip(ctx, "a-qps50", "fresh-inventory plan, --qps 50", db("a-qps50"), true, base, "", "--plan", "--qps", "50")
	case "a-jobs128":
		if err := r.state(ctx, "promoted"); err != nil {
			return err
		}
		return r.cip(ctx, "a-jobs128", "fresh-inventory plan, --jobs 128", db("a-jobs128"), true, base, "", "--plan", "--jobs", "128")
	case "b":
		if err := r.state(ctx, "promoted"); err != nil {
			return err
		}
		if err := r.cip(ctx, "b0", "first --confirm with a fresh inventory (mirrors already promoted)", db("b"), true, base, "base", "--confirm"); err != nil {
			return err
		}
		if err := r.cip(ctx, "b", "warm no-op: a second --confirm, inventory kept", db("b"), false, base, "base", "--confirm"); err != nil {
			return err
		}
		if err := r.cip(ctx, "b-ttl", "warm no-op, --confirm-ttl 1h", db("b"), false, base, "base", "--confirm", "--confirm-ttl", "1h"); err != nil {
			return err
		}
		return copyDB(db("b"), db("after-b"))
	case "c", "c-ttl", "c-jobs32":
		if _, err := os.Stat(db("after-b")); err != nil {
			return fmt.Errorf("scenario %s needs the inventory of scenario b (run b first): %w", name, err)
		}
		if err := r.state(ctx, "promoted"); err != nil {
			return err
		}
		if err := copyDB(db("after-b"), db(name)); err != nil {
			return err
		}
		args, title := []string{"--confirm"}, "one pull request (a new digest, 2 tags, one image), inventory kept"
		switch name {
		case "c-ttl":
			args, title = append(args, "--confirm-ttl", "1h"), title+", --confirm-ttl 1h"
		case "c-jobs32":
			args, title = append(args, "--jobs", "32"), title+", --jobs 32"
		}
		return r.cip(ctx, name, title, db(name), false, head, "pr", args...)
	case "d":
		if err := r.state(ctx, "empty"); err != nil {
			return err
		}
		if err := r.cip(ctx, "d", "cold promotion into empty mirrors, fresh inventory", db("d"), true, base, "base", "--confirm"); err != nil {
			return err
		}
		return r.cip(ctx, "d-warm", "the same again (no-op), inventory kept", db("d"), false, base, "base", "--confirm")
	case "regsync":
		if err := r.state(ctx, "empty"); err != nil {
			return err
		}
		cmd := []string{r.cfg.Regsync, "once", "-v", "error", "-c", r.info.RegsyncBase}
		if err := r.run(ctx, "regsync", "regsync once (parallel 8) into empty mirrors", cmd, "", "base"); err != nil {
			return err
		}
		return r.run(ctx, "regsync-warm", "regsync once again (no-op)", cmd, "", "base")
	}
	return fmt.Errorf("unknown WAN scenario %q", name)
}

// cip runs `cip promote` on dir with the inventory db (fresh: removed
// first), checks the mirrors for check's items afterwards ("" for none).
func (r *wanRunner) cip(ctx context.Context, name, title, db string, fresh bool, dir, check string, args ...string) error {
	if fresh {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(db + suffix); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	report := filepath.Join(r.cfg.Work, name+".report.json")
	os.Remove(report)
	cmd := append([]string{r.cfg.Cip, "--db", db, "--quiet", "promote", "--thin-manifest-dir", dir}, ttlCompat(r.cfg.Cip, args)...)
	cmd = append(cmd, "--report", report)
	if hc, err := r.hostsConfig(); err != nil {
		return err
	} else if hc != "" {
		cmd = append(cmd, "--hosts-config", hc)
	}
	return r.run(ctx, name, title, cmd, report, check)
}

// hostsConfig writes, when the simulated hosts count their quota per
// project (as Artifact Registry does), a hosts config telling cip so: what
// cip assumes by name of gcr.io and *-docker.pkg.dev (a quota per project,
// a start at 50 requests/s), which the loopback addresses standing in for
// them cannot say. It returns "" when the quota is per host (issue 17's
// first model: cip treats the hosts as any other).
func (r *wanRunner) hostsConfig() (string, error) {
	if r.cfg.Setup.WAN.QuotaPer != "project" {
		return "", nil
	}
	file := filepath.Join(r.cfg.Work, "hosts.yaml")
	body := fmt.Sprintf("# The simulator's hosts stand for Artifact Registry regions: cip's defaults for Google's hosts.\nhosts:\n  \"127.0.0.1:*\":\n    quota-per: project\n    start-qps: %d\n", registry.DefaultGoogleStartQPS)
	return file, os.WriteFile(file, []byte(body), 0o644)
}

// run times one tool process. A failing tool is a result, not an error:
// the report says how it failed.
func (r *wanRunner) run(ctx context.Context, name, title string, argv []string, report, check string) error {
	if err := r.ctl.call(ctx, http.MethodPost, "/take", nil); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(r.cfg.Work, name+".stdout"))
	if err != nil {
		return err
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = r.env.env
	cmd.Stdout, cmd.Stderr = out, &stderr
	fmt.Fprintf(r.cfg.Log, "bench: WAN %s: %s (load %s)\n", name, title, loadavg())
	start := time.Now()
	stop := r.progress(ctx, name, start)
	peak, runErr := runPeak(cmd)
	stop()
	run := WANRun{Name: name, Title: title, Command: r.display(argv), Wall: time.Since(start)}
	if err := r.ctl.call(ctx, http.MethodPost, "/take", &run.Stats); err != nil {
		return err
	}
	if ps := cmd.ProcessState; ps != nil {
		run.CPU = ps.UserTime() + ps.SystemTime()
		run.RSSKiB = peak
	}
	if runErr != nil {
		msg := stderr.String()
		if len(msg) > 1500 {
			msg = "…" + msg[len(msg)-1500:]
		}
		run.Err = fmt.Sprintf("%v: %s", runErr, strings.TrimSpace(msg))
	}
	if report != "" {
		run.ToolRequests = cipReportRequests(report)
	}
	if check != "" {
		var c WANCheck
		if err := r.ctl.call(ctx, http.MethodGet, "/check?items="+check, &c); err != nil {
			return err
		}
		run.Check = &c
	}
	total, tooMany := run.Stats.totals()
	fmt.Fprintf(r.cfg.Log, "bench: WAN %s: %s, %d requests, %d answered 429, %.1f hosts busy on average%s\n",
		name, run.Wall.Round(time.Millisecond), total, tooMany, run.Stats.BusyHostSeconds/run.Wall.Seconds(), failNote(run))
	r.rep.Runs = append(r.rep.Runs, run)
	return nil
}

// progressEvery is how often a long run logs its counts so far.
const progressEvery = 30 * time.Second

// progress logs the run's counts every progressEvery until stopped.
func (r *wanRunner) progress(ctx context.Context, name string, start time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				var p struct {
					Requests int64 `json:"requests"`
					TooMany  int64 `json:"too_many"`
					Hosts    int64 `json:"hosts"`
				}
				if err := r.ctl.call(ctx, http.MethodGet, "/peek", &p); err != nil {
					continue
				}
				fmt.Fprintf(r.cfg.Log, "bench: WAN %s: %s so far, %d requests, %d answered 429, %d hosts active in the last second (load %s)\n",
					name, time.Since(start).Round(time.Second), p.Requests, p.TooMany, p.Hosts, loadavg())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func failNote(r WANRun) string {
	s := ""
	if r.Err != "" {
		s += "; FAILED"
	}
	if r.Check != nil && len(r.Check.Missing) > 0 {
		s += "; mirrors incomplete"
	}
	return s
}

// display renders a command line with the run's scratch paths shortened.
func (r *wanRunner) display(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, r.cfg.Work+"/", "$WORK/")
		if i == 0 {
			a = filepath.Base(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// cipReportRequests reads the run's total requests from cip's --report.
func cipReportRequests(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var v struct {
		Requests int64 `json:"requests"`
	}
	if json.Unmarshal(b, &v) != nil {
		return 0
	}
	return v.Requests
}

// copyDB copies an inventory (with its WAL, when there is one) that no
// process has open.
func copyDB(from, to string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(from + suffix)
		if os.IsNotExist(err) && suffix != "" {
			os.Remove(to + suffix)
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// totals sums the requests and 429s of every host.
func (s WANStats) totals() (requests, tooMany int64) {
	for _, h := range s.Hosts {
		requests += h.Requests
		tooMany += h.TooMany
	}
	return requests, tooMany
}

// kind sums one request kind over the hosts.
func (s WANStats) kind(k string) int64 {
	var n int64
	for _, h := range s.Hosts {
		n += h.ByKind[k]
	}
	return n
}

// bounds are the quota's lower bounds on the wall time: the answered
// requests spread evenly over every host at the quota (issue 17's bound:
// hosts × quota, each host counted once even where its quota is per
// project), and the busiest quota's answered requests at the quota (the
// busiest host's, or where the quota is per project, the busiest
// project's): no schedule beats the second.
func (s WANStats) bounds(qps float64) (spread, busiest float64) {
	var answered, most int64
	for _, h := range s.Hosts {
		answered += h.Requests - h.TooMany
		b := h.BusiestAnswered
		if h.Quotas == 0 {
			b = h.Requests - h.TooMany // a window taken before quotas were counted
		}
		most = max(most, b)
	}
	if len(s.Hosts) == 0 || qps <= 0 {
		return 0, 0
	}
	return float64(answered) / (float64(len(s.Hosts)) * qps), float64(most) / qps
}

// quotaUnit says what one simulated quota counts.
func quotaUnit(per string) string {
	if per == "project" {
		return "project of each host (Artifact Registry's per project and region: the source's staging repositories are projects of their own, the mirrors one project each)"
	}
	return "host"
}

// changeFloor is what the one-PR change needs at least, with one ping and
// one token per host and a verify HEAD per written tag: from the source,
// a GET of each manifest and blob (read once, fanned out); per mirror
// repository, an upload (POST + PUT) per blob, a PUT per manifest, a PUT
// per further tag and a HEAD per tag, plus one tag listing.
func (sh WANShape) changeFloor(mirrors int) int {
	pr := sh.PR
	src := 2 + pr.Manifests + pr.Blobs
	perRepo := 1 + 2*pr.Blobs + pr.Manifests + (len(pr.Tags) - 1) + len(pr.Tags)
	return src + mirrors*(2+pr.Repos*perRepo)
}

// wanKinds are the report's request-kind columns.
var wanKinds = []string{"ping", "token", "tags", "manifest HEAD", "manifest GET", "manifest PUT", "blob HEAD", "blob GET", "blob POST", "blob PUT", "blob mount"}

// Write renders the report as Markdown.
func (r *WANReport) Write(w io.Writer) error {
	var b bytes.Buffer
	sh, s := r.Info.Shape, r.Setup
	hosts := 1 + len(r.Info.Mirrors)
	fmt.Fprintf(&b, "### WAN, scale %s%s: %s\n\n", s.Scale, map[bool]string{true: fmt.Sprintf(", %d images", s.MaxImages), false: ""}[s.MaxImages > 0],
		strings.Join(runNames(r.Runs), ", "))
	fmt.Fprintf(&b, "`%s`, on %s, in %s; load average %s at the start, %s at the end.\n\n",
		strings.Join(r.Args, " "), r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Round(time.Second), r.LoadStart, r.LoadEnd)
	b.WriteString("Machine: " + strings.Join(r.Machine, "; ") + ". Versions: " + strings.Join(r.Versions, "; ") + ".\n\n")
	list := "tags/list with GCR's extension (every digest and its tags, as Artifact Registry answers)"
	if !s.WAN.GCRList {
		list = "plain tags/list (no digests: one HEAD or GET per tag)"
	}
	fmt.Fprintf(&b, "Tree: %s; %d subprojects, %d images, %d repositories per mirror, %d digests (%d manifest lists of %d platforms), %d tags per mirror; %d manifests and %d blobs of %d bytes or so per copy. %d mirrors + 1 source = %d hosts, %s per request, %g requests/s per %s (bucket %d), bearer tokens for %s, %s. Simulator: %.1f s to generate and seed, %.1f CPU-s over the whole run.\n\n",
		sh.From, sh.Subprojects, sh.Images, sh.ReposPerMirror, sh.Digests, sh.Lists, s.Content.Children, sh.MirrorTags,
		sh.Manifests, sh.Blobs, s.Content.LayerSize, len(r.Info.Mirrors), hosts, s.WAN.Latency, s.WAN.QPS, quotaUnit(s.WAN.QuotaPer), s.WAN.Burst, s.WAN.TokenTTL, list,
		r.Info.SeedSeconds, r.ServerCPU.Seconds())
	if slices.ContainsFunc(r.Runs, func(x WANRun) bool { return strings.HasPrefix(x.Name, "c") }) {
		fmt.Fprintf(&b, "The change (scenario c): %s/%s, digest %s (a manifest list: %d manifests, %d blobs), tags %s, %d repositor%s per mirror. What it needs at least, with auth once per host and a verify HEAD per tag: %d requests (source: ping, token, a GET per manifest and blob; per mirror: ping, token, a tag listing, POST + PUT per blob, a PUT per manifest and per further tag, a HEAD per tag).\n\n",
			sh.PR.Subproject, sh.PR.Image, sh.PR.Digest[:19]+"…", sh.PR.Manifests, sh.PR.Blobs, strings.Join(sh.PR.Tags, ", "), sh.PR.Repos,
			map[bool]string{true: "y", false: "ies"}[sh.PR.Repos == 1], sh.changeFloor(len(r.Info.Mirrors)))
	}
	for _, n := range r.Notes {
		b.WriteString("Note: " + n + "\n\n")
	}
	b.WriteString("| run | wall (s) | requests | 429 (first s / later) | hosts busy (avg) | quota bound: spread / busiest quota (s) | cip CPU (s) | peak RSS (MiB) | result |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Runs {
		total, tooMany := x.Stats.totals()
		var first int64
		for _, h := range x.Stats.Hosts {
			first += h.TooManyFirstSecond
		}
		spread, busiest := x.Stats.bounds(s.WAN.QPS)
		res := "ok"
		if x.Err != "" {
			res = "**failed**"
		}
		if x.Check != nil {
			if len(x.Check.Missing) > 0 {
				res += fmt.Sprintf(", **mirrors incomplete** (%s)", x.Check.Missing[0])
			} else {
				res += fmt.Sprintf(", mirrors verified (%d references)", x.Check.Checked)
			}
		}
		if x.ToolRequests > 0 && x.ToolRequests != total {
			res += fmt.Sprintf(", cip counted %d", x.ToolRequests)
		}
		fmt.Fprintf(&b, "| %s: %s | %.1f | %d | %d (%d / %d) | %.1f | %.1f / %.1f | %.1f | %.0f | %s |\n",
			x.Name, x.Title, x.Wall.Seconds(), total, tooMany, first, tooMany-first, x.Stats.BusyHostSeconds/x.Wall.Seconds(),
			spread, busiest, x.CPU.Seconds(), float64(x.RSSKiB)/1024, res)
	}
	r.writeTargets(&b)
	b.WriteString("\nRequests by kind (all hosts; 429 answers included):\n\n| run | " + strings.Join(wanKinds, " | ") + " | other |\n|---|" + strings.Repeat("---:|", len(wanKinds)+1) + "\n")
	for _, x := range r.Runs {
		total, _ := x.Stats.totals()
		fmt.Fprintf(&b, "| %s |", x.Name)
		var listed int64
		for _, k := range wanKinds {
			n := x.Stats.kind(k)
			listed += n
			fmt.Fprintf(&b, " %d |", n)
		}
		fmt.Fprintf(&b, " %d |\n", total-listed)
	}
	b.WriteString("\nCommands (`$WORK` is the run's scratch directory; the manifests name the simulator's ports):\n\n```\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&b, "%s: %s\n", x.Name, x.Command)
	}
	b.WriteString("```\n\nPer host: requests, 429s in the host's first second / later, seconds with a request in flight, most requests in flight; then 429s and hosts active per 10 s of the run.\n\n```\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&b, "%s (wall %.1fs)%s\n", x.Name, x.Wall.Seconds(), map[bool]string{true: " error: " + oneLine(x.Err), false: ""}[x.Err != ""])
		for _, h := range x.Stats.Hosts {
			if h.Requests == 0 {
				continue
			}
			quotas := ""
			if h.Quotas > 1 {
				quotas = fmt.Sprintf("  %d quotas, busiest %s %d answered", h.Quotas, h.BusiestQuota, h.BusiestAnswered)
			}
			fmt.Fprintf(&b, "  %-9s %6d req  429 %d/%d  busy %.1fs  max in flight %d  %s%s\n", h.Role, h.Requests, h.TooManyFirstSecond, h.TooMany-h.TooManyFirstSecond, h.BusySeconds, h.MaxInFlight, kindLine(h.ByKind), quotas)
		}
		b.WriteString("  per 10 s (requests/429/hosts):")
		for i := 0; i < len(x.Stats.Timeline); i += 10 {
			var req, tm int64
			hmax := 0
			for _, t := range x.Stats.Timeline[i:min(i+10, len(x.Stats.Timeline))] {
				req += t.Requests
				tm += t.TooMany
				hmax = max(hmax, t.Hosts)
			}
			fmt.Fprintf(&b, " %d/%d/%d", req, tm, hmax)
		}
		b.WriteString("\n")
	}
	b.WriteString("```\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeTargets states where the runs stand against issue 17's targets
// (those a run of this report can speak to), and cip against regsync.
func (r *WANReport) writeTargets(b *bytes.Buffer) {
	find := func(name string) (WANRun, bool) {
		for _, x := range r.Runs {
			if x.Name == name {
				return x, true
			}
		}
		return WANRun{}, false
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	var lines []string
	qps := r.Setup.WAN.QPS
	floor := r.Info.Shape.changeFloor(len(r.Info.Mirrors))
	for _, x := range r.Runs {
		total, tooMany := x.Stats.totals()
		var later int64
		for _, h := range x.Stats.Hosts {
			later += h.TooMany - h.TooManyFirstSecond
		}
		busy := x.Stats.BusyHostSeconds / x.Wall.Seconds()
		spread, _ := x.Stats.bounds(qps)
		switch {
		case x.Name == "a":
			lines = append(lines, fmt.Sprintf("a: ≥ 15 hosts busy on average: %.1f (%s); within 1.5 × the spread bound: %.1f × (%s)",
				busy, mark(busy >= 15), x.Wall.Seconds()/spread, mark(x.Wall.Seconds() <= 1.5*spread)))
		case strings.HasPrefix(x.Name, "c"):
			lines = append(lines, fmt.Sprintf("%s: ≤ 3 × the change's %d requests: %.1f × (%s)", x.Name, floor, float64(total)/float64(floor), mark(total <= int64(3*floor))))
		case x.Name == "b" || x.Name == "b-ttl":
			lines = append(lines, fmt.Sprintf("%s: no request to unchanged targets: %d requests (%s)", x.Name, total, mark(total == 0)))
		}
		if x.Err != "" && tooMany > 0 {
			lines = append(lines, fmt.Sprintf("%s: no run fails because of 429s: failed with %d answered 429 (**missed**)", x.Name, tooMany))
		}
		if later > 0 {
			lines = append(lines, fmt.Sprintf("%s: zero 429s after each host's first second: %d (**missed**)", x.Name, later))
		}
	}
	for _, p := range [][2]string{{"d", "regsync"}, {"d-warm", "regsync-warm"}} {
		c, ok1 := find(p[0])
		g, ok2 := find(p[1])
		if ok1 && ok2 && g.Wall > 0 {
			ct, _ := c.Stats.totals()
			gt, _ := g.Stats.totals()
			lines = append(lines, fmt.Sprintf("%s ÷ %s: wall %.2f ×, requests %.2f ×", p[0], p[1], c.Wall.Seconds()/g.Wall.Seconds(), float64(ct)/float64(max(gt, 1))))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\nAgainst issue 17's targets, and cip against regsync:\n\n")
	for _, l := range lines {
		b.WriteString("- " + l + "\n")
	}
}

func runNames(rs []WANRun) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func kindLine(m map[string]int64) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", "_"), m[k]))
	}
	return strings.Join(parts, " ")
}

// runWANCommand is `bench -wan`: run, then write the Markdown report to out
// (stdout when empty) and the raw runs to jsonOut.
func runWANCommand(ctx context.Context, cfg WANConfig, work, out, jsonOut string, args []string) error {
	if work == "" {
		dir, err := os.MkdirTemp("", "cip-bench-wan-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	abs, err := filepath.Abs(work)
	if err != nil {
		return err
	}
	cfg.Work = abs
	if abs, err := filepath.Abs(cfg.Setup.RealDir); err == nil {
		cfg.Setup.RealDir = abs
	}
	write := func(rep *WANReport) error {
		rep.Args = append([]string{"go run ./bench"}, args...)
		return writeWANReport(rep, out, jsonOut)
	}
	if out != "" {
		cfg.Checkpoint = write
	}
	rep, err := RunWAN(ctx, cfg)
	if err != nil {
		return err
	}
	return write(rep)
}

// writeWANReport writes the Markdown report to out (stdout when empty) and
// the raw runs to jsonOut (when set).
func writeWANReport(rep *WANReport, out, jsonOut string) error {
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return rep.Write(w)
}

// renderWAN writes the Markdown report of a -json file to out.
func renderWAN(jsonFile, out string) error {
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		return err
	}
	var rep WANReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("parse %s: %w", jsonFile, err)
	}
	return writeWANReport(&rep, out, "")
}
