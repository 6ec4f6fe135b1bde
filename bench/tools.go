package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/dockerregistry"
)

// parallel is the concurrency every tool gets: cip's default --jobs, eight
// crane processes at once, regsync's parallel: 8, eight pushes at once.
const parallel = 8

// Registry is a docker-registry behind a counting proxy.
type Registry struct {
	srv   *dockerregistry.Server
	Proxy *Proxy
}

// Host is the address tools are given (the proxy's).
func (r *Registry) Host() string { return r.Proxy.Host }

// Direct is the registry's own address, for checks that must not count.
func (r *Registry) Direct() string { return r.srv.Host }

func startRegistry(ctx context.Context) (*Registry, error) {
	srv, err := dockerregistry.Start(ctx, dockerregistry.Options{})
	if err != nil {
		return nil, err
	}
	p, err := StartProxy(srv.Host)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &Registry{srv: srv, Proxy: p}, nil
}

// Stop stops the proxy and the registry (its in-memory content is gone).
func (r *Registry) Stop() {
	r.Proxy.Close()
	r.srv.Stop()
}

// procStats sums what the processes of one tool run cost.
type procStats struct {
	mu     sync.Mutex
	procs  int
	maxRSS int64 // KiB, the largest single process
}

// add counts one finished process and its peak resident memory (KiB, from
// runPeak: not ru_maxrss, which holds this harness's own).
func (p *procStats) add(ps *os.ProcessState, peakKiB int64) {
	if ps == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.procs++
	p.maxRSS = max(p.maxRSS, peakKiB)
}

// toolEnv is what every tool process runs with.
type toolEnv struct {
	bin  string // directory holding cip, crane, regsync
	work string // scratch directory of this bench run
	env  []string
}

func newToolEnv(bin, work string) (*toolEnv, error) {
	dc := filepath.Join(work, "docker-config")
	if err := os.MkdirAll(dc, 0o700); err != nil {
		return nil, err
	}
	// An empty docker config: no credential helper is consulted, the same
	// for every tool.
	if err := os.WriteFile(filepath.Join(dc, "config.json"), []byte("{}"), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+dc)
	return &toolEnv{bin: bin, work: work, env: env}, nil
}

// has reports whether the bin directory holds tool.
func (e *toolEnv) has(tool string) bool {
	fi, err := os.Stat(filepath.Join(e.bin, tool))
	return err == nil && fi.Mode().IsRegular()
}

func (e *toolEnv) run(ctx context.Context, st *procStats, tool string, args ...string) error {
	if strings.HasPrefix(tool, "cip") {
		args = ttlCompat(filepath.Join(e.bin, tool), args)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, tool), args...)
	cmd.Env = e.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	peak, err := runPeak(cmd)
	st.add(cmd.ProcessState, peak)
	if err != nil {
		msg := out.String()
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, msg)
	}
	return nil
}

// A promoter copies a workload from the source into destinations. Prepare
// runs untimed before the cold run (config files, databases); Run is timed.
type promoter interface {
	Name() string
	Prepare(dir string, w *Workload, src string, dsts []string) error
	Run(ctx context.Context, st *procStats) error
}

// cipTool runs `cip promote --confirm` with a fresh inventory for the cold
// run and the same inventory for the warm run.
type cipTool struct {
	e            *toolEnv
	name         string   // "cip", "cip-ttl" for the run with extra flags, "cip-base" for the baseline build
	bin          string   // the binary in the bin directory: "cip", or "cip-base"
	extra        []string // flags after "promote"
	db, manifest string
}

func (c *cipTool) Name() string { return c.name }

func (c *cipTool) Prepare(dir string, w *Workload, src string, dsts []string) error {
	c.db = filepath.Join(dir, "inventory.db")
	c.manifest = filepath.Join(dir, "promoter-manifest.yaml")
	return os.WriteFile(c.manifest, []byte(w.Manifest(src, dsts)), 0o600)
}

func (c *cipTool) Run(ctx context.Context, st *procStats) error {
	args := append([]string{"--db", c.db, "--quiet", "promote", "--manifest", c.manifest, "--confirm"}, c.extra...)
	return c.e.run(ctx, st, c.bin, args...)
}

// regsyncTool runs `regsync once` with one repository entry per (source
// repository, destination) and parallel: 8.
type regsyncTool struct {
	e   *toolEnv
	cfg string
}

func (r *regsyncTool) Name() string { return "regsync" }

func (r *regsyncTool) Prepare(dir string, w *Workload, src string, dsts []string) error {
	var b strings.Builder
	b.WriteString("version: 1\ncreds:\n")
	hosts := []string{hostOf(src)}
	for _, d := range dsts {
		hosts = append(hosts, hostOf(d))
	}
	for _, h := range hosts {
		fmt.Fprintf(&b, "  - registry: %s\n    tls: disabled\n", h)
	}
	b.WriteString("defaults:\n  parallel: 8\n  skipDockerConfig: true\n")
	if signed(w) {
		// Signatures too: OCI referrers (the sha256-<hex> tag schema on
		// docker-registry) and cosign's sha256-<hex>.sig tags.
		b.WriteString("  referrers: true\n  digestTags: true\n")
	}
	b.WriteString("sync:\n")
	for _, d := range dsts {
		for _, repo := range w.Repos() {
			fmt.Fprintf(&b, "  - source: %s/%s\n    target: %s/%s\n    type: repository\n", src, repo, d, repo)
		}
	}
	r.cfg = filepath.Join(dir, "regsync.yml")
	return os.WriteFile(r.cfg, []byte(b.String()), 0o600)
}

func (r *regsyncTool) Run(ctx context.Context, st *procStats) error {
	return r.e.run(ctx, st, "regsync", "once", "-v", "error", "-c", r.cfg)
}

// craneTool runs `crane copy` of each tag, 8 processes at once. The tags
// of one digest go to one job, copied once and tagged after (`crane tag`):
// two concurrent copies of one digest into one repository race in
// docker-registry 2.8 (measured here, 2026-11: two `crane copy` runs of one
// digest to two tags of one repository failed once with DIGEST_INVALID /
// MANIFEST_BLOB_UNKNOWN).
type craneTool struct {
	e    *toolEnv
	jobs []craneJob
}

type craneJob struct {
	src, dst string // repository names
	tags     []string
}

func (c *craneTool) Name() string { return "crane" }

func (c *craneTool) Prepare(dir string, w *Workload, src string, dsts []string) error {
	c.jobs = nil
	for _, d := range dsts {
		for _, it := range w.Items {
			c.jobs = append(c.jobs, craneJob{src: src + "/" + it.Repo, dst: d + "/" + it.Repo, tags: it.Tags})
		}
	}
	return nil
}

func (c *craneTool) Run(ctx context.Context, st *procStats) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, j := range c.jobs {
		g.Go(func() error {
			dst := j.dst + ":" + j.tags[0]
			if err := c.e.run(gctx, st, "crane", "copy", j.src+":"+j.tags[0], dst); err != nil {
				return err
			}
			for _, t := range j.tags[1:] {
				if err := c.e.run(gctx, st, "crane", "tag", dst, t); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// pushTool pushes the same content from memory with go-containerregistry,
// in this process: the floor the issue sets for cip's cold copy.
type pushTool struct {
	w    *Workload
	dsts []string
}

func (p *pushTool) Name() string { return "push" }

func (p *pushTool) Prepare(dir string, w *Workload, src string, dsts []string) error {
	p.w, p.dsts = w, dsts
	return nil
}

func (p *pushTool) Run(ctx context.Context, st *procStats) error {
	for _, d := range p.dsts {
		host, prefix, _ := strings.Cut(d, "/")
		if err := Push(ctx, p.w, host, prefix, parallel, pushTransport()); err != nil {
			return err
		}
	}
	return nil
}

func pushTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

func hostOf(s string) string {
	h, _, _ := strings.Cut(s, "/")
	return h
}

// crawler lists a registry's repositories' tags and digests.
type crawler interface {
	Name() string
	Run(ctx context.Context, st *procStats) error
}

// cipCrawl runs `cip sync` of the source prefix; the same inventory is kept
// for the incremental re-crawl.
type cipCrawl struct {
	e      *toolEnv
	name   string   // "cip", "cip-ttl" for the run with extra flags, "cip-base" for the baseline build
	bin    string   // the binary in the bin directory: "cip", or "cip-base"
	extra  []string // flags after "sync"
	db     string
	target string
}

func (c *cipCrawl) Name() string { return c.name }

func (c *cipCrawl) Run(ctx context.Context, st *procStats) error {
	args := append([]string{"--db", c.db, "--quiet", "sync", c.target}, c.extra...)
	return c.e.run(ctx, st, c.bin, args...)
}

// ttlFlags are cip-ttl's: what cip confirmed in the last ten minutes is
// taken from the inventory (cip sync/promote --confirm-ttl).
var ttlFlags = []string{"--confirm-ttl", "10m"}

// ttlCompat rewrites --confirm-ttl to --tag-ttl, its older name, for a cip
// binary that does not know it (a baseline built from an older commit),
// so that a before/after pair runs the same scenario: the same TTL, with
// whatever trust each cip has.
func ttlCompat(bin string, args []string) []string {
	if !slices.Contains(args, "--confirm-ttl") || knowsConfirmTTL(bin) {
		return args
	}
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--confirm-ttl" {
			out[i] = "--tag-ttl"
		}
	}
	return out
}

var confirmTTLKnown sync.Map // cip binary path -> bool

// knowsConfirmTTL reports whether `bin promote --help` names --confirm-ttl.
func knowsConfirmTTL(bin string) bool {
	if v, ok := confirmTTLKnown.Load(bin); ok {
		return v.(bool)
	}
	out, _ := exec.Command(bin, "promote", "--help").CombinedOutput()
	known := bytes.Contains(out, []byte("--confirm-ttl"))
	confirmTTLKnown.Store(bin, known)
	return known
}

// craneCrawl runs `crane ls` of every repository, then `crane digest` of
// every tag, 8 processes at once. It has no memory, so the re-crawl costs
// the same.
type craneCrawl struct {
	e     *toolEnv
	repos []string // full names
}

func (c *craneCrawl) Name() string { return "crane" }

func (c *craneCrawl) Run(ctx context.Context, st *procStats) error {
	var mu sync.Mutex
	var refs []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, repo := range c.repos {
		g.Go(func() error {
			cmd := exec.CommandContext(gctx, filepath.Join(c.e.bin, "crane"), "ls", repo)
			cmd.Env = c.e.env
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			peak, err := runPeak(cmd)
			st.add(cmd.ProcessState, peak)
			if err != nil {
				return fmt.Errorf("crane ls %s: %w: %s", repo, err, strings.TrimSpace(stderr.String()))
			}
			mu.Lock()
			for _, t := range strings.Fields(out.String()) {
				refs = append(refs, repo+":"+t)
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(refs) == 0 {
		return errors.New("crane ls found no tags")
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, ref := range refs {
		g.Go(func() error { return c.e.run(gctx, st, "crane", "digest", ref) })
	}
	return g.Wait()
}

// timed runs f and measures its wall time.
func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}
