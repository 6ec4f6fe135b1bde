package registry

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkTransportRoundTrip measures what the shared Transport adds to
// every request (rate limiter look-up, counting, retry bookkeeping) over a
// base transport that answers at once: a HEAD with no body, and a blob GET
// whose small body is read to the end and closed.
func BenchmarkTransportRoundTrip(b *testing.B) {
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body := http.NoBody
		var rc io.ReadCloser = body
		if r.Method == http.MethodGet {
			rc = io.NopCloser(strings.NewReader("0123456789abcdef"))
		}
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: rc, Request: r}, nil
	})
	info := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, tt := range []struct {
		name, method, path string
		log                *slog.Logger
	}{
		{"head", http.MethodHead, "/v2/a/b/blobs/sha256:00", nil},
		{"get", http.MethodGet, "/v2/a/b/blobs/sha256:00", nil},
		{"head-log-info", http.MethodHead, "/v2/a/b/blobs/sha256:00", info},
		{"head-log-debug", http.MethodHead, "/v2/a/b/blobs/sha256:00", debug},
	} {
		b.Run(tt.name, func(b *testing.B) {
			tr := NewTransport(TransportOptions{Base: base, Logger: tt.log})
			req, _ := http.NewRequest(tt.method, "http://registry.test"+tt.path, nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := tr.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
