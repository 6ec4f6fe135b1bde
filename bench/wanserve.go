package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"
)

// WANSetup describes one simulated production: the k8s-shaped tree at a
// scale, its content, and the hosts' behaviour. The benchmark passes it to
// the serving process as flags (setupFlags).
type WANSetup struct {
	Scale     string // "1/16"
	MaxImages int    // 0: every image
	Mirrors   int    // 0: as many as the tree has (22)
	RealDir   string // the real registry.k8s.io thin manifests, when present
	Content   ContentOptions
	WAN       WANOptions
	Dir       string // where the thin-manifest directories are written
}

// defaultRealDir is the real registry.k8s.io thin-manifest tree beside the
// repository (a user's clone does not have it: the built-in shape is used).
const defaultRealDir = "../shared/realdata/k8s.io/registry.k8s.io"

func (s *WANSetup) register(fs *flag.FlagSet) {
	fs.StringVar(&s.Scale, "scale", "1/16", "fraction of each image's history (digests) to generate: 1/16, 1/4, 1")
	fs.IntVar(&s.MaxImages, "images", 0, "keep only `N` images, spread over the tree (0: all 386)")
	fs.IntVar(&s.Mirrors, "mirrors", 0, "destination mirror hosts (0: as in the tree, 22)")
	fs.StringVar(&s.RealDir, "k8s-dir", defaultRealDir, "real registry.k8s.io thin-manifest `DIR` to take the shape from (built-in constants when absent)")
	fs.IntVar(&s.Content.Children, "children", DefaultContent.Children, "platform images per manifest list")
	fs.IntVar(&s.Content.Layers, "layers", DefaultContent.Layers, "layers per image")
	fs.IntVar(&s.Content.LayerSize, "layer-size", DefaultContent.LayerSize, "bytes per layer")
	fs.DurationVar(&s.WAN.Latency, "latency", DefaultWAN.Latency, "latency added to every request")
	fs.Float64Var(&s.WAN.QPS, "quota", DefaultWAN.QPS, "requests per second each host answers before 429")
	fs.IntVar(&s.WAN.Burst, "burst", DefaultWAN.Burst, "token bucket depth of the quota")
	fs.StringVar(&s.WAN.QuotaPer, "quota-per", DefaultWAN.QuotaPer, "what one quota counts: project (per project of each host, as Artifact Registry) or host")
	fs.DurationVar(&s.WAN.TokenTTL, "token-ttl", DefaultWAN.TokenTTL, "bearer token lifetime")
	fs.BoolVar(&s.WAN.GCRList, "gcr-list", DefaultWAN.GCRList, "answer tags/list with GCR's extension (every digest with its tags), as Artifact Registry does; false: plain tags")
}

// args renders s as the flags register reads (for the serving process).
func (s *WANSetup) args() []string {
	return []string{"-scale", s.Scale, "-images", fmt.Sprint(s.MaxImages), "-mirrors", fmt.Sprint(s.Mirrors),
		"-k8s-dir", s.RealDir, "-children", fmt.Sprint(s.Content.Children), "-layers", fmt.Sprint(s.Content.Layers),
		"-layer-size", fmt.Sprint(s.Content.LayerSize), "-latency", s.WAN.Latency.String(),
		"-quota", fmt.Sprint(s.WAN.QPS), "-burst", fmt.Sprint(s.WAN.Burst), "-quota-per", s.WAN.QuotaPer, "-token-ttl", s.WAN.TokenTTL.String(),
		"-gcr-list=" + fmt.Sprint(s.WAN.GCRList),
		"-dir", s.Dir}
}

// WANInfo is what the serving process reports, as one JSON line on stdout,
// once it is seeded and listening.
type WANInfo struct {
	Control     string   `json:"control"` // host:port of the control API
	Source      string   `json:"source"`
	Mirrors     []string `json:"mirrors"`
	BaseDir     string   `json:"base_dir"` // thin manifests without the change
	HeadDir     string   `json:"head_dir"` // with the one-PR change
	RegsyncBase string   `json:"regsync_base"`
	Shape       WANShape `json:"shape"`
	SeedSeconds float64  `json:"seed_seconds"`
}

// WANShape summarizes the generated tree.
type WANShape struct {
	From           string  `json:"from"`
	Scale          float64 `json:"scale"`
	Subprojects    int     `json:"subprojects"`
	Images         int     `json:"images"`
	ReposPerMirror int     `json:"repos_per_mirror"`
	Digests        int     `json:"digests"`
	Tags           int     `json:"tags"`
	Lists          int     `json:"manifest_lists"`
	// Manifests and Blobs count one copy of the base content (children
	// included; a blob once per image that references it).
	Manifests int `json:"manifests"`
	Blobs     int `json:"blobs"`
	// Per mirror: the repositories (and tags) the manifests promote into.
	MirrorTags int   `json:"mirror_tags"`
	PR         WANPR `json:"pr"`
	Content    ContentOptions
	WAN        WANOptions
}

// WANPR is the one-pull-request change.
type WANPR struct {
	Subproject string   `json:"subproject"`
	Image      string   `json:"image"`
	Digest     string   `json:"digest"`
	Tags       []string `json:"tags"`
	Manifests  int      `json:"manifests"` // the index and its children
	Blobs      int      `json:"blobs"`
	Repos      int      `json:"repos_per_mirror"`
}

// serveWAN is `bench -serve-wan`: generate, seed, serve until stdin closes.
func serveWAN(ctx context.Context, args []string, stdin io.Reader, stdout, log io.Writer) error {
	fs := flag.NewFlagSet("bench -serve-wan", flag.ContinueOnError)
	var s WANSetup
	s.register(fs)
	fs.StringVar(&s.Dir, "dir", "", "`DIR` to write the thin-manifest directories into")
	mirrorsState := fs.String("state", "promoted", "the mirrors at start: promoted (the base content) or empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.Dir == "" {
		return fmt.Errorf("-serve-wan needs -dir")
	}
	srv, err := newWANServer(s, log)
	if err != nil {
		return err
	}
	defer srv.wan.Close()
	start := time.Now()
	if err := srv.setState(ctx, *mirrorsState, false); err != nil {
		return err
	}
	srv.info.SeedSeconds += time.Since(start).Seconds()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv.info.Control = l.Addr().String()
	hs := &http.Server{Handler: srv.mux(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	defer hs.Close()
	if err := json.NewEncoder(stdout).Encode(srv.info); err != nil {
		return err
	}
	// The benchmark closes stdin (or dies) when it is done.
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, bufio.NewReader(stdin))
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// wanServer holds one simulation: content, hosts, manifests.
type wanServer struct {
	setup   WANSetup
	content *K8sContent
	wan     *WAN
	info    WANInfo
	log     io.Writer
}

func newWANServer(s WANSetup, log io.Writer) (*wanServer, error) {
	scale, err := ParseScale(s.Scale)
	if err != nil {
		return nil, err
	}
	full := LoadK8sTree(s.RealDir)
	tree := full.Scaled(scale, s.MaxImages)
	if s.Mirrors > 0 {
		tree.Mirrors = s.Mirrors
	}
	start := time.Now()
	c, err := GenerateK8s(tree, s.Content)
	if err != nil {
		return nil, err
	}
	w, err := StartWAN(1+tree.Mirrors, s.WAN)
	if err != nil {
		return nil, err
	}
	srv := &wanServer{setup: s, content: c, wan: w, log: log}
	info := &srv.info
	info.Source = w.Hosts[0].Addr
	for _, h := range w.Hosts[1:] {
		info.Mirrors = append(info.Mirrors, h.Addr)
	}
	info.Shape = c.shape(scale)
	info.Shape.Content, info.Shape.WAN = s.Content, s.WAN
	info.BaseDir = filepath.Join(s.Dir, "base")
	info.HeadDir = filepath.Join(s.Dir, "head")
	info.RegsyncBase = filepath.Join(s.Dir, "regsync-base.yml")
	for _, d := range []string{info.BaseDir, info.HeadDir} {
		if err := os.RemoveAll(d); err != nil {
			w.Close()
			return nil, err
		}
	}
	if err := c.WriteThin(info.BaseDir, info.Source, info.Mirrors, false); err != nil {
		w.Close()
		return nil, err
	}
	if err := c.WriteThin(info.HeadDir, info.Source, info.Mirrors, true); err != nil {
		w.Close()
		return nil, err
	}
	if err := c.WriteRegsync(info.RegsyncBase, info.Source, info.Mirrors, false, parallel); err != nil {
		w.Close()
		return nil, err
	}
	// The source holds the change too: the pull request promotes what
	// was already pushed to staging.
	if err := w.Hosts[0].Seed(c.items(true), srv.sourceRepos); err != nil {
		w.Close()
		return nil, err
	}
	info.SeedSeconds = time.Since(start).Seconds()
	fmt.Fprintf(log, "bench: WAN: %s at %s: %d subprojects, %d images, %d repositories per mirror, %d digests, %d mirrors; generated and source seeded in %.1fs\n",
		tree.From, s.Scale, info.Shape.Subprojects, info.Shape.Images, info.Shape.ReposPerMirror, info.Shape.Digests, tree.Mirrors, info.SeedSeconds)
	return srv, nil
}

func (c *K8sContent) shape(scale float64) WANShape {
	t := c.Tree
	sh := WANShape{From: t.From, Scale: scale, Subprojects: len(t.Subprojects), Images: t.Images(), ReposPerMirror: t.Repos(), Digests: len(c.Items)}
	for _, it := range c.Items {
		paths := len(t.Subprojects[it.Sub].Paths)
		sh.Tags += len(it.Tags)
		sh.MirrorTags += len(it.Tags) * paths
		if len(it.Manifest.Children) > 0 {
			sh.Lists++
		}
		m, b := it.Manifest.counts()
		sh.Manifests += m
		sh.Blobs += b
	}
	pr := c.PR
	m, b := pr.Manifest.counts()
	sh.PR = WANPR{Subproject: t.Subprojects[pr.Sub].Name, Image: pr.Image, Digest: pr.Manifest.Digest, Tags: pr.Tags,
		Manifests: m, Blobs: b, Repos: len(t.Subprojects[pr.Sub].Paths)}
	return sh
}

// counts returns the manifests (m and its children) and blobs of m.
func (m *Manifest) counts() (manifests, blobs int) {
	manifests, blobs = 1, len(m.Blobs)
	for _, c := range m.Children {
		manifests++
		blobs += len(c.Blobs)
	}
	return manifests, blobs
}

func (s *wanServer) sourceRepos(it K8sItem) []string {
	return []string{s.content.Tree.Subprojects[it.Sub].Name + "/" + it.Image}
}

func (s *wanServer) mirrorRepos(it K8sItem) []string {
	var out []string
	for _, p := range s.content.Tree.Subprojects[it.Sub].Paths {
		out = append(out, p+"/"+it.Image)
	}
	return out
}

// setState empties every mirror and, for "promoted", seeds the base
// content into it (with the change too when withPR).
func (s *wanServer) setState(ctx context.Context, state string, withPR bool) error {
	if state != "promoted" && state != "empty" {
		return fmt.Errorf("mirror state %q: want promoted or empty", state)
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, h := range s.wan.Hosts[1:] {
		g.Go(func() error {
			h.Reset()
			if state == "empty" {
				return nil
			}
			return h.Seed(s.content.items(withPR), s.mirrorRepos)
		})
	}
	return g.Wait()
}

// WANCheck is the answer of the control API's /check.
type WANCheck struct {
	Checked int      `json:"checked"`
	Missing []string `json:"missing"`
}

func (s *wanServer) mux() http.Handler {
	m := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	m.HandleFunc("POST /state", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		err := s.setState(r.Context(), r.URL.Query().Get("mirrors"), r.URL.Query().Get("pr") == "1")
		reply(w, map[string]float64{"seconds": time.Since(start).Seconds()}, err)
	})
	m.HandleFunc("POST /take", func(w http.ResponseWriter, r *http.Request) {
		reply(w, s.wan.Take(), nil)
	})
	m.HandleFunc("GET /peek", func(w http.ResponseWriter, r *http.Request) {
		req, tm, hosts := s.wan.Peek()
		reply(w, map[string]int64{"requests": req, "too_many": tm, "hosts": int64(hosts)}, nil)
	})
	m.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		var items []K8sItem
		switch r.URL.Query().Get("items") {
		case "base":
			items = s.content.Items
		case "pr":
			items = []K8sItem{s.content.PR}
		case "all":
			items = s.content.items(true)
		default:
			http.Error(w, "items: want base, pr or all", http.StatusBadRequest)
			return
		}
		var c WANCheck
		for _, h := range s.wan.Hosts[1:] {
			n, miss := h.Check(items, s.mirrorRepos)
			c.Checked += n
			if len(c.Missing) < 10 {
				c.Missing = append(c.Missing, miss...)
			}
		}
		reply(w, c, nil)
	})
	return m
}
