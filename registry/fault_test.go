package registry

import (
	"context"
	"strings"
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
