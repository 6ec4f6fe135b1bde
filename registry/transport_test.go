package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"-5", 0},
		{"100000", MaxRetryAfter},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTransportRetriesAndCounts(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
		}
	}))
	defer srv.Close()
	var waits []time.Duration
	tr := NewTransport(TransportOptions{Backoff: time.Millisecond, Sleep: func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}})
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/a/manifests/x", strings.NewReader("payload"))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "payload" {
		t.Errorf("body after retries = %q, want the request body replayed", body)
	}
	if len(waits) != 2 || waits[1] != 2*time.Second {
		t.Errorf("waits = %v, want a backoff then Retry-After 2s", waits)
	}
	if got := tr.RequestCounts()["PUT manifest"]; got != 3 {
		t.Errorf("PUT manifest count = %d, want 3", got)
	}
}

func TestTransportGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	tr := NewTransport(TransportOptions{MaxRetries: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || tr.Requests() != 3 {
		t.Errorf("status %d after %d requests, want 502 after 3", resp.StatusCode, tr.Requests())
	}
}

// The counters and the log see every attempt: a PUT answered 503, then 429
// with Retry-After, then 200, and a GET of another host.
func TestTransportStatsAndLog(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.Write([]byte("stored"))
		}
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"tags":[]}`))
	}))
	defer other.Close()
	var logged bytes.Buffer
	tr := NewTransport(TransportOptions{
		Backoff: time.Millisecond, Sleep: func(context.Context, time.Duration) error { return nil },
		Logger: slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	hc := &http.Client{Transport: tr}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/a/manifests/x", strings.NewReader("payload"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = hc.Get(other.URL + "/v2/a/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	host, otherHost := strings.TrimPrefix(srv.URL, "http://"), strings.TrimPrefix(other.URL, "http://")
	want := []HostStats{
		{Host: host, Requests: 3, ByKind: []RequestCount{{"PUT", "manifest", 3}}, Status2xx: 1, Status4xx: 1, Status5xx: 1,
			Retries: 2, Throttled: 1, BytesSent: 3 * int64(len("payload")), BytesReceived: int64(len("stored"))},
		{Host: otherHost, Requests: 1, ByKind: []RequestCount{{"GET", "tags", 1}}, Status2xx: 1, BytesReceived: int64(len(`{"tags":[]}`))},
	}
	if host > otherHost {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(Stats{Hosts: want}, tr.Stats()); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
	if got := tr.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
	if diff := cmp.Diff(map[string]int64{"PUT manifest": 3, "GET tags": 1}, tr.RequestCounts()); diff != "" {
		t.Errorf("RequestCounts() (-want +got):\n%s", diff)
	}

	type record struct {
		Level, Msg, Method, Host, Kind, Reason string
		Status, Attempt                        int
		Wait                                   time.Duration
	}
	var got []record
	dec := json.NewDecoder(&logged)
	for dec.More() {
		var r record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	wantLog := []record{
		{Level: "DEBUG", Msg: "request", Method: "PUT", Host: host, Kind: "manifest", Status: 503, Attempt: 1},
		{Level: "WARN", Msg: "retrying", Method: "PUT", Host: host, Kind: "manifest", Reason: "503", Attempt: 1},
		{Level: "DEBUG", Msg: "request", Method: "PUT", Host: host, Kind: "manifest", Status: 429, Attempt: 2},
		{Level: "INFO", Msg: "retrying", Method: "PUT", Host: host, Kind: "manifest", Reason: "429", Attempt: 2, Wait: 2 * time.Second},
		{Level: "DEBUG", Msg: "request", Method: "PUT", Host: host, Kind: "manifest", Status: 200, Attempt: 3},
		{Level: "DEBUG", Msg: "request", Method: "GET", Host: otherHost, Kind: "tags", Status: 200, Attempt: 1},
	}
	// The backoff wait is jittered: check it is there, then compare the rest.
	if len(got) > 1 && got[1].Wait <= 0 {
		t.Errorf("retry after 503 logged wait %v, want the backoff", got[1].Wait)
	}
	if len(got) > 1 {
		got[1].Wait = 0
	}
	if diff := cmp.Diff(wantLog, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// A request still failing when the retries run out is logged as given up.
func TestTransportLogsGivingUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	var logged bytes.Buffer
	tr := NewTransport(TransportOptions{MaxRetries: 1, Sleep: func(context.Context, time.Duration) error { return nil },
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "msg=retrying") || !strings.Contains(lines[1], "msg=\"giving up\"") ||
		!strings.Contains(lines[1], "reason=502") || !strings.Contains(lines[1], "attempts=2") || !strings.Contains(lines[1], "kind=ping") {
		t.Errorf("log at Warn:\n%s\nwant a retry, then giving up after 2 attempts with reason 502", logged.String())
	}
	if st := tr.Stats(); len(st.Hosts) != 1 || st.Hosts[0].Status5xx != 2 || st.Hosts[0].Retries != 1 {
		t.Errorf("Stats() = %+v, want 2 answers 5xx and 1 retry", st)
	}
}
