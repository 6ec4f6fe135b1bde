package audit

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
)

// Limits and timeouts of the server. It faces the internet (registries and
// Pub/Sub push to it), so every request is bounded in size, time and
// number.
const (
	// MaxBodyBytes caps a request body: a distribution event is under 1 KiB
	// and a Pub/Sub push under 2 KiB, so 1 MiB holds the largest envelope
	// accepted (MaxEventsPerEnvelope events) many times over while bounding
	// what one request can make the server hold in memory.
	MaxBodyBytes = 1 << 20
	// MinTokenBytes is the shortest token accepted: 16 random bytes (128
	// bits) cannot be guessed by trying.
	MinTokenBytes = 16
	// DefaultPollInterval is how often the manifests' files are checked
	// for changes: a stat of each file (the Kubernetes manifests are a few
	// hundred files), and a change is picked up well within a minute.
	DefaultPollInterval = 10 * time.Second
	// ShutdownTimeout bounds the wait for requests in flight on SIGTERM:
	// a request takes milliseconds, and Kubernetes sends SIGKILL 30 s
	// (terminationGracePeriodSeconds) after SIGTERM.
	ShutdownTimeout = 10 * time.Second

	// maxInFlight bounds concurrent event requests: their writes queue on
	// SQLite's single writer anyway, so more in flight only wait longer.
	// More are answered 503, which both senders retry.
	maxInFlight = 16
	// A request has readHeaderTimeout to send its headers and readTimeout
	// for its whole body (1 MiB within 30 s is 35 KiB/s: slower clients
	// are dropped rather than holding a connection); writeTimeout bounds
	// the answer, idleTimeout a kept-alive connection.
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// maxWatchedFiles bounds the files stat'ed per poll (the Kubernetes
	// manifests are about 300 files).
	maxWatchedFiles = 100_000
)

// Store is what the server needs of the inventory. *inventory.DB
// implements it.
type Store interface {
	Inventory
	RecordAuditEvents(ctx context.Context, events []inventory.AuditEvent) ([]bool, error)
}

// ServerOptions configures a Server.
type ServerOptions struct {
	Store Store
	// Token is the bearer token (or shared secret) every request to
	// /events and /metrics must carry: "Authorization: Bearer TOKEN", or
	// "?token=TOKEN" for senders that cannot set headers (a Pub/Sub push
	// subscription). At least MinTokenBytes.
	Token []byte
	// Load reads and validates the promoter manifests.
	Load func() (*manifest.Set, error)
	// Refresh, when set, brings the inventory up to date for a newly
	// loaded set (cip syncs the manifests' source repositories, so that it
	// knows the children of promoted indexes). Events wait (503) until the
	// first refresh has finished; a failed refresh is logged and the
	// server goes on with what the inventory knows.
	Refresh func(ctx context.Context, set *manifest.Set) error
	// Read, when set, reads a pushed manifest the inventory does not hold
	// from its (destination) repository, so that an OCI 1.1 referrer
	// pushed by digest, untagged, is judged by its subject field (see
	// liveInventory for the bounds). Nil: such a referrer is judged from
	// the inventory alone, and rejected until a sync records it.
	Read ManifestReader
	// Watch lists the files or directories Load reads; they are polled
	// every PollInterval (DefaultPollInterval when 0) and a change reloads
	// the manifests. Empty: reload only when Reload is called (SIGHUP).
	Watch        []string
	PollInterval time.Duration
	// Logger receives what the server does (listening, reloads, refused
	// requests); Verdicts receives one record per judged event (Logger
	// when nil).
	Logger   *slog.Logger
	Verdicts *slog.Logger
}

// Server judges registry notifications against the promoter manifests. It
// serves:
//
//	POST /events   a distribution envelope or a Pub/Sub push (token required)
//	GET  /metrics  Prometheus metrics (token required)
//	GET  /healthz  200 while the process serves
//	GET  /readyz   200 once the first refresh is done, 503 before
type Server struct {
	opts     ServerOptions
	log      *slog.Logger
	verdicts *slog.Logger
	token    [sha256.Size]byte

	policy atomic.Pointer[Policy]
	ready  atomic.Bool
	sem    chan struct{}

	reloadMu sync.Mutex
	lastSeen string        // fingerprint of the watched files at the last load attempt
	first    *manifest.Set // the set loaded by NewServer, until its first refresh

	lastAuthLog atomic.Int64 // unix nanoseconds of the last refused-token log line

	m *metrics
}

// NewServer loads the manifests (an invalid set is an error: there is no
// last good set yet) and returns a server ready to Serve.
func NewServer(opts ServerOptions) (*Server, error) {
	if len(opts.Token) < MinTokenBytes {
		return nil, fmt.Errorf("audit server: the token has %d bytes, want at least %d", len(opts.Token), MinTokenBytes)
	}
	if opts.Store == nil || opts.Load == nil {
		return nil, errors.New("audit server: a Store and a Load function are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, verdicts: opts.Verdicts, token: sha256.Sum256(opts.Token),
		sem: make(chan struct{}, maxInFlight), m: newMetrics()}
	if s.verdicts == nil {
		s.verdicts = s.log
	}
	s.lastSeen = fingerprint(opts.Watch)
	set, err := opts.Load()
	if err != nil {
		return nil, err
	}
	s.install(set)
	if opts.Refresh != nil {
		s.first = set
	} else {
		s.ready.Store(true)
	}
	return s, nil
}

// Policy returns the policy in force.
func (s *Server) Policy() *Policy { return s.policy.Load() }

func (s *Server) install(set *manifest.Set) {
	p := NewPolicy(set)
	s.policy.Store(p)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.m.lastReload.SetToCurrentTime()
	s.m.digests.Set(float64(p.Digests))
	s.log.Info("manifests loaded", "manifests", p.Manifests, "repositories", p.Repositories, "digests", p.Digests, "tags", p.Tags, "skipped", len(set.Warnings))
	for _, w := range set.Warnings {
		s.log.Warn("manifest entry skipped", "problem", w.Error())
	}
}

// Reload loads the manifests again. An invalid set is refused: the last
// good set stays in force, and the error is logged and returned.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reload(ctx, fingerprint(s.opts.Watch))
}

// reload does the work of Reload under reloadMu; seen is the fingerprint
// of the watched files taken before they are read.
func (s *Server) reload(ctx context.Context, seen string) error {
	s.lastSeen = seen
	set, err := s.opts.Load()
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		s.log.Error("manifests not reloaded: keeping the last good set", "error", err.Error())
		return err
	}
	s.refresh(ctx, set)
	s.install(set)
	return nil
}

func (s *Server) refresh(ctx context.Context, set *manifest.Set) {
	if s.opts.Refresh == nil {
		return
	}
	start := time.Now()
	if err := s.opts.Refresh(ctx, set); err != nil {
		s.log.Warn("inventory refresh failed: children of promoted indexes the inventory does not know yet will be rejected", "error", err.Error())
		return
	}
	s.log.Info("inventory refreshed", "seconds", time.Since(start).Seconds())
}

// poll reloads the manifests whenever the watched files change.
func (s *Server) poll(ctx context.Context) {
	if len(s.opts.Watch) == 0 {
		return
	}
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(s.opts.Watch)
		s.reloadMu.Lock()
		if fp != s.lastSeen {
			s.log.Info("manifest files changed: reloading")
			s.reload(ctx, fp) //nolint:errcheck // logged by reload; the last good set stays
		}
		s.reloadMu.Unlock()
	}
}

// Serve answers on ln until ctx is cancelled, then stops taking requests
// and waits up to ShutdownTimeout for those in flight. It also runs the
// first refresh and the manifest poll.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests in flight at shutdown finish their writes: their
		// context is not the one SIGTERM cancels.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String())

	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if !s.ready.Load() {
			s.reloadMu.Lock()
			s.refresh(bg, s.first)
			s.first = nil
			s.reloadMu.Unlock()
			s.ready.Store(true)
			s.log.Info("ready")
		}
		s.poll(bg)
	})
	var err error
	select {
	case err = <-errc:
		stop()
		wg.Wait()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "wait", ShutdownTimeout.String())
	stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	wg.Wait()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/events", s.events)
	mux.Handle("/metrics", s.authorize(promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n") //nolint:errcheck
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: refreshing the inventory", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n") //nolint:errcheck
	})
	return s.count(s.recover(mux))
}

// authorize lets through requests carrying the token.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized checks the token, compared in constant time (as SHA-256
// sums, so that not even its length shows), and answers 401 when it is
// missing or wrong.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	var got string
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			got = strings.TrimSpace(tok)
		}
	} else {
		got = r.URL.Query().Get("token")
	}
	sum := sha256.Sum256([]byte(got))
	if got != "" && subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1 {
		return true
	}
	why := "no token"
	if got != "" {
		why = "wrong token"
	}
	// At most one line a second: a flood of bad requests must not flood
	// the log (the requests metric counts every 401).
	now := time.Now().UnixNano()
	if last := s.lastAuthLog.Load(); now-last > int64(time.Second) && s.lastAuthLog.CompareAndSwap(last, now) {
		s.log.Warn("request refused", "why", why, "remote", r.RemoteAddr, "path", r.URL.Path)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="cip audit"`)
	http.Error(w, "unauthorized: "+why, http.StatusUnauthorized)
	return false
}

// summary is the answer to an accepted envelope.
type summary struct {
	Verified   int `json:"verified"`
	Rejected   int `json:"rejected"`
	Ignored    int `json:"ignored"`
	Duplicates int `json:"duplicates"`
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an envelope", http.StatusMethodNotAllowed)
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if !s.ready.Load() {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "not ready: refreshing the inventory", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	events, err := ParseEnvelope(body)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrTooManyEvents) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	sum, err := s.handle(r.Context(), events)
	if err != nil {
		// The sender retries: nothing was recorded or counted.
		s.log.Error("events not recorded", "error", err.Error())
		http.Error(w, "events not recorded; send them again", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sum) //nolint:errcheck // the sender may be gone; its events are recorded
}

// handle judges events, records the verdicts in one transaction and, for
// events not seen before, logs and counts them.
func (s *Server) handle(ctx context.Context, events []Event) (summary, error) {
	var sum summary
	p := s.policy.Load()
	var verdicts []Verdict
	var inv Inventory = s.opts.Store
	var live *liveInventory
	if s.opts.Read != nil {
		live = newLiveInventory(s.opts.Store, s.opts.Read, time.Now())
		inv = live
	}
	for _, ev := range events {
		if ev.Ignored != "" {
			sum.Ignored++
			s.m.ignored.WithLabelValues(ev.Ignored).Inc()
			continue
		}
		if live != nil {
			live.event()
		}
		v, err := p.Judge(ctx, inv, ev)
		if err != nil {
			return summary{}, fmt.Errorf("judge %s event %s: %w", ev.Source, ev.ID, err)
		}
		if live != nil && v.Verdict == Rejected {
			v.Detail += live.note()
		}
		verdicts = append(verdicts, v)
	}
	if len(verdicts) == 0 {
		return sum, nil
	}
	rows := make([]inventory.AuditEvent, len(verdicts))
	for i, v := range verdicts {
		rows[i] = inventory.AuditEvent{Source: v.Source, EventID: v.ID, OccurredAt: v.OccurredAt, Action: v.Action,
			Registry: v.Registry, Repository: v.Repository, Digest: v.Digest, Tag: v.Tag,
			Verdict: v.Verdict, Reason: string(v.Reason), Detail: v.Detail}
	}
	inserted, err := s.opts.Store.RecordAuditEvents(ctx, rows)
	if err != nil {
		return summary{}, err
	}
	for i, v := range verdicts {
		if !inserted[i] {
			sum.Duplicates++
			s.m.ignored.WithLabelValues("duplicate").Inc()
			continue
		}
		if v.Verdict == Verified {
			sum.Verified++
		} else {
			sum.Rejected++
		}
		registry := v.Registry
		if !p.Host(registry) {
			// Label values come from requests: only known hosts get
			// their own, so a sender cannot grow the metrics without end.
			registry = "other"
		}
		s.m.events.WithLabelValues(v.Verdict, string(v.Reason), registry).Inc()
		s.logVerdict(ctx, v)
	}
	return sum, nil
}

func (s *Server) logVerdict(ctx context.Context, v Verdict) {
	level := slog.LevelInfo
	if v.Verdict == Rejected {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("verdict", v.Verdict), slog.String("reason", string(v.Reason)),
		slog.String("source", v.Source), slog.String("event_id", v.ID), slog.String("action", v.Action),
		slog.String("registry", v.Registry), slog.String("repository", v.Repository),
		slog.String("digest", v.Digest), slog.String("tag", v.Tag), slog.String("detail", v.Detail),
	}
	if v.Parent != "" {
		attrs = append(attrs, slog.String("parent", v.Parent))
	}
	if v.File != "" {
		attrs = append(attrs, slog.String("file", v.File), slog.Int("line", v.Line))
	}
	s.verdicts.LogAttrs(ctx, level, "TRANSACTION "+v.Verdict, attrs...)
}

// recover turns a panic in a handler into a 500 and a log line, so that no
// request can take the server down.
func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if e := recover(); e != nil {
				if e == http.ErrAbortHandler {
					panic(e)
				}
				s.log.Error("request panicked", "path", r.URL.Path, "panic", fmt.Sprint(e))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// count records every answer's status code.
func (s *Server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.m.requests.WithLabelValues(fmt.Sprint(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metrics are the server's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg        *prometheus.Registry
	events     *prometheus.CounterVec
	ignored    *prometheus.CounterVec
	requests   *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
	digests    prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cip_audit_events_total",
			Help: "Registry events judged, by verdict, reason and registry host (other: a host no manifest promotes into); each event once however often it was delivered."},
			[]string{"verdict", "reason", "registry"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cip_audit_events_ignored_total",
			Help: "Events not judged: pulls, blob uploads and mounts, and redeliveries (duplicate) of events already judged."},
			[]string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cip_audit_http_requests_total",
			Help: "HTTP requests answered, by status code."}, []string{"code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cip_audit_manifest_reloads_total",
			Help: "Manifest loads, by result (error: refused, the last good set stayed in force)."}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cip_audit_manifest_last_reload_timestamp_seconds",
			Help: "When the manifests in force were loaded (Unix time)."}),
		digests: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cip_audit_manifest_digests",
			Help: "Digests the manifests in force promote, counted once per destination repository and manifest naming them."}),
	}
	m.reg.MustRegister(m.events, m.ignored, m.requests, m.reloads, m.lastReload, m.digests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
