package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cipdev/cip/internal/faultproxy"
	"github.com/cipdev/cip/internal/regtest"
)

// TestGetManifestThroughFaults fetches a manifest by digest through a proxy
// that resets the connection in the middle of the body or truncates it:
// within the retry budget the right bytes arrive; beyond it the mismatch is
// an error naming the digest, never wrong content.
func TestGetManifestThroughFaults(t *testing.T) {
	reg := regtest.New(t)
	d := reg.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	tests := []struct {
		name    string
		fault   faultproxy.Fault
		per     int // faults per request
		wantErr string
	}{
		{"reset twice, then served", faultproxy.Reset, 2, ""},
		{"truncated twice, then served", faultproxy.Truncate, 2, ""},
		{"truncated every time", faultproxy.Truncate, 100, "body has digest"},
		{"reset every time", faultproxy.Reset, 100, "read manifest body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := faultproxy.New(t, reg.Host, faultproxy.Options{Seed: 1, Rate: 1, Faults: []faultproxy.Fault{tt.fault}, MaxPerRequest: tt.per})
			var waits int
			c := New(Options{Transport: NewTransport(TransportOptions{Sleep: func(context.Context, time.Duration) error {
				waits++
				return nil
			}})})
			repo, err := c.ParseRepository(p.Host + "/staging/app")
			if err != nil {
				t.Fatal(err)
			}
			m, err := c.GetManifest(context.Background(), repo, d.String())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), d.String()) {
					t.Fatalf("GetManifest = %v, want an error with %q naming %s", err, tt.wantErr, d)
				}
				if got := p.Injected()[tt.fault]; got != DefaultMaxRetries+1 {
					t.Errorf("faults injected = %d, want %d (one per attempt)", got, DefaultMaxRetries+1)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetManifest = %v, want success after retries", err)
			}
			if m.Digest != d.String() {
				t.Errorf("GetManifest digest = %s, want %s", m.Digest, d)
			}
			if got := p.Injected()[tt.fault]; got != tt.per || waits != tt.per {
				t.Errorf("faults injected = %d, retry waits = %d, want %d each", got, waits, tt.per)
			}
		})
	}
}

// failingBody yields some bytes, then the error promote saw when a blob
// streamed from the source had its connection reset mid-way.
type failingBody struct{ n int }

func (f *failingBody) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("http: read on closed response body")
	}
	k := min(f.n, len(p))
	for i := range k {
		p[i] = 'x'
	}
	f.n -= k
	return k, nil
}

func (f *failingBody) Close() error { return nil }

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestStreamedBodyFailureRetried: a PUT whose streamed body fails mid-way
// is retried with a fresh body from GetBody, even when the HTTP transport
// hands back the body's own error rather than a network error (as
// net/http does when the server answers while the body is being sent).
func TestStreamedBodyFailureRetried(t *testing.T) {
	var sent []int
	var mu sync.Mutex
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n, err := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		mu.Lock()
		sent = append(sent, int(n))
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: http.StatusCreated, Body: http.NoBody, Request: r}, nil
	})
	tr := NewTransport(TransportOptions{Base: base, Sleep: func(context.Context, time.Duration) error { return nil }})
	opens := 0
	req, _ := http.NewRequest(http.MethodPut, "http://registry.test/v2/a/blobs/uploads/x?digest=sha256:0", &failingBody{n: 50000})
	req.ContentLength = 100000
	req.GetBody = func() (io.ReadCloser, error) {
		opens++
		return io.NopCloser(strings.NewReader(strings.Repeat("x", 100000))), nil
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("PUT with a failing streamed body = %v, want a retry to succeed", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || opens != 1 || fmt.Sprint(sent) != "[50000 100000]" {
		t.Errorf("status %d after %d fresh bodies, bytes sent %v; want 201 after 1, [50000 100000]", resp.StatusCode, opens, sent)
	}
}
