// Package faultproxy is a test helper: a reverse proxy in front of a
// registry that injects the faults real registries and networks produce —
// 5xx answers, 429 with Retry-After in seconds or as an HTTP date, slow
// answers, connections reset in the middle of a body, bodies truncated
// cleanly, and a wrong Docker-Content-Digest — chosen by a seeded random
// number generator and bounded in number, so that a failing run replays.
package faultproxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cipdev/cip/internal/apipath"
)

// Fault is one kind of injected fault.
type Fault string

// The faults. Retryable ones are answered (or cut) before the client can
// take anything for content; WrongDigest and Truncate hand the client
// plausible-looking but wrong content, which only digest checks catch.
const (
	// ServerError answers 500, 502 or 503 without forwarding.
	ServerError Fault = "5xx"
	// RetryAfterSeconds answers 429 with Retry-After: 1.
	RetryAfterSeconds Fault = "429-seconds"
	// RetryAfterDate answers 429 with Retry-After as an HTTP date 1 s ahead.
	RetryAfterDate Fault = "429-date"
	// Slow waits Options.Delay, then forwards.
	Slow Fault = "slow"
	// Reset forwards a GET of a blob or manifest, sends the headers
	// (with the full Content-Length) and half the body, then resets the
	// connection.
	Reset Fault = "reset-mid-body"
	// Truncate forwards a GET of a manifest and sends half its body with
	// no Content-Length, ending cleanly: the client sees a short body.
	Truncate Fault = "truncated-body"
	// WrongDigest forwards a HEAD or GET of a manifest and replaces its
	// Docker-Content-Digest with the digest of something else.
	WrongDigest Fault = "wrong-digest"
)

// Retryable are the faults a client survives by retrying alone.
var Retryable = []Fault{ServerError, RetryAfterSeconds, RetryAfterDate, Slow, Reset}

// All are every fault.
var All = []Fault{ServerError, RetryAfterSeconds, RetryAfterDate, Slow, Reset, Truncate, WrongDigest}

// Options configures a Proxy.
type Options struct {
	// Seed seeds the fault choices.
	Seed uint64
	// Rate is the probability that a request gets a fault; 0 means 0.1
	// (the 10%).
	Rate float64
	// Faults are the faults to choose from, uniformly; nil means Retryable.
	Faults []Fault
	// Max bounds the faults injected in total; 0 means 100. A bound keeps
	// an unlucky seed from failing a client's bounded retries forever.
	Max int
	// MaxPerRequest bounds the faults injected into one request (method
	// and URL, so retries of it count); 0 means 2, under the 5 retries of
	// cip's transport.
	MaxPerRequest int
	// Delay is how long Slow waits; 0 means 300 ms.
	Delay time.Duration
	// Match, when set, limits faults to the requests it accepts.
	Match func(r *http.Request) bool
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// Host is the proxy's host:port (loopback, plain HTTP).
	Host string

	opts   Options
	server *httptest.Server
	rp     *httputil.ReverseProxy

	mu         sync.Mutex
	rng        *rand.Rand
	injected   map[Fault]int
	perRequest map[string]int
	requests   map[string]int // "METHOD kind"
	disabled   bool
}

// New starts a proxy to upstream (host:port, plain HTTP) that stops when the
// test ends.
func New(tb testing.TB, upstream string, opts Options) *Proxy {
	tb.Helper()
	if opts.Rate == 0 {
		opts.Rate = 0.1
	}
	if opts.Faults == nil {
		opts.Faults = Retryable
	}
	if opts.Max == 0 {
		opts.Max = 100
	}
	if opts.MaxPerRequest == 0 {
		opts.MaxPerRequest = 2
	}
	if opts.Delay == 0 {
		opts.Delay = 300 * time.Millisecond
	}
	target := &url.URL{Scheme: "http", Host: upstream}
	p := &Proxy{
		opts:       opts,
		rng:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		injected:   map[Fault]int{},
		perRequest: map[string]int{},
		requests:   map[string]int{},
	}
	p.rp = httputil.NewSingleHostReverseProxy(target)
	// Resets are deliberate; the proxy's own complaints about them are noise.
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	p.server = httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(p.server.Close)
	p.Host = strings.TrimPrefix(p.server.URL, "http://")
	return p
}

// SetEnabled turns fault injection on or off (the proxy keeps forwarding).
func (p *Proxy) SetEnabled(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disabled = !on
}

// Injected returns how many faults of each kind were injected.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range p.injected {
		out[k] = v
	}
	return out
}

// Total returns the number of faults injected.
func (p *Proxy) Total() int {
	n := 0
	for _, v := range p.Injected() {
		n += v
	}
	return n
}

// Requests returns how many requests of "METHOD kind" the proxy received
// (kind: manifest, blob, upload, tags, catalog, ping, other).
func (p *Proxy) Requests() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.requests {
		out[k] = v
	}
	return out
}

// String summarises the injected faults, sorted, for logs and docs.
func (p *Proxy) String() string {
	inj := p.Injected()
	keys := make([]string, 0, len(inj))
	for k := range inj {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, inj[Fault(k)])
	}
	return b.String()
}

// applies says whether fault f makes sense for request r.
func applies(f Fault, r *http.Request) bool {
	k := apipath.Kind(r.URL.Path)
	switch f {
	case Reset:
		return r.Method == http.MethodGet && (k == "blob" || k == "manifest")
	case Truncate:
		return r.Method == http.MethodGet && k == "manifest"
	case WrongDigest:
		return (r.Method == http.MethodGet || r.Method == http.MethodHead) && k == "manifest"
	}
	return true
}

// choose picks the fault for r, or "" for none.
func (p *Proxy) choose(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests[r.Method+" "+apipath.Kind(r.URL.Path)]++
	if p.disabled || (p.opts.Match != nil && !p.opts.Match(r)) {
		return ""
	}
	total := 0
	for _, v := range p.injected {
		total += v
	}
	key := r.Method + " " + r.URL.String()
	if total >= p.opts.Max || p.perRequest[key] >= p.opts.MaxPerRequest {
		return ""
	}
	if p.rng.Float64() >= p.opts.Rate {
		return ""
	}
	f := p.opts.Faults[p.rng.IntN(len(p.opts.Faults))]
	if !applies(f, r) {
		return ""
	}
	p.injected[f]++
	p.perRequest[key]++
	return f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	switch f := p.choose(r); f {
	case ServerError:
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
		p.mu.Lock()
		code := codes[p.rng.IntN(len(codes))]
		p.mu.Unlock()
		http.Error(w, "injected fault", code)
	case RetryAfterSeconds:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected 429", http.StatusTooManyRequests)
	case RetryAfterDate:
		// HTTP dates have a resolution of one second: 2 s ahead is at
		// least 1 s of waiting.
		w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
		http.Error(w, "injected 429", http.StatusTooManyRequests)
	case Slow:
		time.Sleep(p.opts.Delay)
		p.rp.ServeHTTP(w, r)
	case Reset, Truncate, WrongDigest:
		p.tamper(f, w, r)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// tamper forwards r and corrupts the answer as f says.
func (p *Proxy) tamper(f Fault, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	if res.StatusCode != http.StatusOK {
		w.WriteHeader(res.StatusCode)
		w.Write(body)
		return
	}
	switch f {
	case WrongDigest:
		w.Header().Set("Docker-Content-Digest", fmt.Sprintf("sha256:%x", sha256.Sum256(append([]byte("not "), body...))))
		w.WriteHeader(res.StatusCode)
		w.Write(body)
	case Truncate:
		w.Header().Del("Content-Length")
		w.WriteHeader(res.StatusCode)
		w.Write(body[:len(body)/2])
	case Reset:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(res.StatusCode)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}
}
