package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
