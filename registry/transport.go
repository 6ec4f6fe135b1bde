package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
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
}

// Transport is the one HTTP transport shared by every request of a run: it
// rate-limits per host, retries with backoff honouring Retry-After, and
// counts requests by kind.
type Transport struct {
	base       http.RoundTripper
	qps        float64
	maxRetries int
	backoff    time.Duration
	sleep      func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	limiters map[string]*rate.Limiter

	counts sync.Map // string (method + " " + kind) -> *atomic.Int64
	total  atomic.Int64
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
		sleep: sleep, limiters: map[string]*rate.Limiter{},
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

func (t *Transport) limiter(host string) *rate.Limiter {
	if t.qps <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.limiters[host]
	if !ok {
		burst := int(t.qps)
		if burst < 1 {
			burst = 1
		}
		l = rate.NewLimiter(rate.Limit(t.qps), burst)
		t.limiters[host] = l
	}
	return l
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 0; ; attempt++ {
		if l := t.limiter(req.URL.Host); l != nil {
			if err := l.Wait(ctx); err != nil {
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
		if req.GetBody != nil && r.Body != nil && r.Body != http.NoBody {
			// A body streamed from elsewhere (a blob read from the source
			// registry) can fail mid-way; the request is then retried with
			// a fresh body, whatever error the failure surfaced as.
			rec = &bodyRecorder{rc: r.Body}
			r = r.Clone(ctx)
			r.Body = rec
		}
		t.count(r)
		resp, err := t.base.RoundTrip(r)
		mismatch := false
		if err == nil {
			resp, mismatch, err = readManifest(r, resp)
		}
		retry, wait := t.shouldRetry(resp, err)
		retry = retry || mismatch || (err != nil && rec != nil && rec.failed())
		if !retry || attempt >= t.maxRetries || !replayable || ctx.Err() != nil {
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
		if err := t.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// bodyRecorder remembers whether reading a request body failed.
type bodyRecorder struct {
	rc  io.ReadCloser
	bad atomic.Bool
}

func (b *bodyRecorder) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
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
func readManifest(r *http.Request, resp *http.Response) (*http.Response, bool, error) {
	if r.Method != http.MethodGet || resp.StatusCode != http.StatusOK || apipath.Kind(r.URL.Path) != "manifest" {
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

func (t *Transport) count(r *http.Request) {
	t.total.Add(1)
	key := r.Method + " " + apipath.Kind(r.URL.Path)
	v, ok := t.counts.Load(key)
	if !ok {
		v, _ = t.counts.LoadOrStore(key, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Requests returns the number of requests sent (retries included).
func (t *Transport) Requests() int64 { return t.total.Load() }

// RequestCounts returns requests by "METHOD kind" (e.g. "GET manifest").
func (t *Transport) RequestCounts() map[string]int64 {
	out := map[string]int64{}
	t.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
