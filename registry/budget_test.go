package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipdev/cip/registry"
)

// noWait is a Sleep that returns at once, counting the waits asked for.
func noWait(waits *atomic.Int64) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		waits.Add(1)
		return ctx.Err()
	}
}

// 429 with Retry-After: 3600 on every call: the host is given up at the
// first answer (cip never waits an hour, and waiting its most and asking
// again only holds a job slot); later requests to it send nothing; other
// hosts go on.
func TestRetryAfterBeyondMaxGivesUpHost(t *testing.T) {
	host, requests := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	good, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tagsJSON("v1")) })
	var events []registry.Event
	var mu sync.Mutex
	c := clientWith(registry.TransportOptions{Events: func(e registry.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	start := time.Now()
	_, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
	want := fmt.Sprintf("list tags of %s/a: gave up on %s: it asks to wait 1h0m0s (429 on GET /v2/a/tags/list), longer than cip waits (1m0s)", host, host)
	if err == nil || err.Error() != want {
		t.Fatalf("Tags = %v\nwant %s", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("giving up took %v, want at once", d)
	}
	sent := requests.Load()
	for range 3 {
		_, err := c.Tags(context.Background(), parse(t, c, host+"/b"))
		var g *registry.GivenUpError
		if !errors.As(err, &g) || g.Host != host {
			t.Fatalf("Tags of another repository = %v, want the *GivenUpError", err)
		}
	}
	if got := requests.Load(); got != sent {
		t.Errorf("requests to the given-up host grew from %d to %d", sent, got)
	}
	if tl, err := c.Tags(context.Background(), parse(t, c, good+"/a")); err != nil || len(tl.Tags) != 1 {
		t.Errorf("Tags of another host = %v, %v", tl, err)
	}
	if len(events) != 1 || events[0].GaveUp == nil || events[0].Host != host {
		t.Errorf("events = %+v, want one: %s given up", events, host)
	}
	for _, hs := range c.Transport().Stats().Hosts {
		if want := ""; hs.Host == host {
			want = "it asks to wait 1h0m0s (429 on GET /v2/a/tags/list), longer than cip waits (1m0s)"
			if hs.GivenUp != want {
				t.Errorf("Stats of %s: GivenUp = %q, want %q", hs.Host, hs.GivenUp, want)
			}
		} else if hs.GivenUp != want {
			t.Errorf("Stats of %s: GivenUp = %q, want none", hs.Host, hs.GivenUp)
		}
	}
}

// 503 on every call: the host's retry budget bounds the retries of the
// whole run, not each request; then the host is given up.
func TestHostRetryBudget(t *testing.T) {
	host, requests := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var waits atomic.Int64
	c := clientWith(registry.TransportOptions{HostRetryBudget: 12, Sleep: noWait(&waits)})
	var err error
	for i := range 10 {
		_, err = c.Tags(context.Background(), parse(t, c, fmt.Sprintf("%s/r%d", host, i)))
	}
	var g *registry.GivenUpError
	if !errors.As(err, &g) || !strings.Contains(g.Reason, "its retry budget (12) is spent; last: 503 on GET /v2/") {
		t.Fatalf("Tags after many 503s = %v, want the host given up on its budget", err)
	}
	// 12 retries in all: requests of 6 attempts each (5 retries) would
	// have made 60 for 10 repositories.
	if w := waits.Load(); w != 12 {
		t.Errorf("retry waits = %d, want 12 (the budget)", w)
	}
	// 12 retries and the first attempts of the three requests that made
	// them.
	if n := requests.Load(); n != 15 {
		t.Errorf("requests = %d, want 15", n)
	}
}

// Answers earn the budget back: a host that fails every other attempt
// keeps working however long the run.
func TestRetryBudgetEarnedBack(t *testing.T) {
	var n atomic.Int64
	host, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, tagsJSON("v1"))
	})
	var waits atomic.Int64
	c := clientWith(registry.TransportOptions{HostRetryBudget: 3, RunRetryBudget: 3, Sleep: noWait(&waits)})
	for i := range 100 {
		if _, err := c.Tags(context.Background(), parse(t, c, fmt.Sprintf("%s/r%d", host, i))); err != nil {
			t.Fatalf("Tags #%d = %v; a host answering half the time must not be given up", i, err)
		}
	}
	if waits.Load() != 100 {
		t.Errorf("retries = %d, want 100", waits.Load())
	}
}

// The run's budget stops retries across hosts when every host fails.
func TestRunRetryBudget(t *testing.T) {
	// Every request fails, the pings too (answers would earn retries back).
	var hosts []string
	for range 4 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
		t.Cleanup(srv.Close)
		hosts = append(hosts, strings.TrimPrefix(srv.URL, "http://"))
	}
	var waits atomic.Int64
	c := clientWith(registry.TransportOptions{HostRetryBudget: 100, RunRetryBudget: 7, Sleep: noWait(&waits)})
	var last error
	for _, h := range hosts {
		_, last = c.Tags(context.Background(), parse(t, c, h+"/a"))
	}
	var g *registry.GivenUpError
	if !errors.As(last, &g) || !strings.Contains(g.Reason, "the run's retry budget (7) is spent") {
		t.Fatalf("Tags of the last host = %v, want it given up on the run's budget", last)
	}
	if waits.Load() != 7 {
		t.Errorf("retries = %d, want 7", waits.Load())
	}
}

// Requests waiting to retry a host are freed when it is given up, instead
// of sleeping out their backoff while holding job slots.
func TestGiveUpFreesWaitingRequests(t *testing.T) {
	var calls atomic.Int64
	host, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 4 {
			w.WriteHeader(http.StatusServiceUnavailable) // the four waiters' first attempts
			return
		}
		w.Header().Set("Retry-After", "7200")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := clientWith(registry.TransportOptions{Backoff: time.Hour})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Tags(context.Background(), parse(t, c, fmt.Sprintf("%s/w%d", host, i)))
			errs <- err
		}()
	}
	for calls.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the four are in their hour-long backoff
	start := time.Now()
	if _, err := c.Tags(context.Background(), parse(t, c, host+"/x")); err == nil {
		t.Fatal("Tags answered 429 Retry-After: 7200 succeeded")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var g *registry.GivenUpError
		if !errors.As(err, &g) {
			t.Errorf("a waiting request ended with %v, want the *GivenUpError", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the waiting requests took %v to end, want at once", d)
	}
}

// A refused connection fails at once, without retries, saying what failed.
func TestConnectionRefusedFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	var waits atomic.Int64
	tr := registry.NewTransport(registry.TransportOptions{Sleep: noWait(&waits)})
	c := registry.New(registry.Options{Transport: tr, Keychain: anonymousKeychain})
	start := time.Now()
	_, err = c.Tags(context.Background(), parse(t, c, host+"/staging/app"))
	want := fmt.Sprintf("list tags of %s/staging/app: connect to %s: connection refused", host, host)
	if err == nil || err.Error() != want {
		t.Fatalf("Tags = %v\nwant %s", err, want)
	}
	var ce *registry.ConnectError
	if !errors.As(err, &ce) {
		t.Errorf("error %v is not a *ConnectError", err)
	}
	if d := time.Since(start); d > time.Second || waits.Load() != 0 {
		t.Errorf("took %v with %d retry waits, want at once with none", d, waits.Load())
	}
}

// A name that does not resolve fails at once; a resolver that is merely
// unavailable is retried.
func TestNoSuchHost(t *testing.T) {
	for _, tt := range []struct {
		name     string
		notFound bool
		want     string
		waits    int64
	}{
		{"no such host", true, "look up registry.invalid: no such host", 0},
		{"resolver down", false, "lookup registry.invalid: server misbehaving", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var waits atomic.Int64
			base := rtFunc(func(r *http.Request) (*http.Response, error) {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "registry.invalid", IsNotFound: tt.notFound}}
			})
			if tt.notFound {
				base = rtFunc(func(r *http.Request) (*http.Response, error) {
					return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}}
				})
			}
			tr := registry.NewTransport(registry.TransportOptions{Base: base, MaxRetries: 2, Sleep: noWait(&waits)})
			req, _ := http.NewRequest(http.MethodGet, "https://registry.invalid/v2/", nil)
			_, err := tr.RoundTrip(req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RoundTrip = %v, want %q", err, tt.want)
			}
			if waits.Load() != tt.waits {
				t.Errorf("retry waits = %d, want %d", waits.Load(), tt.waits)
			}
		})
	}
}

// Every retry is an Event (for "retrying HOST in Ns (429)"), with the wait
// the server asked for.
func TestRetryEvents(t *testing.T) {
	var calls atomic.Int64
	host, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, tagsJSON("v1"))
		}
	})
	var events []registry.Event
	var waits atomic.Int64
	c := clientWith(registry.TransportOptions{Backoff: time.Millisecond, Sleep: noWait(&waits),
		Events: func(e registry.Event) { events = append(events, e) }})
	if _, err := c.Tags(context.Background(), parse(t, c, host+"/a")); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0] != (registry.Event{Host: host, Wait: 3 * time.Second, Reason: "429"}) ||
		events[1].Host != host || events[1].Reason != "503" || events[1].Wait <= 0 {
		t.Errorf("events = %+v, want a 3s wait for 429, then a backoff for 503", events)
	}
}

// rtFunc is an http.RoundTripper.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
