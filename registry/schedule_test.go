package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// inFlight counts a handler's concurrent requests and remembers the most.
type inFlight struct {
	now, most atomic.Int64
}

func (f *inFlight) enter() {
	n := f.now.Add(1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *inFlight) leave() { f.now.Add(-1) }

func get(t *testing.T, hc *http.Client, url string) int {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A host that does not answer holds only its own slots: requests to
// another host go on, and the slow host never has more than Jobs in flight.
func TestTransportSlowHostDoesNotStallOthers(t *testing.T) {
	release := make(chan struct{})
	var slow inFlight
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slow.enter()
		defer slow.leave()
		<-release
	}))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer b.Close()
	tr := NewTransport(TransportOptions{Jobs: 2})
	hc := &http.Client{Transport: tr}

	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { get(t, hc, a.URL+"/v2/a/tags/list") })
	}
	waitFor(t, "2 requests in flight to the stalled host", func() bool { return slow.now.Load() == 2 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		var bg sync.WaitGroup
		for range 20 {
			bg.Go(func() { get(t, hc, b.URL+"/v2/b/tags/list") })
		}
		bg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("requests to a fast host waited for a host that does not answer")
	}
	if n := slow.now.Load(); n != 2 {
		t.Errorf("%d requests in flight to the stalled host, want 2 (Jobs)", n)
	}
	close(release)
	wg.Wait()
	if m := slow.most.Load(); m != 2 {
		t.Errorf("at most %d requests in flight to one host, want 2 (Jobs)", m)
	}
}

// waitFor polls cond until it holds; the deadline only keeps a broken
// test from hanging (no assertion on how long it took).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A host answering 429 is waited for alone: while its requests wait out
// its Retry-After (held here until the test lets them go), requests to
// another host are served, and the throttled requests then succeed
// without using up the retries of faults (MaxRetries 1 here).
func TestTransportThrottledHostDoesNotStallOthers(t *testing.T) {
	var refused atomic.Int64
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused.Add(1) <= 6 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer b.Close()
	// Waits of a second or more (Retry-After, and the pause it sets) are
	// held until release; shorter ones (the pace's) are slept.
	release := make(chan struct{})
	var held atomic.Int64
	var mu sync.Mutex
	var longest time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		longest = max(longest, d)
		mu.Unlock()
		if d < time.Second {
			return sleepCtx(ctx, d)
		}
		held.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tr := NewTransport(TransportOptions{Jobs: 4, MaxRetries: 1, Sleep: sleep})
	hc := &http.Client{Transport: tr}

	var wg sync.WaitGroup
	var aDone atomic.Int64
	for range 4 {
		wg.Go(func() {
			// Two 429s in a row for some: more than MaxRetries.
			if get(t, hc, a.URL+"/v2/a/tags/list") == http.StatusOK {
				aDone.Add(1)
			}
		})
	}
	waitFor(t, "the throttled requests to wait out Retry-After", func() bool { return held.Load() >= 4 })
	for range 20 {
		if got := get(t, hc, b.URL+"/v2/b/tags/list"); got != http.StatusOK {
			t.Errorf("other host answered %d", got)
		}
	}
	if n := aDone.Load(); n != 0 {
		t.Fatalf("%d throttled requests done before their Retry-After was let go", n)
	}
	close(release)
	wg.Wait()
	if aDone.Load() != 4 {
		t.Errorf("%d of 4 throttled requests succeeded, want all (429s do not use up MaxRetries)", aDone.Load())
	}
	if longest < time.Second {
		t.Errorf("longest wait %v, want Retry-After (1s) honoured", longest)
	}
	st := tr.Stats()
	for _, h := range st.Hosts {
		if h.Host == strings.TrimPrefix(a.URL, "http://") && h.Throttled != 6 {
			t.Errorf("throttled host: %d answers 429 counted, want 6", h.Throttled)
		}
	}
}

// The hosts config sets one host's requests in flight and ceiling; other
// hosts keep the transport's.
func TestTransportHostsConfig(t *testing.T) {
	var fa, fb inFlight
	handler := func(f *inFlight) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.enter()
			defer f.leave()
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := httptest.NewServer(handler(&fa))
	defer a.Close()
	// The other host's requests wait until 4 are in flight (its Jobs), so
	// that the most is reached however slowly they come.
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fb.enter()
		defer fb.leave()
		deadline := time.Now().Add(30 * time.Second)
		for fb.most.Load() < 4 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}))
	defer b.Close()
	ha := strings.TrimPrefix(a.URL, "http://")
	cfg, err := ParseHostsConfig("hosts.yaml", []byte("hosts:\n  "+ha+":\n    jobs: 1\n    qps: 1000\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTransport(TransportOptions{Jobs: 4, Hosts: cfg})
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { get(t, hc, a.URL+"/v2/a/tags/list") })
		wg.Go(func() { get(t, hc, b.URL+"/v2/b/tags/list") })
	}
	wg.Wait()
	if fa.most.Load() != 1 || fb.most.Load() != 4 {
		t.Errorf("most in flight: configured host %d, other %d; want 1 and 4", fa.most.Load(), fb.most.Load())
	}
	for _, h := range tr.Stats().Hosts {
		if h.Host == ha && h.Pace != 1000 {
			t.Errorf("configured host's pace %v, want its qps 1000", h.Pace)
		}
	}
}

func TestParseHostsConfig(t *testing.T) {
	good := `# known quotas
hosts:
  "*-docker.pkg.dev":
    qps: 60
  us-docker.pkg.dev:
    qps: 80
    jobs: 16
  "registry.local:5000":
    jobs: 2
`
	cfg, err := ParseHostsConfig("hosts.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host string
		want HostConfig
		ok   bool
	}{
		{"us-docker.pkg.dev", HostConfig{QPS: 80, Jobs: 16}, true},
		{"europe-west1-docker.pkg.dev", HostConfig{QPS: 60}, true},
		{"registry.local:5000", HostConfig{Jobs: 2}, true},
		{"registry.local", HostConfig{}, false},
		{"gcr.io", HostConfig{}, false},
	} {
		got, ok := cfg.Lookup(tt.host)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tt.host, got, ok, tt.want, tt.ok)
		}
	}
	var none *HostsConfig
	if _, ok := none.Lookup("gcr.io"); ok {
		t.Error("a nil HostsConfig knows a host")
	}

	for _, tt := range []struct{ name, in, want string }{
		{"unknown top field", "host:\n  a: {qps: 1}\n", "hosts.yaml:1: unknown field \"host\""},
		{"unknown host field", "hosts:\n  a:\n    qps: 1\n    burst: 2\n", "hosts.yaml:4: host \"a\": unknown field \"burst\""},
		{"duplicate host", "hosts:\n  a: {qps: 1}\n  a: {qps: 2}\n", "hosts.yaml:3: "},
		{"zero qps", "hosts:\n  a:\n    qps: 0\n", "hosts.yaml:3: host \"a\": qps \"0\""},
		{"string qps", "hosts:\n  a:\n    qps: fast\n", "hosts.yaml:3: host \"a\": qps \"fast\""},
		{"fractional jobs", "hosts:\n  a:\n    jobs: 1.5\n", "hosts.yaml:3: host \"a\": jobs \"1.5\""},
		{"path in host", "hosts:\n  a/b: {qps: 1}\n", "hosts.yaml:2: host \"a/b\""},
		{"bad pattern", "hosts:\n  \"a[\": {qps: 1}\n", "hosts.yaml:2: host \"a[\": bad pattern"},
		{"alias", "hosts:\n  a: &x {qps: 1}\n  b: *x\n", "hosts.yaml:2: aliases"},
		{"list", "hosts:\n  - a\n", "hosts.yaml:2: hosts: want a mapping"},
		{"syntax", "hosts: [\n", "hosts.yaml:1: did not find"},
		{"two documents", "hosts: {}\n---\nhosts: {}\n", "hosts.yaml:2: more than one YAML document"},
	} {
		_, err := ParseHostsConfig("hosts.yaml", []byte(tt.in))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: ParseHostsConfig = %v, want an error starting %q", tt.name, err, tt.want)
		}
	}
	empty, err := ParseHostsConfig("hosts.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(HostConfig{}, func() HostConfig { c, _ := empty.Lookup("a"); return c }()); diff != "" {
		t.Error(diff)
	}
}

// Cancelling a request that waits for a slot returns at once.
func TestTransportCancelWhileQueued(t *testing.T) {
	release := make(chan struct{})
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer a.Close()
	defer close(release)
	tr := NewTransport(TransportOptions{Jobs: 1})
	hc := &http.Client{Transport: tr}
	go hc.Get(a.URL + "/v2/")
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/v2/", nil)
	// The stalled request is never let go before the queued one returns:
	// only its own context can end it.
	_, err := hc.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request queued behind a stalled one = %v, want its context's deadline", err)
	}
}

// lockedClock is a clock shared by goroutines that a Sleep moves forward
// instead of waiting.
type lockedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *lockedClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// A burst of 429s larger than the host's retry budget does not give the
// host up: a request's first MaxRetries retries after 429 are free. Each
// of the 20 requests (one repository each) is refused its first 3 attempts:
// 60 refusals against a budget of 3, every request within its free
// retries whatever order they run in. (A burst of "the first 20 answers",
// shared by all, let one request that the fake clock ran ahead take 6 or
// more of them and pay the budget: 1 run in 40.)
func TestThrottledBurstKeepsRetryBudget(t *testing.T) {
	var mu sync.Mutex
	refused := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := refused[r.URL.Path]
		if n < 3 {
			refused[r.URL.Path] = n + 1
		}
		mu.Unlock()
		if n < 3 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	clock := &lockedClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	tr := NewTransport(TransportOptions{Jobs: 20, HostRetryBudget: 3, Now: clock.now, Sleep: clock.sleep})
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 20 {
		wg.Go(func() {
			if get(t, hc, fmt.Sprintf("%s/v2/a%d/tags/list", srv.URL, i)) == http.StatusOK {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 20 {
		t.Errorf("%d of 20 requests succeeded after 60 answers 429 (budget 3), want all", ok.Load())
	}
	for _, h := range tr.Stats().Hosts {
		if h.GivenUp != "" {
			t.Errorf("host given up after a burst of 429s: %s", h.GivenUp)
		}
	}
}

// A host that answers 429 to everything is still given up once a
// request's free retries are spent and the budget with them.
func TestThrottledForeverGivesUp(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	clock := &lockedClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	tr := NewTransport(TransportOptions{Jobs: 1, MaxRetries: 5, HostRetryBudget: 3, Now: clock.now, Sleep: clock.sleep})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/a/tags/list", nil)
	_, err := tr.RoundTrip(req)
	var g *GivenUpError
	if !errors.As(err, &g) {
		t.Fatalf("a request to a host refusing everything = %v, want the host given up", err)
	}
	// 1 attempt + 5 free retries + 3 paid by the budget, then the budget
	// cannot pay the next.
	if n := calls.Load(); n != 9 {
		t.Errorf("%d attempts before the host was given up, want 9", n)
	}
}

// On a host whose quota is per project (the hosts config here; Google's
// hosts by default), each project has its own requests in flight and its
// own pace: a stalled project holds only its own Jobs, other projects of
// the same host go on, a project's 429s cut only its own pace, and the
// host's requests in flight over all its projects stay bounded (32 × Jobs).
func TestTransportQuotaPerProject(t *testing.T) {
	release := make(chan struct{})
	var stalled inFlight
	var all inFlight
	var refusedBusy atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all.enter()
		defer all.leave()
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/stalled"):
			stalled.enter()
			defer stalled.leave()
			<-release
		case strings.HasPrefix(r.URL.Path, "/v2/busy/") && refusedBusy.Add(1) <= 3:
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg, err := ParseHostsConfig("hosts.yaml", []byte("hosts:\n  "+host+":\n    quota-per: project\n    jobs: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTransport(TransportOptions{Jobs: 8, Hosts: cfg, Sleep: func(ctx context.Context, d time.Duration) error {
		return sleepCtx(ctx, min(d, 10*time.Millisecond))
	}})
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for p := range 3 {
		for range 4 {
			wg.Go(func() { get(t, hc, fmt.Sprintf("%s/v2/stalled%d/img/tags/list", srv.URL, p)) })
		}
	}
	waitFor(t, "2 requests in flight to each of 3 stalled projects", func() bool { return stalled.now.Load() == 6 })
	for range 10 {
		if got := get(t, hc, srv.URL+"/v2/fast/img/tags/list"); got != http.StatusOK {
			t.Errorf("another project of the host answered %d", got)
		}
	}
	if got := get(t, hc, srv.URL+"/v2/busy/img/tags/list"); got != http.StatusOK {
		t.Errorf("the throttled project answered %d after its retries", got)
	}
	if got := get(t, hc, srv.URL+"/v2/"); got != http.StatusOK {
		t.Errorf("a ping answered %d", got)
	}
	close(release)
	wg.Wait()
	if m := stalled.most.Load(); m != 6 {
		t.Errorf("at most %d requests in flight to 3 stalled projects, want 6 (Jobs 2 each, not 2 for the host)", m)
	}
	var hs HostStats
	stats := func() HostStats {
		for _, h := range tr.Stats().Hosts {
			if h.Host == host {
				return h
			}
		}
		return HostStats{}
	}
	// The episode the 429s opened closes (the pace is cut) once it has
	// measured long enough: at most a second.
	waitFor(t, "the throttled project's pace to be cut", func() bool { hs = stats(); return hs.Slowdowns > 0 })
	slow := map[string]int64{}
	for _, p := range hs.Projects {
		slow[p.Project] = p.Slowdowns
	}
	if len(hs.Projects) != 5 || slow["busy"] < 1 || slow["fast"] != 0 || slow["stalled0"] != 0 || hs.Slowdowns != slow["busy"] {
		t.Errorf("projects %+v, host slowdowns %d; want 5 projects, the pace cut on busy alone", hs.Projects, hs.Slowdowns)
	}

	// The bound over all projects: 32 × Jobs.
	release2 := make(chan struct{})
	var held inFlight
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.enter()
		defer held.leave()
		<-release2
	}))
	defer srv2.Close()
	host2 := strings.TrimPrefix(srv2.URL, "http://")
	cfg2, err := ParseHostsConfig("hosts.yaml", []byte("hosts:\n  "+host2+":\n    quota-per: project\n    jobs: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	hc2 := &http.Client{Transport: NewTransport(TransportOptions{Hosts: cfg2})}
	var wg2 sync.WaitGroup
	for p := range 40 {
		wg2.Go(func() { get(t, hc2, fmt.Sprintf("%s/v2/p%d/img/tags/list", srv2.URL, p)) })
	}
	waitFor(t, "32 requests in flight over 40 projects", func() bool { return held.now.Load() == 32 })
	time.Sleep(50 * time.Millisecond) // a 33rd would have been sent by now
	if n := held.now.Load(); n != 32 {
		t.Errorf("%d requests in flight over 40 projects of one host, want 32 (32 × Jobs 1)", n)
	}
	close(release2)
	wg2.Wait()
}

// Google's hosts count their quota per project and start at 50/s; others
// per host, unpaced; the hosts config overrides either field alone.
func TestHostConfigDefaults(t *testing.T) {
	cfg, err := ParseHostsConfig("hosts.yaml", []byte("hosts:\n  us-docker.pkg.dev:\n    jobs: 4\n  gcr.io:\n    start-qps: 0\n    quota-per: host\n  registry.local:\n    quota-per: project\n    start-qps: 20.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want HostConfig
	}{
		{"us-docker.pkg.dev", HostConfig{Jobs: 4, QuotaPer: QuotaPerProject, StartQPS: DefaultGoogleStartQPS, StartSet: true}},
		{"europe-west1-docker.pkg.dev", HostConfig{QuotaPer: QuotaPerProject, StartQPS: DefaultGoogleStartQPS, StartSet: true}},
		{"gcr.io", HostConfig{QuotaPer: QuotaPerHost, StartSet: true}},
		{"us.gcr.io", HostConfig{QuotaPer: QuotaPerProject, StartQPS: DefaultGoogleStartQPS, StartSet: true}},
		{"registry.local", HostConfig{QuotaPer: QuotaPerProject, StartQPS: 20.5, StartSet: true}},
		{"127.0.0.1:5000", HostConfig{QuotaPer: QuotaPerHost, StartSet: true}},
	}
	for _, tt := range tests {
		hc, _ := cfg.Lookup(tt.host)
		if diff := cmp.Diff(tt.want, hc.resolve(tt.host)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.host, diff)
		}
	}
	for _, bad := range []string{"quota-per: region", "quota-per: [host]", "start-qps: -1", "start-qps: fast"} {
		_, err := ParseHostsConfig("hosts.yaml", []byte("hosts:\n  h:\n    "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "hosts.yaml:3:") {
			t.Errorf("%s: error %v, want one naming hosts.yaml:3", bad, err)
		}
	}
}

// A host's quota a throttling episode timed is what MeasuredQuotas gives,
// and a Transport given it starts that host just under it (the plateau)
// where one without it starts unpaced, and one with a ceiling at the
// ceiling. The host refuses past 60/s (a
// 10-deep bucket) on a clock each answer moves 10 ms forward: one request
// at a time offers 100/s.
func TestTransportRemembersQuotas(t *testing.T) {
	clock := &lockedClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	tokens, last := 10.0, clock.now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		now := clock.now()
		tokens = min(10, tokens+60*now.Sub(last).Seconds())
		last = now
		refused := tokens < 1
		if !refused {
			tokens--
		}
		clock.mu.Lock()
		clock.t = clock.t.Add(10 * time.Millisecond)
		clock.mu.Unlock()
		if refused {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	// A refused request is retried 1 ms later (its backoff), so that the
	// one request at a time goes on offering 100/s while the episode
	// measures.
	tr := NewTransport(TransportOptions{Jobs: 1, Backoff: time.Millisecond, Now: clock.now, Sleep: clock.sleep})
	hc := &http.Client{Transport: tr}
	for i := range 400 {
		if got := get(t, hc, fmt.Sprintf("%s/v2/img/manifests/m%d", srv.URL, i)); got != http.StatusOK {
			t.Fatalf("request %d answered %d", i, got)
		}
	}
	measured := tr.MeasuredQuotas()
	if len(measured) != 1 || measured[0].Host != host || measured[0].Project != "" || measured[0].QPS < 50 || measured[0].QPS > 70 || measured[0].MeasuredAt.IsZero() {
		t.Fatalf("measured %+v, want one quota near 60/s for %s", measured, host)
	}
	pace := func(tr *Transport) float64 {
		if got := get(t, &http.Client{Transport: tr}, srv.URL+"/v2/"); got != http.StatusOK {
			t.Fatalf("ping answered %d", got)
		}
		for _, h := range tr.Stats().Hosts {
			if h.Host == host {
				return h.Pace
			}
		}
		return -1
	}
	next := NewTransport(TransportOptions{Jobs: 1, Now: clock.now, Sleep: clock.sleep, Quotas: measured})
	if got, want := pace(next), roundRate(plateau*measured[0].QPS); got != want {
		t.Errorf("a Transport given %.1f/s starts at %.1f, want %.1f (90%%)", measured[0].QPS, got, want)
	}
	if got := pace(NewTransport(TransportOptions{Jobs: 1, QPS: 30, Now: clock.now, Sleep: clock.sleep, Quotas: measured})); got != 30 {
		t.Errorf("a Transport with a ceiling of 30/s given %.1f/s starts at %.1f, want the ceiling", measured[0].QPS, got)
	}
	if got := pace(NewTransport(TransportOptions{Jobs: 1, Now: clock.now, Sleep: clock.sleep})); got != 0 {
		t.Errorf("a Transport given nothing starts at %.1f, want unpaced (0)", got)
	}
	if m := next.MeasuredQuotas(); len(m) != 0 {
		t.Errorf("a Transport that met no 429 measured %+v, want nothing", m)
	}
}
