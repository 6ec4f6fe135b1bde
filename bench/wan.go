package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cipdev/cip/internal/apipath"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The WAN simulator (issue 17): every registry host of the k8s-shaped
// workload (the staging source and each mirror) is its own HTTP server on
// a loopback port, an in-memory go-containerregistry registry behind a
// middleware that adds a latency to every request, enforces a request
// quota per host (a token bucket; past it the answer is 429 with
// Retry-After), and demands bearer tokens as Artifact Registry does (ping
// → 401 with a Bearer challenge → token endpoint on the same host, whose
// requests count against the quota too). It counts every request by host
// and kind, the 429s (in each host's first second and after), and the
// time-weighted number of hosts with a request in flight.

// WANOptions is what every simulated host does.
type WANOptions struct {
	// Latency is added to every request, answered or refused: a request
	// to a regional registry from a CI runner elsewhere costs tens of ms.
	Latency time.Duration
	// QPS is the request quota per host (per project of each host when
	// QuotaPer is "project"); Burst is the token bucket's depth.
	QPS   float64
	Burst int
	// QuotaPer is what one quota counts: "project", as Artifact Registry
	// and gcr.io count requests (per project and region: a host is a
	// region, the first component of a repository name its project, and
	// each staging repository of registry.k8s.io is a project of its own,
	// while the mirrors are one project in 22 regions), or "host" (the
	// whole host one quota, as issue 17 first simulated; "" too). A request that
	// names no repository (a ping) counts against the host's own quota;
	// a token request against its first scope's project.
	QuotaPer string
	// TokenTTL is the lifetime of a bearer token (expires_in).
	TokenTTL time.Duration
	// GCRList answers tags/list with GCR's extension, as gcr.io and
	// Artifact Registry do: every manifest of the repository (tagged or
	// not) with its tags, media type and size, and the child repositories
	// below the path. Without it a client learns a tag's digest only by a
	// HEAD or GET per tag.
	GCRList bool
}

// DefaultWAN: 40 ms per request and 60 requests/s per host, the figures
// issue 17 measured with (Artifact Registry answers 429 past roughly 50–80
// requests/s per region); a bucket one second deep; tokens valid for an
// hour, as Google's access tokens are; GCR's tags/list extension, which
// the Artifact Registry mirrors of registry.k8s.io answer.
var DefaultWAN = WANOptions{Latency: 40 * time.Millisecond, QPS: 60, Burst: 60, QuotaPer: "project", TokenTTL: time.Hour, GCRList: true}

// maxWANHosts bounds the hosts of one simulation: the per-second timeline
// keeps a bit per host.
const maxWANHosts = 64

// WAN is a set of simulated hosts with shared accounting.
type WAN struct {
	opts  WANOptions
	Hosts []*WANHost

	mu          sync.Mutex // guards the accounting below
	windowStart time.Time
	lastChange  time.Time
	busy        int     // hosts with at least one request in flight
	busyInt     float64 // ∫ busy dt, host-seconds
	timeline    []wanSecond
}

type wanSecond struct {
	requests, tooMany int64
	hosts             uint64 // bit i: host i saw a request in this second
}

// WANHost is one simulated registry host.
type WANHost struct {
	Role string // "source" or "mirror-NN"
	Addr string // 127.0.0.1:port
	idx  int
	wan  *WAN
	srv  *http.Server

	mu      sync.Mutex
	reg     http.Handler
	blobs   *repoBlobs
	index   *manIndex
	grants  map[string]*grant
	buckets map[string]*quotaBucket // by project ("" for the host's own, or every request when QuotaPer is "host")
	st      hostCounters
}

// quotaBucket is one quota's token bucket.
type quotaBucket struct {
	tokens float64
	at     time.Time
}

// hostCounters are guarded by WANHost.mu, except the in-flight fields,
// which WAN.mu guards.
type hostCounters struct {
	byKind    map[string]int64
	byStatus  map[string]int64 // "kind status"
	tooMany   int64
	tooMany1s int64 // in the first second after the first request of the quota it counts against
	first     time.Time
	// Per quota (project, or "" for the host's own): the first request,
	// and the answers other than 429.
	quotaFirst    map[string]time.Time
	quotaAnswered map[string]int64
	last          time.Time

	inflight    int
	maxInflight int
	busySince   time.Time
	busySecs    float64
}

// StartWAN starts n hosts (the first is the source) on loopback ports.
func StartWAN(n int, opts WANOptions) (*WAN, error) {
	if n < 1 || n > maxWANHosts {
		return nil, fmt.Errorf("start WAN: %d hosts, want 1 to %d", n, maxWANHosts)
	}
	if opts.QPS <= 0 || opts.Burst < 1 {
		return nil, fmt.Errorf("start WAN: quota %g/s, burst %d: both must be positive", opts.QPS, opts.Burst)
	}
	if opts.QuotaPer != "" && opts.QuotaPer != "host" && opts.QuotaPer != "project" {
		return nil, fmt.Errorf("start WAN: quota per %q: want host or project", opts.QuotaPer)
	}
	w := &WAN{opts: opts}
	w.reset(time.Now())
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("start WAN host %d: %w", i, err)
		}
		h := &WANHost{Role: "source", Addr: l.Addr().String(), idx: i, wan: w}
		if i > 0 {
			h.Role = fmt.Sprintf("mirror-%02d", i)
		}
		h.Reset()
		h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
		go h.srv.Serve(l)
		w.Hosts = append(w.Hosts, h)
	}
	return w, nil
}

// Close stops every host.
func (w *WAN) Close() {
	for _, h := range w.Hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h.srv.Shutdown(ctx)
		cancel()
	}
}

func (w *WAN) reset(now time.Time) {
	w.windowStart, w.lastChange = now, now
	w.busyInt = 0
	w.timeline = nil
}

// Reset empties a host: a new registry, no blobs, no tokens, a full bucket.
func (h *WANHost) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.blobs = &repoBlobs{data: map[string][]byte{}, links: map[string]map[string]bool{}}
	h.index = &manIndex{repos: map[string]map[string]*manEntry{}}
	h.reg = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)),
		ggcrregistry.WithReferrersSupport(true), ggcrregistry.WithBlobHandler(h.blobs))
	h.grants = map[string]*grant{}
	h.buckets = map[string]*quotaBucket{}
}

// quotaOf names the quota a request counts against.
func (h *WANHost) quotaOf(r *http.Request) string {
	if h.wan.opts.QuotaPer != "project" {
		return ""
	}
	return apipath.Project(r.URL.Path, r.URL.RawQuery)
}

// begin and end account a request's time in flight.
func (w *WAN) begin(h *WANHost, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	if h.st.inflight == 0 {
		w.busy++
		h.st.busySince = now
	}
	h.st.inflight++
	h.st.maxInflight = max(h.st.maxInflight, h.st.inflight)
	s := w.second(now)
	s.requests++
	s.hosts |= 1 << uint(h.idx)
}

func (w *WAN) end(h *WANHost, now time.Time, tooMany bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	h.st.inflight--
	if h.st.inflight == 0 {
		w.busy--
		h.st.busySecs += now.Sub(maxTime(h.st.busySince, w.windowStart)).Seconds()
	}
	if tooMany {
		w.second(now).tooMany++
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (w *WAN) advance(now time.Time) {
	if now.After(w.lastChange) {
		w.busyInt += float64(w.busy) * now.Sub(w.lastChange).Seconds()
		w.lastChange = now
	}
}

func (w *WAN) second(now time.Time) *wanSecond {
	i := max(0, int(now.Sub(w.windowStart)/time.Second))
	for len(w.timeline) <= i {
		w.timeline = append(w.timeline, wanSecond{})
	}
	return &w.timeline[i]
}

// WANStats is what the hosts saw in one window (between two Takes).
type WANStats struct {
	Seconds float64 `json:"seconds"`
	// BusyHostSeconds is ∫ (hosts with a request in flight) dt: divided by
	// a run's wall time, the hosts busy on average.
	BusyHostSeconds float64     `json:"busy_host_seconds"`
	Hosts           []HostStats `json:"hosts"`
	// Timeline has one entry per second of the window.
	Timeline []WANSecond `json:"timeline"`
}

// HostStats is one host's share of a window.
type HostStats struct {
	Role     string           `json:"role"`
	Addr     string           `json:"addr"`
	Requests int64            `json:"requests"`
	ByKind   map[string]int64 `json:"by_kind"`
	ByStatus map[string]int64 `json:"by_status"` // "kind status" -> n
	TooMany  int64            `json:"too_many"`
	// TooManyFirstSecond counts the 429s in the first second after the
	// first request of the window to the quota each counts against (the
	// host's, or its project's); the rest came later.
	TooManyFirstSecond int64 `json:"too_many_first_second"`
	// Quotas is how many quotas the host's requests counted against (1
	// when QuotaPer is "host"); BusiestQuota and BusiestAnswered name the
	// one that answered the most (other than 429).
	Quotas          int    `json:"quotas"`
	BusiestQuota    string `json:"busiest_quota,omitempty"`
	BusiestAnswered int64  `json:"busiest_answered"`
	// FirstSec and LastSec are the first arrival and the last answer, in
	// seconds from the window's start (0 when the host saw nothing).
	FirstSec    float64 `json:"first_sec"`
	LastSec     float64 `json:"last_sec"`
	MaxInFlight int     `json:"max_in_flight"`
	BusySeconds float64 `json:"busy_seconds"`
}

// WANSecond is one second of a window.
type WANSecond struct {
	Requests int64 `json:"requests"`
	TooMany  int64 `json:"too_many"`
	Hosts    int   `json:"hosts"` // hosts that saw a request in it
}

// Take returns the window since the last Take (or the start) and opens a
// new one. Requests in flight carry over into the new window.
func (w *WAN) Take() WANStats {
	now := time.Now()
	w.mu.Lock()
	w.advance(now)
	st := WANStats{Seconds: now.Sub(w.windowStart).Seconds(), BusyHostSeconds: w.busyInt}
	for _, s := range w.timeline {
		n := 0
		for b := s.hosts; b != 0; b &= b - 1 {
			n++
		}
		st.Timeline = append(st.Timeline, WANSecond{Requests: s.requests, TooMany: s.tooMany, Hosts: n})
	}
	start := w.windowStart
	hostBusy := make([]float64, len(w.Hosts))
	maxIn := make([]int, len(w.Hosts))
	for i, h := range w.Hosts {
		hostBusy[i] = h.st.busySecs
		if h.st.inflight > 0 {
			hostBusy[i] += now.Sub(maxTime(h.st.busySince, start)).Seconds()
		}
		maxIn[i] = h.st.maxInflight
		h.st.busySecs, h.st.maxInflight = 0, h.st.inflight
	}
	w.reset(now)
	w.mu.Unlock()
	for i, h := range w.Hosts {
		h.mu.Lock()
		hs := HostStats{Role: h.Role, Addr: h.Addr, ByKind: h.st.byKind, ByStatus: h.st.byStatus,
			TooMany: h.st.tooMany, TooManyFirstSecond: h.st.tooMany1s, MaxInFlight: maxIn[i], BusySeconds: hostBusy[i]}
		for _, n := range hs.ByKind {
			hs.Requests += n
		}
		hs.Quotas = len(h.st.quotaFirst)
		for q, n := range h.st.quotaAnswered {
			if n > hs.BusiestAnswered || (n == hs.BusiestAnswered && q < hs.BusiestQuota) {
				hs.BusiestQuota, hs.BusiestAnswered = q, n
			}
		}
		if !h.st.first.IsZero() {
			hs.FirstSec, hs.LastSec = h.st.first.Sub(start).Seconds(), h.st.last.Sub(start).Seconds()
		}
		h.st.byKind, h.st.byStatus = nil, nil
		h.st.quotaFirst, h.st.quotaAnswered = nil, nil
		h.st.tooMany, h.st.tooMany1s = 0, 0
		h.st.first, h.st.last = time.Time{}, time.Time{}
		h.mu.Unlock()
		st.Hosts = append(st.Hosts, hs)
	}
	return st
}

// Peek returns the current window's request and 429 totals and the hosts
// that saw a request in its last full second, without opening a new
// window (for progress lines).
func (w *WAN) Peek() (requests, tooMany int64, hostsLastSecond int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.timeline {
		requests += s.requests
		tooMany += s.tooMany
	}
	if n := len(w.timeline); n >= 2 {
		for b := w.timeline[n-2].hosts; b != 0; b &= b - 1 {
			hostsLastSecond++
		}
	}
	return requests, tooMany, hostsLastSecond
}

// take spends one request of a quota of the host (quotaOf); when its
// bucket is empty it returns how long until it holds a request again.
func (h *WANHost) take(now time.Time, quota string) (bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.wan.opts
	b := h.buckets[quota]
	if b == nil {
		b = &quotaBucket{tokens: float64(o.Burst), at: now}
		h.buckets[quota] = b
	}
	b.tokens = math.Min(float64(o.Burst), b.tokens+now.Sub(b.at).Seconds()*o.QPS)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / o.QPS * float64(time.Second))
}

func (h *WANHost) count(kind, quota string, status int, start, end time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st.byKind == nil {
		h.st.byKind, h.st.byStatus = map[string]int64{}, map[string]int64{}
		h.st.quotaFirst, h.st.quotaAnswered = map[string]time.Time{}, map[string]int64{}
	}
	if f, ok := h.st.quotaFirst[quota]; !ok || start.Before(f) {
		h.st.quotaFirst[quota] = start
	}
	h.st.byKind[kind]++
	h.st.byStatus[kind+" "+strconv.Itoa(status)]++
	if h.st.first.IsZero() || start.Before(h.st.first) {
		h.st.first = start
	}
	if end.After(h.st.last) {
		h.st.last = end
	}
	if status == http.StatusTooManyRequests {
		h.st.tooMany++
		if start.Sub(h.st.quotaFirst[quota]) < time.Second {
			h.st.tooMany1s++
		}
	} else {
		h.st.quotaAnswered[quota]++
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ServeHTTP is the middleware: account, spend quota, wait the latency,
// then refuse (429), authenticate, or serve.
func (h *WANHost) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind := wanKind(r)
	h.wan.begin(h, start)
	quota := h.quotaOf(r)
	ok, wait := h.take(start, quota)
	sw := &statusWriter{ResponseWriter: rw}
	t := time.NewTimer(h.wan.opts.Latency)
	select {
	case <-r.Context().Done():
		t.Stop()
		sw.status = 499 // the client gave up: nginx's code for it
	case <-t.C:
		if ok {
			h.serve(sw, r)
		} else {
			// Retry-After is in whole seconds (RFC 9110): round up.
			sw.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			writeRegError(sw, http.StatusTooManyRequests, "TOOMANYREQUESTS", "quota exceeded")
		}
	}
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	end := time.Now()
	h.count(kind, quota, sw.status, start, end)
	h.wan.end(h, end, sw.status == http.StatusTooManyRequests)
}

// wanKind names a request for the counts: ping, token, catalog, tags,
// manifest GET/HEAD/PUT/DELETE, blob GET/HEAD, blob POST (an upload
// opened), blob mount (a POST with mount=), blob PATCH, blob PUT (an upload
// closed), referrers. The path's kind is internal/apipath's, as the
// registry client and the loopback proxy count; the token endpoint and the
// methods are the simulator's own.
func wanKind(r *http.Request) string {
	if r.URL.Path == tokenPath {
		return "token"
	}
	switch k := apipath.Kind(r.URL.Path); k {
	case "manifest", "blob":
		return k + " " + r.Method
	case "upload":
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
			return "blob mount"
		}
		return "blob " + r.Method
	case "other":
		return "other " + r.Method
	default:
		return k
	}
}

// tokenPath is the token endpoint, on each host as on Artifact Registry
// (https://REGION-docker.pkg.dev/v2/token).
const tokenPath = "/v2/token"

// grant is what one token allows: actions per resource
// ("repository:NAME" -> {"pull", "push"}).
type grant struct {
	expires time.Time
	scopes  map[string]map[string]bool
}

func (g *grant) allows(resource, action string) bool {
	acts := g.scopes[resource]
	return acts[action] || acts["*"]
}

func (h *WANHost) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == tokenPath {
		h.issueToken(w, r)
		return
	}
	g := h.grantOf(r)
	if p == "/v2/" || p == "/v2" {
		if g == nil {
			h.challenge(w, "", false)
			return
		}
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	resource, action := "registry:catalog", "*"
	repo := ""
	if !strings.HasSuffix(p, "/_catalog") {
		var ok bool
		repo, ok = repoOfPath(p)
		if !ok {
			writeRegError(w, http.StatusNotFound, "NAME_UNKNOWN", "no repository in "+p)
			return
		}
		resource, action = "repository:"+repo, "pull"
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			action = "push"
		}
	}
	from := ""
	if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
		from = r.URL.Query().Get("from")
	}
	// As distribution does, a mount needs pull on the repository it
	// mounts from too: a client whose token lacks it gets a challenge
	// naming both scopes (and pays a token request for it).
	if g == nil || !g.allows(resource, action) || (from != "" && !g.allows("repository:"+from, "pull")) {
		scope := resource + ":" + action
		if action == "push" {
			scope = resource + ":pull,push"
		}
		if from != "" {
			scope += " repository:" + from + ":pull"
		}
		h.challenge(w, scope, g != nil)
		return
	}
	h.mu.Lock()
	reg, blobs, index := h.reg, h.blobs, h.index
	h.mu.Unlock()
	if h.wan.opts.GCRList && r.Method == http.MethodGet && strings.HasSuffix(p, "/tags/list") {
		index.list(w, repo)
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost && q.Get("mount") != "" {
		d := q.Get("mount")
		if from != "" && blobs.has(from, d) {
			blobs.link(repo, d)
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
			w.Header().Set("Docker-Content-Digest", d)
			w.WriteHeader(http.StatusCreated)
			return
		}
		// As distribution does: a mount that cannot be honoured opens an
		// ordinary upload.
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
	}
	if r.Method == http.MethodPut && strings.Contains(p, "/manifests/") {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			writeRegError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		if missing := blobs.missing(repo, r.Header.Get("Content-Type"), body); missing != "" {
			// pkg/registry does not check an image's blobs; Artifact
			// Registry and distribution do.
			writeRegError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "blob unknown: "+missing)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w}
		reg.ServeHTTP(sw, r)
		if sw.status == http.StatusCreated {
			index.put(repo, path.Base(p), sw.Header().Get("Docker-Content-Digest"), r.Header.Get("Content-Type"), body)
		}
		return
	}
	if r.Method == http.MethodDelete && strings.Contains(p, "/manifests/") {
		sw := &statusWriter{ResponseWriter: w}
		reg.ServeHTTP(sw, r)
		if sw.status == http.StatusAccepted {
			index.remove(repo, path.Base(p))
		}
		return
	}
	reg.ServeHTTP(w, r)
}

// manIndex knows every manifest of every repository of a host, for GCR's
// tags/list extension (pkg/registry lists tags only).
type manIndex struct {
	mu    sync.Mutex
	repos map[string]map[string]*manEntry // repository -> digest -> entry
}

type manEntry struct {
	mediaType string
	size      int64 // an image's config and layers; 0 for an index
	tags      map[string]bool
	uploaded  time.Time
}

// put records a manifest put by ref (a tag or its digest).
func (x *manIndex) put(repo, ref, digest, mediaType string, body []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ms := x.repos[repo]
	if ms == nil {
		ms = map[string]*manEntry{}
		x.repos[repo] = ms
	}
	e := ms[digest]
	if e == nil {
		e = &manEntry{mediaType: mediaType, tags: map[string]bool{}, uploaded: time.Now()}
		if types.MediaType(mediaType).IsImage() {
			if m, err := v1.ParseManifest(bytes.NewReader(body)); err == nil {
				e.size = m.Config.Size
				for _, l := range m.Layers {
					e.size += l.Size
				}
			}
		}
		ms[digest] = e
	}
	if ref != digest {
		for _, o := range ms {
			delete(o.tags, ref)
		}
		e.tags[ref] = true
	}
}

func (x *manIndex) remove(repo, ref string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ms := x.repos[repo]
	if _, ok := ms[ref]; ok {
		delete(ms, ref)
		return
	}
	for _, e := range ms {
		delete(e.tags, ref)
	}
}

// gcrManifest is one entry of GCR's tags/list "manifest" map.
type gcrManifest struct {
	Size       string   `json:"imageSizeBytes"`
	LayerID    string   `json:"layerId"`
	MediaType  string   `json:"mediaType"`
	Tags       []string `json:"tag"`
	CreatedMS  string   `json:"timeCreatedMs"`
	UploadedMS string   `json:"timeUploadedMs"`
}

// list answers tags/list as GCR does: every tag, every manifest, and the
// repositories one level below, in one page.
func (x *manIndex) list(w http.ResponseWriter, repo string) {
	x.mu.Lock()
	body := struct {
		Child    []string               `json:"child"`
		Manifest map[string]gcrManifest `json:"manifest"`
		Name     string                 `json:"name"`
		Tags     []string               `json:"tags"`
	}{Child: []string{}, Manifest: map[string]gcrManifest{}, Name: repo, Tags: []string{}}
	children := map[string]bool{}
	for r := range x.repos {
		if rest, ok := strings.CutPrefix(r, repo+"/"); ok {
			c, _, _ := strings.Cut(rest, "/")
			children[c] = true
		}
	}
	for d, e := range x.repos[repo] {
		m := gcrManifest{Size: strconv.FormatInt(e.size, 10), MediaType: e.mediaType, Tags: []string{},
			CreatedMS: strconv.FormatInt(e.uploaded.UnixMilli(), 10), UploadedMS: strconv.FormatInt(e.uploaded.UnixMilli(), 10)}
		for t := range e.tags {
			m.Tags = append(m.Tags, t)
			body.Tags = append(body.Tags, t)
		}
		slices.Sort(m.Tags)
		body.Manifest[d] = m
	}
	x.mu.Unlock()
	if len(body.Manifest) == 0 && len(children) == 0 {
		writeRegError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository "+repo+" not found")
		return
	}
	for c := range children {
		body.Child = append(body.Child, c)
	}
	slices.Sort(body.Child)
	slices.Sort(body.Tags)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// repoOfPath returns the repository of /v2/NAME/(manifests|blobs|tags|referrers)/….
func repoOfPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	best := -1
	for _, s := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, s); i > 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return rest[:best], true
}

func (h *WANHost) challenge(w http.ResponseWriter, scope string, insufficient bool) {
	c := fmt.Sprintf(`Bearer realm="http://%s%s",service="%s"`, h.Addr, tokenPath, h.Addr)
	if scope != "" {
		c += fmt.Sprintf(`,scope="%s"`, scope)
	}
	if insufficient {
		c += `,error="insufficient_scope"`
	}
	w.Header().Set("WWW-Authenticate", c)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeRegError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func (h *WANHost) grantOf(r *http.Request) *grant {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.grants[tok]
	if g == nil {
		return nil
	}
	if time.Now().After(g.expires) {
		delete(h.grants, tok)
		return nil
	}
	return g
}

// issueToken grants whatever is asked, anonymously: the simulation is about
// the requests auth costs, not about who may push. Several scope
// parameters (or space-separated scopes) are granted in one token, as the
// token protocol allows.
func (h *WANHost) issueToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeRegError(w, http.StatusBadRequest, "UNSUPPORTED", err.Error())
		return
	}
	g := &grant{expires: time.Now().Add(h.wan.opts.TokenTTL), scopes: map[string]map[string]bool{}}
	for _, v := range r.Form["scope"] {
		for _, s := range strings.Fields(v) {
			i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if i < 0 || j <= i {
				continue
			}
			res := s[:j]
			if g.scopes[res] == nil {
				g.scopes[res] = map[string]bool{}
			}
			for _, a := range strings.Split(s[j+1:], ",") {
				g.scopes[res][a] = true
			}
		}
	}
	var b [16]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	h.mu.Lock()
	h.grants[tok] = g
	h.mu.Unlock()
	ttl := int(h.wan.opts.TokenTTL.Seconds())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": ttl,
		"issued_at": time.Now().UTC().Format(time.RFC3339)})
}

func writeRegError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// repoBlobs is a blob store that knows which repository holds which blob:
// pkg/registry's own store answers a blob HEAD in every repository once any
// repository has it, which real registries do not (and which would make
// cross-repository mounts pointless).
type repoBlobs struct {
	mu    sync.RWMutex
	data  map[string][]byte          // digest -> bytes
	links map[string]map[string]bool // repository -> digests
}

// blobRepo undoes pkg/registry's repository name for a finished upload
// (PUT /v2/NAME/blobs/uploads/ID is passed as "NAME/blobs").
func blobRepo(repo string) string { return strings.TrimSuffix(repo, "/blobs") }

func (b *repoBlobs) has(repo, digest string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.links[blobRepo(repo)][digest]
}

func (b *repoBlobs) link(repo, digest string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.linkLocked(blobRepo(repo), digest)
}

func (b *repoBlobs) linkLocked(repo, digest string) {
	if b.links[repo] == nil {
		b.links[repo] = map[string]bool{}
	}
	b.links[repo][digest] = true
}

// put stores a blob the harness seeds (trusted bytes, no verification).
func (b *repoBlobs) put(repo string, bl *Blob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.data[bl.Digest]; !ok {
		b.data[bl.Digest] = bl.Data
	}
	b.linkLocked(repo, bl.Digest)
}

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.links[blobRepo(repo)][h.String()] {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(b.data[h.String()])), nil
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.links[blobRepo(repo)][h.String()] {
		return nil, ggcrregistry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b.data[h.String()])), nil
}

// Put reads the upload through pkg/registry's verifying reader, which fails
// on a digest or size mismatch.
func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data[h.String()] = data
	b.linkLocked(blobRepo(repo), h.String())
	return nil
}

func (b *repoBlobs) Delete(_ context.Context, repo string, h v1.Hash) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := blobRepo(repo)
	if !b.links[r][h.String()] {
		return ggcrregistry.ErrNotFound
	}
	delete(b.links[r], h.String())
	return nil
}

// missing returns the first blob an image manifest references that repo
// does not hold ("" for indexes, other types, and complete images).
func (b *repoBlobs) missing(repo, mediaType string, body []byte) string {
	if !types.MediaType(mediaType).IsImage() {
		return ""
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if !b.has(repo, d.Digest.String()) {
			return d.Digest.String()
		}
	}
	return ""
}

// Seed writes items into the host directly (no latency, quota or auth, not
// counted): blobs into the store, manifests through the registry handler,
// children before their index, by digest and then by each tag. repos gives
// an item's repositories on this host.
func (h *WANHost) Seed(items []K8sItem, repos func(K8sItem) []string) error {
	h.mu.Lock()
	reg, blobs, index := h.reg, h.blobs, h.index
	h.mu.Unlock()
	put := func(repo, ref string, m *Manifest) error {
		req := httptest.NewRequest(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m.Data))
		req.Header.Set("Content-Type", m.MediaType)
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			return fmt.Errorf("seed %s %s/%s:%s: %d %s", h.Role, h.Addr, repo, ref, rec.Code, rec.Body)
		}
		index.put(repo, ref, m.Digest, m.MediaType, m.Data)
		return nil
	}
	for _, it := range items {
		for _, repo := range repos(it) {
			ms := append(slices.Clone(it.Manifest.Children), it.Manifest)
			for _, m := range ms {
				for _, bl := range m.Blobs {
					blobs.put(repo, bl)
				}
				if err := put(repo, m.Digest, m); err != nil {
					return err
				}
			}
			for _, t := range it.Tags {
				if err := put(repo, t, it.Manifest); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Check reports what of items the host does not hold: every tag at its
// digest, every child manifest and every blob (the first few misses, and
// how many were checked). It goes to the registry handler directly.
func (h *WANHost) Check(items []K8sItem, repos func(K8sItem) []string) (checked int, missing []string) {
	h.mu.Lock()
	reg, blobs := h.reg, h.blobs
	h.mu.Unlock()
	miss := func(s string) {
		if len(missing) < 10 {
			missing = append(missing, s)
		}
	}
	for _, it := range items {
		for _, repo := range repos(it) {
			for _, ref := range it.Tags {
				checked++
				req := httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil)
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, req)
				if got := rec.Header().Get("Docker-Content-Digest"); rec.Code != http.StatusOK || got != it.Manifest.Digest {
					miss(fmt.Sprintf("%s/%s:%s: %d %s, want %s", h.Addr, repo, ref, rec.Code, got, it.Manifest.Digest))
				}
			}
			for _, m := range append(slices.Clone(it.Manifest.Children), it.Manifest) {
				checked++
				req := httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+m.Digest, nil)
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					miss(fmt.Sprintf("%s/%s@%s: %d", h.Addr, repo, m.Digest, rec.Code))
				}
				for _, bl := range m.Blobs {
					checked++
					if !blobs.has(repo, bl.Digest) {
						miss(fmt.Sprintf("%s/%s blob %s: absent", h.Addr, repo, bl.Digest))
					}
				}
			}
		}
	}
	return checked, missing
}
