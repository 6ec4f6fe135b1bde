package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cipdev/cip/audit"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
)

const token = "s3cret-token-0123456789"

// lockedBuffer collects log lines written from request goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON log records written so far.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

type testServer struct {
	*audit.Server
	url      string
	db       *inventory.DB
	path     string // the manifest file
	verdicts *lockedBuffer
	log      *lockedBuffer
}

func newServer(t *testing.T, store audit.Store) *testServer {
	t.Helper()
	_, path := loadSet(t, fixture)
	ts := &testServer{path: path, verdicts: &lockedBuffer{}, log: &lockedBuffer{}}
	if store == nil {
		ts.db = openDB(t)
		store = ts.db
	}
	srv, err := audit.NewServer(audit.ServerOptions{
		Store: store, Token: []byte(token),
		Load:     func() (*manifest.Set, error) { return manifest.LoadFile(path, manifest.Options{}) },
		Logger:   slog.New(slog.NewJSONHandler(ts.log, nil)),
		Verdicts: slog.New(slog.NewJSONHandler(ts.verdicts, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ts.url = hs.URL
	return ts
}

// post sends body to /events with the token (when auth is "") and returns
// the status and answer.
func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth == "" {
		auth = "Bearer " + token
	}
	if auth != "none" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics with Prometheus' own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// metric returns the value of the series of name with exactly labels (0
// when absent).
func metric(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func events(mfs map[string]*dto.MetricFamily, verdict string, reason audit.Reason, registry string) float64 {
	return metric(mfs, "cip_audit_events_total", map[string]string{"verdict": verdict, "reason": string(reason), "registry": registry})
}

func TestServerJudgesRecordsLogsAndCounts(t *testing.T) {
	ts := newServer(t, nil)
	body := distEnvelope(
		distEvent("e1", "push", "prod/app", dA, "v1", "manifests"),
		distEvent("e2", "push", "prod/app", dX, "evil", "manifests"),
		distEvent("e3", "push", "prod/app", dX, "", "blobs"),
		distEvent("e4", "pull", "prod/app", dA, "v1", "manifests"),
		distEvent("e5", "delete", "prod/app", dB, "", "manifests"),
		distEvent("e6", "push", "prod/multi", d1, "", "manifests"),
	)
	code, answer := post(t, ts.url, "", body)
	if code != http.StatusOK || !strings.Contains(answer, `"verified":2`) || !strings.Contains(answer, `"rejected":2`) || !strings.Contains(answer, `"ignored":2`) {
		t.Fatalf("POST /events = %d %s; want 200 with 2 verified, 2 rejected, 2 ignored", code, answer)
	}
	// The table.
	rows, err := ts.db.AuditEvents(context.Background(), inventory.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", r.EventID, r.Verdict, r.Reason, r.Repository, r.Tag))
	}
	want := []string{
		"e1 VERIFIED promoted prod.example/prod/app v1",
		"e2 REJECTED not-in-manifest prod.example/prod/app evil",
		"e5 REJECTED deletion prod.example/prod/app ",
		"e6 VERIFIED child prod.example/prod/multi ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit_events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The log: one JSON record per judged event.
	recs := ts.verdicts.records(t)
	if len(recs) != 4 {
		t.Fatalf("%d verdict records, want 4: %v", len(recs), recs)
	}
	if r := recs[1]; r["verdict"] != "REJECTED" || r["reason"] != "not-in-manifest" || r["level"] != "WARN" || r["event_id"] != "e2" || r["digest"] != dX {
		t.Errorf("verdict record = %v", r)
	}
	if r := recs[3]; r["verdict"] != "VERIFIED" || r["parent"] != dI || r["msg"] != "TRANSACTION VERIFIED" {
		t.Errorf("child verdict record = %v", r)
	}
	// The metrics.
	mfs := scrape(t, ts.url)
	for _, c := range []struct {
		verdict string
		reason  audit.Reason
		want    float64
	}{
		{audit.Verified, audit.Promoted, 1}, {audit.Verified, audit.Child, 1},
		{audit.Rejected, audit.NotInManifest, 1}, {audit.Rejected, audit.Deletion, 1},
	} {
		if got := events(mfs, c.verdict, c.reason, "prod.example"); got != c.want {
			t.Errorf("cip_audit_events_total{%s,%s} = %v, want %v", c.verdict, c.reason, got, c.want)
		}
	}
	if got := metric(mfs, "cip_audit_events_ignored_total", map[string]string{"reason": "blob"}); got != 1 {
		t.Errorf("ignored blob = %v, want 1", got)
	}
	if got := metric(mfs, "cip_audit_manifest_last_reload_timestamp_seconds", nil); got < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last reload timestamp = %v", got)
	}

	// A redelivery (the sender did not see the answer) counts nothing again.
	code, answer = post(t, ts.url, "", body)
	if code != http.StatusOK || !strings.Contains(answer, `"duplicates":4`) || !strings.Contains(answer, `"verified":0`) {
		t.Errorf("redelivery = %d %s; want 200 with 4 duplicates", code, answer)
	}
	mfs = scrape(t, ts.url)
	if got := events(mfs, audit.Verified, audit.Promoted, "prod.example"); got != 1 {
		t.Errorf("after redelivery cip_audit_events_total{VERIFIED,promoted} = %v, want 1", got)
	}
	if got := metric(mfs, "cip_audit_events_ignored_total", map[string]string{"reason": "duplicate"}); got != 4 {
		t.Errorf("ignored duplicate = %v, want 4", got)
	}
	if rows, _ := ts.db.AuditEvents(context.Background(), inventory.AuditFilter{}); len(rows) != 4 {
		t.Errorf("after redelivery %d rows, want 4", len(rows))
	}
	if n := len(ts.verdicts.records(t)); n != 4 {
		t.Errorf("after redelivery %d verdict records, want 4", n)
	}

	// A host no manifest names gets the "other" label, whatever it is.
	post(t, ts.url, "", distEnvelope(strings.ReplaceAll(distEvent("h1", "push", "x/y", dA, "", "manifests"), "prod.example", "evil.example")))
	if got := events(scrape(t, ts.url), audit.Rejected, audit.UnknownRepository, "other"); got != 1 {
		t.Errorf("unknown host counted under other = %v, want 1", got)
	}

	// A Pub/Sub push on the same endpoint.
	code, answer = post(t, ts.url, "", pubsub(`{"action":"INSERT","digest":"prod.example/prod/app@`+dA+`","tag":"prod.example/prod/app:latest"}`, "m1"))
	if code != http.StatusOK || !strings.Contains(answer, `"verified":1`) {
		t.Errorf("Pub/Sub push = %d %s", code, answer)
	}
	if rows, _ := ts.db.AuditEvents(context.Background(), inventory.AuditFilter{Verdict: audit.Verified}); rows[len(rows)-1].Source != audit.SourcePubSub {
		t.Errorf("last verified row = %+v, want the Pub/Sub event", rows[len(rows)-1])
	}
}

// Hostile requests each get their status, and the server answers the
// next valid request.
func TestServerHostileRequests(t *testing.T) {
	ts := newServer(t, nil)
	valid := distEnvelope(distEvent("ok", "push", "prod/app", dA, "v1", "manifests"))
	many := make([]string, 1000)
	for i := range many {
		many[i] = distEvent(fmt.Sprintf("m%d", i), "push", "prod/app", dA, "v1", "manifests")
	}
	big := `{"events":[{"id":"` + strings.Repeat("x", 10<<20) + `"}]}`
	for _, tc := range []struct {
		name, auth, body string
		want             int
	}{
		{"no token", "none", valid, http.StatusUnauthorized},
		{"wrong token", "Bearer wrong-token-0123456789", valid, http.StatusUnauthorized},
		{"token prefix", "Bearer " + token[:len(token)-1], valid, http.StatusUnauthorized},
		{"basic auth", "Basic " + token, valid, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", valid, http.StatusUnauthorized},
		{"10 MB body", "", big, http.StatusRequestEntityTooLarge},
		{"deep JSON", "", strings.Repeat("[", 100000) + strings.Repeat("]", 100000), http.StatusBadRequest},
		{"deep JSON inside an event", "", `{"events":[` + strings.Repeat(`{"a":`, 1000) + `1` + strings.Repeat(`}`, 1000) + `]}`, http.StatusBadRequest},
		{"1000 events in one envelope", "", distEnvelope(many...), http.StatusRequestEntityTooLarge},
		{"bad UTF-8", "", "{\"events\":[{\"id\":\"\xc3\x28\",\"action\":\"push\"}]}", http.StatusBadRequest},
		{"not JSON", "", "GET / HTTP/1.1", http.StatusBadRequest},
		{"empty body", "", "", http.StatusBadRequest},
		{"null", "", "null", http.StatusBadRequest},
		{"NUL bytes", "", "{\"events\":[\x00]}", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, answer := post(t, ts.url, tc.auth, tc.body)
			if code != tc.want {
				t.Errorf("status %d (%s), want %d", code, strings.TrimSpace(answer), tc.want)
			}
			if code, _ := post(t, ts.url, "", valid); code != http.StatusOK {
				t.Errorf("the next valid request got %d, want 200", code)
			}
			resp, err := http.Get(ts.url + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("GET /healthz = %v, %v", resp, err)
			} else {
				resp.Body.Close()
			}
		})
	}
	// Nothing hostile was recorded: only the valid event, once.
	rows, err := ts.db.AuditEvents(context.Background(), inventory.AuditFilter{})
	if err != nil || len(rows) != 1 || rows[0].EventID != "ok" {
		t.Errorf("stored events = %+v, %v; want the valid one once", rows, err)
	}
	// Other methods, the query token, /metrics without a token.
	for _, c := range []struct {
		method, path string
		auth         bool
		want         int
	}{
		{http.MethodGet, "/events", true, http.StatusMethodNotAllowed},
		{http.MethodGet, "/events", false, http.StatusUnauthorized},
		{http.MethodGet, "/metrics", false, http.StatusUnauthorized},
		{http.MethodGet, "/metrics?token=" + token, false, http.StatusOK},
		{http.MethodGet, "/readyz", false, http.StatusOK},
		{http.MethodGet, "/nothing", true, http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, ts.url+c.path, nil)
		if c.auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s (token %v) = %d, want %d", c.method, c.path, c.auth, resp.StatusCode, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/events?token="+token, strings.NewReader(pubsub(`{"action":"INSERT","digest":"prod.example/prod/app@`+dA+`"}`, "q1")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("POST /events?token= = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if got := metric(scrape(t, ts.url), "cip_audit_http_requests_total", map[string]string{"code": "401"}); got < 6 {
		t.Errorf("401s counted = %v, want at least 6", got)
	}
}

// failingStore fails (or panics) on writes until fixed.
type failingStore struct {
	*inventory.DB
	mu     sync.Mutex
	broken bool
	panics bool
}

func (f *failingStore) RecordAuditEvents(ctx context.Context, evs []inventory.AuditEvent) ([]bool, error) {
	f.mu.Lock()
	broken, panics := f.broken, f.panics
	f.mu.Unlock()
	if panics {
		panic("store exploded")
	}
	if broken {
		return nil, errors.New("disk full")
	}
	return f.DB.RecordAuditEvents(ctx, evs)
}

// An event that cannot be recorded is answered 500 and counted nowhere, so
// the sender's retry is the first count; a panic is a 500 too, and the
// server goes on.
func TestServerStoreFailures(t *testing.T) {
	fs := &failingStore{DB: openDB(t), broken: true}
	ts := newServer(t, fs)
	body := distEnvelope(distEvent("e1", "push", "prod/app", dX, "", "manifests"))
	if code, _ := post(t, ts.url, "", body); code != http.StatusInternalServerError {
		t.Errorf("with a failing store: %d, want 500", code)
	}
	if got := events(scrape(t, ts.url), audit.Rejected, audit.NotInManifest, "prod.example"); got != 0 {
		t.Errorf("counted %v events that were not recorded", got)
	}
	fs.mu.Lock()
	fs.broken, fs.panics = false, true
	fs.mu.Unlock()
	if code, _ := post(t, ts.url, "", body); code != http.StatusInternalServerError {
		t.Errorf("with a panicking store: %d, want 500", code)
	}
	fs.mu.Lock()
	fs.panics = false
	fs.mu.Unlock()
	if code, _ := post(t, ts.url, "", body); code != http.StatusOK {
		t.Errorf("after the store recovered: %d, want 200", code)
	}
	if got := events(scrape(t, ts.url), audit.Rejected, audit.NotInManifest, "prod.example"); got != 1 {
		t.Errorf("after the retry: %v, want 1", got)
	}
	if !strings.Contains(fmt.Sprint(ts.log.records(t)), "store exploded") {
		t.Errorf("the panic was not logged")
	}
}

func TestNewServerRefuses(t *testing.T) {
	db := openDB(t)
	_, path := loadSet(t, fixture)
	load := func() (*manifest.Set, error) { return manifest.LoadFile(path, manifest.Options{}) }
	if _, err := audit.NewServer(audit.ServerOptions{Store: db, Token: []byte("short"), Load: load}); err == nil {
		t.Errorf("NewServer accepted a 5-byte token")
	}
	bad := func() (*manifest.Set, error) { return nil, errors.New("invalid manifests") }
	if _, err := audit.NewServer(audit.ServerOptions{Store: db, Token: []byte(token), Load: bad}); err == nil {
		t.Errorf("NewServer started without valid manifests")
	}
}

// serve runs srv on a loopback port until the test ends.
func serve(t *testing.T, srv *audit.Server) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(audit.ShutdownTimeout + 5*time.Second):
				serr = errors.New("Serve did not return")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The manifests are polled: a valid change is picked up, an invalid one
// keeps the last good set and says so; Reload (SIGHUP) does the same.
func TestServerReloads(t *testing.T) {
	db := openDB(t)
	_, path := loadSet(t, fixture)
	logs := &lockedBuffer{}
	srv, err := audit.NewServer(audit.ServerOptions{
		Store: db, Token: []byte(token),
		Load:  func() (*manifest.Set, error) { return manifest.LoadFile(path, manifest.Options{}) },
		Watch: []string{path}, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serve(t, srv)
	verdictOf := func(id, digest string) string {
		code, answer := post(t, url, "", distEnvelope(distEvent(id, "push", "prod/app", digest, "", "manifests")))
		if code != http.StatusOK {
			t.Fatalf("POST: %d %s", code, answer)
		}
		if strings.Contains(answer, `"verified":1`) {
			return audit.Verified
		}
		return audit.Rejected
	}
	if v := verdictOf("r1", dX); v != audit.Rejected {
		t.Fatalf("x before the change: %s, want REJECTED", v)
	}
	// Promote x too.
	changed := strings.Replace(fixture, `["v0.9"]`, "[\"v0.9\"]\n    \""+dX+"\": [\"v2.0\"]", 1)
	if err := replaceFile(path, changed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return srv.Policy().Digests == 12 })
	if v := verdictOf("r2", dX); v != audit.Verified {
		t.Errorf("x after the change: %s, want VERIFIED", v)
	}
	// An invalid change (a tag on two digests) is refused.
	invalid := strings.Replace(changed, `["v2.0"]`, `["v1"]`, 1)
	if err := replaceFile(path, invalid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool {
		return metric(scrape(t, url), "cip_audit_manifest_reloads_total", map[string]string{"result": "error"}) == 1
	})
	if v := verdictOf("r3", dX); v != audit.Verified {
		t.Errorf("x after the invalid change: %s, want VERIFIED (the last good set)", v)
	}
	if !strings.Contains(fmt.Sprint(logs.records(t)), "keeping the last good set") {
		t.Errorf("the refused reload was not logged")
	}
	// The same invalid content is not retried on every poll.
	time.Sleep(100 * time.Millisecond)
	if got := metric(scrape(t, url), "cip_audit_manifest_reloads_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("refused reloads = %v, want 1 (one per change)", got)
	}
	if err := srv.Reload(context.Background()); err == nil {
		t.Errorf("Reload of invalid manifests succeeded")
	}
	// Graceful shutdown returns promptly and closes the port.
	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Errorf("the server still answers after shutdown")
	}
}

// Until the first refresh is done, events are answered 503 (the senders
// retry) and /readyz says not ready.
func TestServerWaitsForRefresh(t *testing.T) {
	db := openDB(t)
	_, path := loadSet(t, fixture)
	release := make(chan struct{})
	var refreshed []*manifest.Set
	srv, err := audit.NewServer(audit.ServerOptions{
		Store: db, Token: []byte(token),
		Load: func() (*manifest.Set, error) { return manifest.LoadFile(path, manifest.Options{}) },
		Refresh: func(ctx context.Context, set *manifest.Set) error {
			refreshed = append(refreshed, set)
			<-release
			return errors.New("source registry down")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serve(t, srv)
	body := distEnvelope(distEvent("w1", "push", "prod/app", dA, "", "manifests"))
	if code, _ := post(t, url, "", body); code != http.StatusServiceUnavailable {
		t.Errorf("event before the first refresh: %d, want 503", code)
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the refresh = %v, %v; want 503", resp, err)
	}
	close(release)
	waitFor(t, "ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// A failed refresh still lets the server judge with what it knows.
	if code, answer := post(t, url, "", body); code != http.StatusOK || !strings.Contains(answer, `"verified":1`) {
		t.Errorf("event after the refresh: %d %s", code, answer)
	}
	if len(refreshed) != 1 || len(refreshed[0].Manifests) != 1 {
		t.Errorf("refreshed %d sets, want the loaded one once", len(refreshed))
	}
}

// blockingStore holds every write until released.
type blockingStore struct {
	*inventory.DB
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) RecordAuditEvents(ctx context.Context, evs []inventory.AuditEvent) ([]bool, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.DB.RecordAuditEvents(ctx, evs)
}

// SIGTERM (the context ending) lets a request in flight finish and record
// its events, and refuses new connections.
func TestServerGracefulShutdown(t *testing.T) {
	bs := &blockingStore{DB: openDB(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	_, path := loadSet(t, fixture)
	srv, err := audit.NewServer(audit.ServerOptions{Store: bs, Token: []byte(token),
		Load: func() (*manifest.Set, error) { return manifest.LoadFile(path, manifest.Options{}) }})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serve(t, srv)
	type result struct {
		code   int
		answer string
	}
	got := make(chan result, 1)
	go func() {
		code, answer := post(t, url, "", distEnvelope(distEvent("inflight", "push", "prod/app", dA, "", "manifests")))
		got <- result{code, answer}
	}()
	<-bs.entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	close(bs.release)
	r := <-got
	if r.code != http.StatusOK || !strings.Contains(r.answer, `"verified":1`) {
		t.Errorf("request in flight at shutdown: %d %s, want 200, verified", r.code, r.answer)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if rows, _ := bs.DB.AuditEvents(context.Background(), inventory.AuditFilter{}); len(rows) != 1 {
		t.Errorf("%d events recorded, want the one in flight", len(rows))
	}
}

// replaceFile writes data to path in one step (a temporary file renamed
// over it), as git-sync and editors that save atomically do: an in-place
// write truncates first, and a poll on a loaded machine can then read the
// half-written file and count a reload of it.
func replaceFile(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
