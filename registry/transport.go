package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/cipdev/cip/internal/apipath"
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
)

// TransportOptions configures NewTransport.
type TransportOptions struct {
	// QPS limits requests per second to each registry host; 0 means no limit.
	QPS float64
	// MaxRetries on 429, 5xx and dropped connections; negative means none.
	MaxRetries int
	// Backoff is the first retry delay (doubles each retry, with jitter).
	Backoff time.Duration
	// Base is the underlying transport; nil means a clone of
	// http.DefaultTransport with more idle connections per host.
	Base http.RoundTripper
	// Sleep waits between retries; nil means a context-aware timer. Tests
	// inject it to observe Retry-After handling without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives every request at Debug (method, host, kind, status,
	// duration, attempt), every retry at Info (429) or Warn (the others)
	// with its reason and wait, and every request given up at Warn; nil
	// means none.
	Logger *slog.Logger
}

// Transport is the one HTTP transport shared by every request of a run: it
// rate-limits per host, retries with backoff honouring Retry-After, logs,
// and counts requests by host, method and kind (Stats).
type Transport struct {
	base       http.RoundTripper
	qps        float64
	maxRetries int
	backoff    time.Duration
	sleep      func(ctx context.Context, d time.Duration) error
	log        *slog.Logger // nil: none

	hosts sync.Map // registry host (host[:port]) -> *hostState
}

// NewTransport returns a shared transport.
func NewTransport(opts TransportOptions) *Transport {
	base := opts.Base
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default of 2 idle connections per host makes parallel jobs
		// against one registry reconnect constantly.
		t.MaxIdleConnsPerHost = 64
		t.MaxIdleConns = 256
		base = t
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
	return &Transport{
		base: base, qps: opts.QPS, maxRetries: maxRetries, backoff: backoff,
		sleep: sleep, log: opts.Logger,
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
	h := &hostState{}
	if t.qps > 0 {
		burst := int(t.qps)
		if burst < 1 {
			burst = 1
		}
		h.limiter = rate.NewLimiter(rate.Limit(t.qps), burst)
	}
	got, _ := t.hosts.LoadOrStore(name, h)
	return got.(*hostState)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	h := t.host(req.URL.Host)
	kind := apipath.Kind(req.URL.Path)
	n := &h.requests[methodIndex(req.Method)][kindIndex(kind)]
	debug := t.log != nil && t.log.Enabled(ctx, slog.LevelDebug)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 0; ; attempt++ {
		if h.limiter != nil {
			if err := h.limiter.Wait(ctx); err != nil {
				return nil, err
			}
		}
		r := req
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		var rec *bodyRecorder
		if r.Body != nil && r.Body != http.NoBody {
			// Counts the bytes sent, and remembers a failure: a body
			// streamed from elsewhere (a blob read from the source
			// registry) can fail mid-way; the request is then retried with
			// a fresh body, whatever error the failure surfaced as.
			rec = &bodyRecorder{rc: r.Body, sent: &h.bytesSent}
			if r == req {
				r = r.Clone(ctx)
			}
			r.Body = rec
		}
		n.Add(1)
		var start time.Time
		if debug {
			start = time.Now()
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil && resp.Body != nil && resp.Body != http.NoBody {
			resp.Body = &countingBody{rc: resp.Body, n: &h.bytesReceived}
		}
		mismatch := false
		if err == nil {
			resp, mismatch, err = readManifest(r, kind, resp)
		}
		h.answered(resp, err)
		if debug {
			t.logRequest(ctx, r, kind, resp, err, time.Since(start), attempt)
		}
		retry, wait := t.shouldRetry(resp, err)
		retry = retry || mismatch || (err != nil && req.GetBody != nil && rec != nil && rec.failed())
		if !retry || ctx.Err() != nil {
			return resp, err
		}
		if attempt >= t.maxRetries || !replayable {
			if t.log != nil {
				t.log.LogAttrs(ctx, slog.LevelWarn, "giving up", slog.String("host", r.URL.Host), slog.String("method", r.Method),
					slog.String("kind", kind), slog.String("reason", retryReason(resp, err, mismatch)), slog.Int("attempts", attempt+1))
			}
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then close.
			_, _ = io.CopyN(io.Discard, resp.Body, 4096)
			resp.Body.Close()
		}
		if wait == 0 {
			wait = t.backoff << attempt
			wait += time.Duration(rand.Int64N(int64(wait)/4 + 1))
		}
		h.retries.Add(1)
		if t.log != nil {
			// Throttling is expected under a quota; anything else is a fault.
			level := slog.LevelWarn
			if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
				level = slog.LevelInfo
			}
			t.log.LogAttrs(ctx, level, "retrying", slog.String("host", r.URL.Host), slog.String("method", r.Method),
				slog.String("kind", kind), slog.String("reason", retryReason(resp, err, mismatch)),
				slog.Duration("wait", wait), slog.Int("attempt", attempt+1))
		}
		if err := t.sleep(ctx, wait); err != nil {
			return nil, err
		}
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

// bodyRecorder counts the bytes read from a request body and remembers
// whether reading it failed.
type bodyRecorder struct {
	rc   io.ReadCloser
	sent *atomic.Int64
	bad  atomic.Bool
}

func (b *bodyRecorder) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.sent.Add(int64(n))
	if err != nil && err != io.EOF {
		b.bad.Store(true)
	}
	return n, err
}

func (b *bodyRecorder) Close() error { return b.rc.Close() }

func (b *bodyRecorder) failed() bool { return b.bad.Load() }

// countingBody counts the bytes read from a response body.
type countingBody struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

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
	// By digest, the body must hash to it; by tag, to the digest the
	// registry names in Docker-Content-Digest (when it names one).
	want := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if !strings.HasPrefix(want, "sha256:") {
		want = resp.Header.Get("Docker-Content-Digest")
	}
	if !strings.HasPrefix(want, "sha256:") || len(raw) > MaxManifestSize {
		return resp, false, nil
	}
	return resp, fmt.Sprintf("sha256:%x", sha256.Sum256(raw)) != want, nil
}

// shouldRetry says whether a response or error is worth retrying, and how
// long the server asked us to wait (0 when it did not say).
func (t *Transport) shouldRetry(resp *http.Response, err error) (bool, time.Duration) {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, 0
		}
		var nerr net.Error
		if errors.As(err, &nerr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
			strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe") {
			return true, 0
		}
		return false, 0
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return false, 0
}

// ParseRetryAfter reads a Retry-After header given in seconds or as an HTTP
// date, capped at MaxRetryAfter; 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	if d < 0 {
		return 0
	}
	if d > MaxRetryAfter {
		return MaxRetryAfter
	}
	return d
}

// The methods and kinds counted; any other counts as the last of each.
var (
	methods = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, "OTHER"}
	kinds   = [...]string{"manifest", "blob", "upload", "tags", "catalog", "ping", "other"}
)

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

// hostState is what the Transport keeps per registry host: its rate
// limiter and its counters, fixed arrays of atomics so that counting a
// request costs no map look-up and no lock.
type hostState struct {
	limiter *rate.Limiter // nil: no limit

	requests                 [len(methods)][len(kinds)]atomic.Int64
	status                   [6]atomic.Int64 // [0]: no answer; [1..5]: 1xx..5xx
	retries, throttled       atomic.Int64
	bytesSent, bytesReceived atomic.Int64
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
