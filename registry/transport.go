package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/mediatype"
)

// Defaults for the shared transport.
const (
	// DefaultMaxRetries: five retries with exponential backoff from
	// DefaultBackoff span about 30 s, long enough to ride out a registry
	// restart or a short 429 storm, short enough to fail a run that cannot
	// succeed.
	DefaultMaxRetries = 5
	// DefaultBackoff is the first retry delay; it doubles each retry.
	DefaultBackoff = 500 * time.Millisecond
	// MaxRetryAfter caps a server's Retry-After so that a hostile or
	// confused registry cannot stall a run for hours.
	MaxRetryAfter = 60 * time.Second
	// MaxThrottledRetries bounds the retries of one request answered 429.
	// They do not use up MaxRetries: a host at its quota is not failing,
	// and its pace adapts (throttle.go), so a request is rarely refused
	// twice; the bound only keeps a host that refuses everything from
	// holding a run forever (20 waits of at most MaxRetryAfter).
	MaxThrottledRetries = 20
)

// TransportOptions configures NewTransport.
type TransportOptions struct {
	// QPS is the ceiling of requests per second to each registry host; 0
	// means none (the pace still adapts to 429 answers).
	QPS float64
	// Jobs bounds the requests in flight to each registry host; 0 means
	// DefaultJobs.
	Jobs int
	// Hosts gives known limits per host (a hosts config file), overriding
	// QPS and Jobs for the hosts it names; nil means none.
	Hosts *HostsConfig
	// Quotas are quotas earlier runs measured (an inventory keeps them):
	// each host or project named starts its pace just under its quota
	// (throttle.remember) instead of at the hosts config's start-qps guess,
	// unless it has a ceiling (QPS, the hosts config's qps: a quota the
	// user knows), which it starts at as before.
	Quotas []Quota
	// MaxRetries on 429, 5xx and dropped connections; negative means none.
	MaxRetries int
	// Backoff is the first retry delay (doubles each retry, with jitter).
	Backoff time.Duration
	// Base is the underlying transport; nil means a clone of
	// http.DefaultTransport with more idle connections per host and the
	// dial and TLS handshake timeouts below (which only apply to it).
	Base http.RoundTripper
	// Timeouts; 0 means the Default… constant, negative means none.
	// DialTimeout bounds opening a connection, TLSHandshakeTimeout its TLS
	// handshake; ResponseHeaderTimeout the wait for an answer after the
	// request is sent; IdleTimeout a body (either way) that moves no byte;
	// RequestTimeout a whole attempt, except blob streams (a blob GET, an
	// upload's body, a redirect to blob storage), which only the idle
	// timeout bounds.
	DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout, IdleTimeout, RequestTimeout time.Duration
	// HostRetryBudget and RunRetryBudget bound the retries of a run, per
	// registry host and in all (a retry after a timeout counts as
	// timeoutRetryCost); every answered request earns one back. A host
	// that cannot pay for a retry is given up: its requests fail at once
	// with a *GivenUpError. 0 means the Default… constant; negative means
	// no retries at all.
	HostRetryBudget, RunRetryBudget int
	// Sleep waits between retries; nil means a context-aware timer. Tests
	// inject it to observe Retry-After handling without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of the per-host pace; nil means time.Now.
	Now func() time.Time
	// Logger receives every request at Debug (method, host, kind, status,
	// duration, attempt), every retry at Info (429) or Warn (the others)
	// with its reason and wait, every cut of a host's pace at Info (the
	// pace and the quota measured, requests/s), and every request or host
	// given up at Warn; nil means none. Its records are redacted (Redact).
	Logger *slog.Logger
	// Events, when set, is called for each retry about to wait and each
	// host given up (from the request's goroutine: keep it quick).
	Events func(Event)
}

// Transport is the one HTTP transport shared by every request of a run: it
// schedules per host (requests in flight and an adaptive pace, see
// throttle.go), bounds every request in time, retries with backoff
// honouring Retry-After within a retry budget, logs, and counts requests
// by host, method and kind (Stats).
type Transport struct {
	base       http.RoundTripper
	qps        float64
	jobs       int
	hostsCfg   *HostsConfig
	maxRetries int
	backoff    time.Duration
	timeouts   timeouts
	hostBudget int
	budget     *budget // the run's
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	log        *slog.Logger // nil: none
	events     func(Event)
	secrets    *secrets // credentials handed out this run, redacted wherever they might appear

	hosts sync.Map // registry host (host[:port]) -> *hostState
	// remembered holds Quotas by host and project.
	remembered map[quotaKey]float64
}

// Quota is a request quota a throttling episode timed: the requests per
// second Host accepted (in Project on a host whose quota is per project,
// "" for the host's own) when it refused, and when that was.
type Quota struct {
	Host, Project string
	QPS           float64
	MeasuredAt    time.Time
}

type quotaKey struct{ host, project string }

// NewTransport returns a shared transport.
func NewTransport(opts TransportOptions) *Transport {
	to := opts.timeouts()
	base := opts.Base
	if base == nil {
		base = defaultBase(to)
	}
	maxRetries := opts.MaxRetries
	if maxRetries == 0 {
		maxRetries = DefaultMaxRetries
	}
	if maxRetries < 0 {
		maxRetries = 0
	}
	backoff := opts.Backoff
	if backoff == 0 {
		backoff = DefaultBackoff
	}
	sleep := opts.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	budgetOf := func(v, def int) int {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	sec := &secrets{}
	log := opts.Logger
	if log != nil {
		log = slog.New(redactingHandler(log.Handler(), sec))
	}
	remembered := make(map[quotaKey]float64, len(opts.Quotas))
	for _, q := range opts.Quotas {
		remembered[quotaKey{q.Host, q.Project}] = q.QPS // throttle.remember ignores a rate that is none
	}
	return &Transport{secrets: sec, remembered: remembered,
		base: base, qps: opts.QPS, jobs: jobs, hostsCfg: opts.Hosts, maxRetries: maxRetries, backoff: backoff, timeouts: to,
		hostBudget: budgetOf(opts.HostRetryBudget, DefaultHostRetryBudget),
		budget:     newBudget(budgetOf(opts.RunRetryBudget, DefaultRunRetryBudget)),
		sleep:      sleep, now: now, log: log, events: opts.Events,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// host returns the state kept for a registry host, made on first use.
func (t *Transport) host(name string) *hostState {
	if h, ok := t.hosts.Load(name); ok {
		return h.(*hostState)
	}
	hc, _ := t.hostsCfg.Lookup(name)
	hc = hc.resolve(name)
	h := &hostState{ceiling: t.qps, jobs: t.jobs, start: hc.StartQPS, budget: newBudget(t.hostBudget)}
	if hc.QPS > 0 {
		h.ceiling = hc.QPS
	}
	if hc.Jobs > 0 {
		h.jobs = hc.Jobs
	}
	h.throttle = t.newThrottle(h, name, "")
	if hc.QuotaPer == QuotaPerProject {
		h.wide = make(chan struct{}, wideJobs*h.jobs)
	}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	got, loaded := t.hosts.LoadOrStore(name, h)
	if loaded {
		h.cancel(nil)
	}
	return got.(*hostState)
}

// wideJobs bounds the requests in flight to a host whose quota is per
// project, in all its projects: that many times the per-project Jobs
// (256 at the default 8), so that a run reading 70 staging projects of
// one host at once still opens a bounded number of connections to it. At
// 8 times (64) the bound, not the quotas, held the source of the WAN
// benchmark's fresh plan: its largest project, waiting for slots behind
// 70 others, sent less than its pace (46.9 s at 1/16 where 128 in flight
// per project took 27.5 s).
const wideJobs = 32

// maxProjects bounds the projects of one host that get a pace of their
// own; requests to further projects share the host's.
const maxProjects = 4096

// newThrottle returns the scheduler of a host's project ("": the host's
// own): at its ceiling if it has one (a quota the user knows), else from
// the quota an earlier run measured there, else at the host's start guess.
func (t *Transport) newThrottle(h *hostState, host, project string) *throttle {
	th := newThrottle(h.jobs, h.ceiling, t.now, t.sleep)
	if q, ok := t.remembered[quotaKey{host, project}]; ok && h.ceiling == 0 {
		th.remember(q)
	} else {
		th.start(h.start)
	}
	return th
}

// MeasuredQuotas returns the quotas this run's throttling episodes timed,
// by host and project (a guess, from refusals too close together or a
// loaded client, is not one): what an inventory keeps for the next run.
func (t *Transport) MeasuredQuotas() []Quota {
	var out []Quota
	t.hosts.Range(func(k, v any) bool {
		h := v.(*hostState)
		add := func(project string, th *throttle) {
			if q, at := th.measuredQuota(); q > 0 {
				out = append(out, Quota{Host: k.(string), Project: project, QPS: q, MeasuredAt: at})
			}
		}
		add("", h.throttle)
		h.projects.Range(func(p, th any) bool {
			add(p.(string), th.(*throttle))
			return true
		})
		return true
	})
	slices.SortFunc(out, func(a, b Quota) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Project, b.Project)
	})
	return out
}

// throttleFor returns the scheduler a request to u counts against: the
// host's, or on a host whose quota is per project, its project's (a
// request naming no repository, a ping, goes to the host's).
func (t *Transport) throttleFor(h *hostState, u *url.URL) *throttle {
	if h.wide == nil { // the quota is per host
		return h.throttle
	}
	p := apipath.Project(u.Path, u.RawQuery)
	if p == "" {
		return h.throttle
	}
	if th, ok := h.projects.Load(p); ok {
		return th.(*throttle)
	}
	if h.nprojects.Load() >= maxProjects {
		return h.throttle
	}
	th, loaded := h.projects.LoadOrStore(p, t.newThrottle(h, u.Host, p))
	if !loaded {
		h.nprojects.Add(1)
	}
	return th.(*throttle)
}

type attemptKey struct{}

// WithAttemptCounter returns a context under which every attempt the
// Transport sends adds one to n, as Transport.Stats counts them (retries,
// pings and token requests included): what one piece of work sent while
// other work shares the Transport (a crawl beside a plan's referrer
// questions), which a difference of Requests before and after would mix.
func WithAttemptCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	h := t.host(host)
	if e := h.down.Load(); e != nil {
		closeBody(req)
		return nil, e
	}
	return t.roundTrip(req.Context(), req, host, h)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// roundTrip is RoundTrip's retry loop, under ctx.
func (t *Transport) roundTrip(ctx context.Context, req *http.Request, host string, h *hostState) (*http.Response, error) {
	kind := apipath.Kind(req.URL.Path)
	if k, ok := ctx.Value(kindKey{}).(string); ok {
		kind = k
	}
	n := &h.requests[methodIndex(req.Method)][kindIndex(kind)]
	debug := t.log != nil && t.log.Enabled(ctx, slog.LevelDebug)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	hasBody := req.Body != nil && req.Body != http.NoBody
	// Blob streams may take long in all; only their silence is bounded.
	stream := (kind == "blob" && req.Method == http.MethodGet) || (kind == "upload" && hasBody) || req.Response != nil
	timeoutsLeft := timeoutRetries
	// Retries after a 429 are counted apart from those after faults.
	throttled, faults := 0, 0
	th := t.throttleFor(h, req.URL)
	for attempt := 0; ; attempt++ {
		// The attempt ends with the caller's context, when the watchdog
		// fires (a *TimeoutError as the cause), or when the host is given
		// up (its *GivenUpError): then requests waiting for a slot or in
		// flight end at once and free their job slots.
		actx, acancel := context.WithCancelCause(ctx)
		stopHost := context.AfterFunc(h.ctx, func() { acancel(context.Cause(h.ctx)) })
		var body io.ReadCloser
		if attempt > 0 && req.GetBody != nil {
			// Before taking a slot: a body streamed from the same host (a
			// blob copied within one registry) takes a slot of its own.
			b, err := req.GetBody()
			if err != nil {
				stopHost()
				acancel(nil)
				return nil, err
			}
			body = b
		}
		sent, err := th.acquire(actx)
		if err == nil {
			var waited bool
			if waited, err = h.acquireWide(actx); err != nil {
				th.release()
			} else if waited {
				// Sent now, not when the pace let it go: the throttle
				// times the host's answers from when it was sent.
				sent = t.now()
			}
		}
		if err == nil {
			if g := h.down.Load(); g != nil {
				h.releaseWide()
				th.release()
				err = g
			}
		}
		if err != nil {
			var g *GivenUpError
			if errors.As(context.Cause(actx), &g) {
				err = g
			}
			stopHost()
			acancel(nil)
			if body != nil {
				body.Close()
			}
			closeBody(req)
			return nil, err
		}
		// The watchdog starts once the request may be sent: the wait for a
		// slot and the pace is not the server's silence.
		wd := newWatchdog(acancel, stopHost, req, t.timeouts, stream)
		r := req.WithContext(actx)
		if body != nil {
			r.Body = body
		}
		var rec *bodyRecorder
		if r.Body != nil && r.Body != http.NoBody {
			// Counts the bytes sent, restarts the idle timeout as they
			// move (and the wait for headers once the body is sent), and
			// remembers a failure: a body streamed from elsewhere (a blob
			// read from the source registry) can fail mid-way; the request
			// is then retried with a fresh body, whatever error the
			// failure surfaced as.
			rec = &bodyRecorder{rc: r.Body, sent: &h.bytesSent, wd: wd, header: t.timeouts.header}
			r.Body = rec
			wd.arm("body", t.timeouts.idle)
		} else {
			wd.arm("response headers", t.timeouts.header)
		}
		n.Add(1)
		if c, ok := ctx.Value(attemptKey{}).(*atomic.Int64); ok {
			c.Add(1)
		}
		var start time.Time
		if debug {
			start = time.Now()
		}
		resp, err := t.base.RoundTrip(r)
		err = classify(err, context.Cause(actx), r, t.timeouts)
		if err != nil {
			wd.stop()
		} else {
			wd.arm("body", t.timeouts.idle)
			if resp.Body != nil && resp.Body != http.NoBody {
				resp.Body = &watchedBody{rc: resp.Body, n: &h.bytesReceived, w: wd, ctx: actx}
			} else {
				wd.stop()
			}
		}
		mismatch := false
		if err == nil {
			resp, mismatch, err = readManifest(r, kind, resp)
		}
		h.releaseWide()
		th.release()
		h.answered(resp, err)
		retry, wait, longWait := t.shouldRetry(resp, err)
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		if cut, pace, quota := th.answered(sent, status, wait); cut && t.log != nil {
			attrs := []slog.Attr{slog.String("host", r.URL.Host)}
			if th != h.throttle {
				attrs = append(attrs, slog.String("project", apipath.Project(r.URL.Path, r.URL.RawQuery)))
			}
			t.log.LogAttrs(ctx, slog.LevelInfo, "pace cut", append(attrs,
				slog.Float64("pace", roundRate(pace)), slog.Float64("quota", roundRate(quota)))...)
		}
		if debug {
			t.logRequest(ctx, r, kind, resp, err, time.Since(start), attempt)
		}
		if g := h.down.Load(); g != nil && err != nil {
			return nil, g
		}
		retry = retry || mismatch || (err != nil && req.GetBody != nil && rec != nil && rec.failed())
		var te *TimeoutError
		isTimeout := errors.As(err, &te)
		if isTimeout {
			retry = timeoutsLeft > 0
			timeoutsLeft--
		}
		if !retry || ctx.Err() != nil {
			if !retry && err == nil && !mismatch {
				h.budget.earn()
				t.budget.earn()
			}
			return resp, err
		}
		reason := retryReason(resp, err, mismatch)
		what := fmt.Sprintf("%s on %s %s", shortReason(resp, err, mismatch), r.Method, r.URL.Path)
		if longWait > MaxRetryAfter {
			// The server will not serve this run: waiting the most cip
			// waits and asking again only holds a job slot.
			closeResp(resp)
			return nil, t.giveUp(ctx, host, h, fmt.Sprintf("it asks to wait %s (%s), longer than cip waits (%s)", longWait, what, MaxRetryAfter))
		}
		tooMany := status == http.StatusTooManyRequests
		exhausted := faults >= t.maxRetries
		if tooMany {
			exhausted = throttled >= MaxThrottledRetries
		}
		if exhausted || !replayable {
			if t.log != nil {
				t.log.LogAttrs(ctx, slog.LevelWarn, "giving up", slog.String("host", host), slog.String("method", r.Method),
					slog.String("kind", kind), slog.String("reason", reason), slog.Int("attempts", attempt+1))
			}
			return resp, err
		}
		cost := int64(1)
		if isTimeout {
			cost = timeoutRetryCost
		}
		// A 429 is a host at its quota, not failing: its pace adapts
		// (throttle.go), so a request is rarely refused twice, and the
		// refusals of a burst (hundreds at a high --jobs before the first
		// answers come back) must not spend the budgets and give the host
		// up. A request's first MaxRetries retries after 429 are free;
		// beyond, they cost like faults, so that a host refusing
		// everything is still given up.
		if !tooMany || throttled >= t.maxRetries {
			if g := t.chargeRetry(ctx, host, h, cost, what); g != nil {
				closeResp(resp)
				return nil, g
			}
		}
		closeResp(resp)
		if wait == 0 {
			wait = t.backoff << min(faults, 16)
			wait += time.Duration(rand.Int64N(int64(wait)/4 + 1))
		}
		if tooMany {
			throttled++
		} else {
			faults++
		}
		h.retries.Add(1)
		if t.log != nil {
			// Throttling is expected under a quota; anything else is a fault.
			level := slog.LevelWarn
			if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
				level = slog.LevelInfo
			}
			t.log.LogAttrs(ctx, level, "retrying", slog.String("host", host), slog.String("method", r.Method),
				slog.String("kind", kind), slog.String("reason", reason),
				slog.Duration("wait", wait), slog.Int("attempt", attempt+1))
		}
		t.emit(Event{Host: host, Wait: wait, Reason: shortReason(resp, err, mismatch)})
		if err := t.wait(ctx, h, wait); err != nil {
			closeBody(req)
			return nil, err
		}
	}
}

// wait sleeps d before a retry, ending early, with the host's
// *GivenUpError, when the host is given up meanwhile (the sleeper then frees
// its job slot instead of sleeping out its backoff).
func (t *Transport) wait(ctx context.Context, h *hostState, d time.Duration) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(h.ctx, func() { cancel(context.Cause(h.ctx)) })
	defer stop()
	err := t.sleep(sctx, d)
	var g *GivenUpError
	if c := context.Cause(sctx); err != nil && errors.As(c, &g) {
		return g
	}
	return err
}

// closeResp drains a little of a response being retried, so that the
// connection can be reused, and closes it.
func closeResp(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		resp.Body.Close()
	}
}

func (t *Transport) logRequest(ctx context.Context, r *http.Request, kind string, resp *http.Response, err error, d time.Duration, attempt int) {
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("host", r.URL.Host), slog.String("kind", kind),
		slog.Int("status", 0), slog.Duration("duration", d), slog.Int("attempt", attempt+1)}
	if resp != nil {
		attrs[3] = slog.Int("status", resp.StatusCode)
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	t.log.LogAttrs(ctx, slog.LevelDebug, "request", attrs...)
}

// retryReason says why a request is retried: its status code, the error,
// or a manifest body that does not match its digest.
func retryReason(resp *http.Response, err error, mismatch bool) string {
	switch {
	case err != nil:
		return err.Error()
	case mismatch:
		return "manifest body does not match its digest"
	}
	return strconv.Itoa(resp.StatusCode)
}

// shortReason is retryReason in a word or two, for a status line.
func shortReason(resp *http.Response, err error, mismatch bool) string {
	var te *TimeoutError
	switch {
	case errors.As(err, &te):
		return "timeout"
	case err != nil && strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "connection closed"
	case err != nil:
		return "network error"
	case mismatch:
		return "wrong digest"
	}
	return strconv.Itoa(resp.StatusCode)
}

// bodyRecorder counts the bytes read from a request body, restarts the
// attempt's idle timeout as they move (and the wait for the answer once the
// body is sent), and remembers whether reading it failed.
type bodyRecorder struct {
	rc     io.ReadCloser
	sent   *atomic.Int64
	wd     *watchdog
	header time.Duration
	bad    atomic.Bool
}

func (b *bodyRecorder) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.sent.Add(int64(n))
	if n > 0 {
		b.wd.moved()
	}
	switch {
	case err == io.EOF:
		b.wd.arm("response headers", b.header)
	case err != nil:
		b.bad.Store(true)
	}
	return n, err
}

func (b *bodyRecorder) Close() error { return b.rc.Close() }

func (b *bodyRecorder) failed() bool { return b.bad.Load() }

// readManifest reads the body of a successful manifest GET inside the retry
// loop, so that a connection dropped in the middle of the body is retried
// like one dropped before the headers, and reports a body that does not
// match the digest it was asked for (a corrupting proxy or a truncated
// answer) so that it is fetched again. After the last retry the mismatching
// body is handed on, and GetManifest reports the mismatch.
func readManifest(r *http.Request, kind string, resp *http.Response) (*http.Response, bool, error) {
	if r.Method != http.MethodGet || resp.StatusCode != http.StatusOK || kind != "manifest" {
		return resp, false, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	resp.Body.Close()
	if err != nil {
		return nil, false, fmt.Errorf("read manifest body from %s: %w", r.URL.Host, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	// By digest, the body must verify as it; by tag, as the digest the
	// registry names in Docker-Content-Digest (when it names one). Only
	// bytes that hash to something else are fetched again: a digest cip
	// cannot check, or a schema 1 manifest neither rule verifies, stays so.
	want := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if !strings.Contains(want, ":") {
		want = resp.Header.Get("Docker-Content-Digest")
	}
	if want == "" || len(raw) > MaxManifestSize {
		return resp, false, nil
	}
	err = digest.VerifyManifest(want, mediatype.Of(resp.Header.Get("Content-Type"), raw), raw)
	return resp, errors.Is(err, digest.ErrMismatch), nil
}

// shouldRetry says whether a response or error is worth retrying, how
// long to wait first (0: the backoff's choice), and how long the server
// asked for (Retry-After, not capped).
func (t *Transport) shouldRetry(resp *http.Response, err error) (retry bool, wait, asked time.Duration) {
	if err != nil {
		var ce *ConnectError
		var ge *GivenUpError
		var te *TimeoutError
		switch {
		case errors.As(err, &ce), errors.As(err, &ge),
			errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return false, 0, 0
		case errors.As(err, &te):
			return true, 0, 0
		}
		var nerr net.Error
		if errors.As(err, &nerr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
			strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe") {
			return true, 0, 0
		}
		return false, 0, 0
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		asked := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return true, min(asked, MaxRetryAfter), asked
	}
	return false, 0, 0
}

// ParseRetryAfter reads a Retry-After header given in seconds or as an HTTP
// date, capped at MaxRetryAfter; 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	return min(retryAfter(v, now), MaxRetryAfter)
}

// retryAfter is ParseRetryAfter without the cap.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(math.MaxInt64/time.Second) {
			return math.MaxInt64
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return max(d, 0)
}

// The methods and kinds counted; any other counts as the last of each.
var (
	methods = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, "OTHER"}
	kinds   = [...]string{"manifest", "blob", "upload", "tags", "catalog", "referrers", "ping", "token", "other"}
)

// kindKey marks, in a request's context, a kind its path does not tell: a
// token request (its endpoint is wherever the registry's challenge says).
type kindKey struct{}

func withKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, kindKey{}, kind)
}

func methodIndex(m string) int {
	for i, v := range methods[:len(methods)-1] {
		if v == m {
			return i
		}
	}
	return len(methods) - 1
}

func kindIndex(k string) int {
	for i, v := range kinds[:len(kinds)-1] {
		if v == k {
			return i
		}
	}
	return len(kinds) - 1
}

// hostState is what the Transport keeps per registry host: its scheduler
// and its counters, fixed arrays of atomics so that counting a request
// costs no map look-up and no lock.
type hostState struct {
	// throttle schedules the host's requests; on a host whose quota is
	// per project (wide is set), only those that name no repository, and
	// projects holds a throttle per project, at most maxProjects of them,
	// with wide bounding the requests in flight over all of them.
	throttle  *throttle
	projects  sync.Map // project -> *throttle
	nprojects atomic.Int32
	wide      chan struct{}
	ceiling   float64 // --qps or the hosts config: per throttle
	start     float64 // the pace a throttle starts at without a ceiling
	jobs      int     // requests in flight per throttle
	budget    *budget // retries left
	// ctx is cancelled, with down as its cause, when the host is given up.
	ctx    context.Context
	cancel context.CancelCauseFunc
	down   atomic.Pointer[GivenUpError]

	requests                 [len(methods)][len(kinds)]atomic.Int64
	status                   [6]atomic.Int64 // [0]: no answer; [1..5]: 1xx..5xx
	retries, throttled       atomic.Int64
	bytesSent, bytesReceived atomic.Int64
}

// acquireWide takes a slot of the host's bound over all its projects (none
// when its quota is per host: the throttle's slots bound it), and says
// whether it had to wait for one.
func (h *hostState) acquireWide(ctx context.Context) (waited bool, err error) {
	if h.wide == nil {
		return false, nil
	}
	select {
	case h.wide <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case h.wide <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return true, context.Cause(ctx)
	}
}

func (h *hostState) releaseWide() {
	if h.wide != nil {
		<-h.wide
	}
}

func (h *hostState) answered(resp *http.Response, err error) {
	if err != nil || resp == nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		h.status[0].Add(1)
		return
	}
	h.status[resp.StatusCode/100].Add(1)
	if resp.StatusCode == http.StatusTooManyRequests {
		h.throttled.Add(1)
	}
}

// Stats is a snapshot of a Transport's counters, hosts in name order.
type Stats struct {
	Hosts []HostStats `json:"hosts"`
}

// HostStats counts one registry host's requests. Every attempt counts:
// retries and token fetches included.
type HostStats struct {
	Host     string         `json:"host"`
	Requests int64          `json:"requests"`
	ByKind   []RequestCount `json:"by_kind"` // by method, then kind (in the order of RequestCount); non-zero only
	// Answers by status class; Failed counts attempts that got no answer
	// (a dropped connection, a body cut mid-way).
	Status1xx int64 `json:"status_1xx"`
	Status2xx int64 `json:"status_2xx"`
	Status3xx int64 `json:"status_3xx"`
	Status4xx int64 `json:"status_4xx"`
	Status5xx int64 `json:"status_5xx"`
	Failed    int64 `json:"failed"`
	Retries   int64 `json:"retries"`
	Throttled int64 `json:"throttled"` // 429 answers
	// Body bytes: read from request bodies (sent, retries included) and
	// from response bodies (received).
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
	// GivenUp says why the Transport stopped talking to the host ("" when
	// it did not).
	GivenUp string `json:"given_up,omitempty"`
	// The adaptive pace (see throttle.go): requests/s now (0: unpaced),
	// the quota measured when the host last answered 429 (0: it never
	// did), and how many times the pace was cut.
	Pace      float64 `json:"pace"`
	Quota     float64 `json:"quota"`
	Slowdowns int64   `json:"slowdowns"` // the host's and its projects'
	// Projects holds each project's pace on a host whose quota is per
	// project (Pace and Quota are then those of the requests that name no
	// repository), in name order.
	Projects []ProjectPace `json:"projects,omitempty"`
}

// ProjectPace is the adaptive pace of one project of a host whose quota is
// per project.
type ProjectPace struct {
	Project   string  `json:"project"`
	Pace      float64 `json:"pace"`
	Quota     float64 `json:"quota"`
	Slowdowns int64   `json:"slowdowns"`
}

// RequestCount is how many requests one method and kind (as
// internal/apipath names it) made.
type RequestCount struct {
	Method string `json:"method"`
	Kind   string `json:"kind"`
	N      int64  `json:"n"`
}

// Stats returns a snapshot of the counters. Counters are read one by one
// while requests may run, so a snapshot taken mid-run is close, not exact.
func (t *Transport) Stats() Stats {
	var out Stats
	t.hosts.Range(func(k, v any) bool {
		h := v.(*hostState)
		hs := HostStats{
			Host:      k.(string),
			Status1xx: h.status[1].Load(), Status2xx: h.status[2].Load(), Status3xx: h.status[3].Load(),
			Status4xx: h.status[4].Load(), Status5xx: h.status[5].Load(), Failed: h.status[0].Load(),
			Retries: h.retries.Load(), Throttled: h.throttled.Load(),
			BytesSent: h.bytesSent.Load(), BytesReceived: h.bytesReceived.Load(),
		}
		if g := h.down.Load(); g != nil {
			hs.GivenUp = g.Reason
		}
		pace, quota, cuts := h.throttle.pace()
		hs.Pace, hs.Quota, hs.Slowdowns = roundRate(pace), roundRate(quota), cuts
		h.projects.Range(func(k, v any) bool {
			pace, quota, cuts := v.(*throttle).pace()
			hs.Projects = append(hs.Projects, ProjectPace{Project: k.(string), Pace: roundRate(pace), Quota: roundRate(quota), Slowdowns: cuts})
			hs.Slowdowns += cuts
			return true
		})
		slices.SortFunc(hs.Projects, func(a, b ProjectPace) int { return strings.Compare(a.Project, b.Project) })
		for mi := range h.requests {
			for ki := range h.requests[mi] {
				if n := h.requests[mi][ki].Load(); n > 0 {
					hs.ByKind = append(hs.ByKind, RequestCount{Method: methods[mi], Kind: kinds[ki], N: n})
					hs.Requests += n
				}
			}
		}
		out.Hosts = append(out.Hosts, hs)
		return true
	})
	slices.SortFunc(out.Hosts, func(a, b HostStats) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// Requests returns the number of requests sent (retries included).
func (t *Transport) Requests() int64 {
	var n int64
	t.hosts.Range(func(_, v any) bool {
		h := v.(*hostState)
		for mi := range h.requests {
			for ki := range h.requests[mi] {
				n += h.requests[mi][ki].Load()
			}
		}
		return true
	})
	return n
}

// RequestCounts returns requests by "METHOD kind" (e.g. "GET manifest"),
// summed over hosts.
func (t *Transport) RequestCounts() map[string]int64 {
	out := map[string]int64{}
	for _, h := range t.Stats().Hosts {
		for _, c := range h.ByKind {
			out[c.Method+" "+c.Kind] += c.N
		}
	}
	return out
}
