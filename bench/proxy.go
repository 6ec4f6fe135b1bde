package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cipdev/cip/internal/apipath"
)

// Proxy is a counting reverse proxy in front of one registry: every tool
// talks to the registry through it, so that requests (by method and kind:
// manifest, blob, tags, upload, …) and body bytes are counted the same way
// for every tool.
type Proxy struct {
	Host string // 127.0.0.1:port, what the tools are given

	srv *http.Server

	mu     sync.Mutex
	counts map[string]int64 // "METHOD kind"
	in     atomic.Int64     // request body bytes (uploads)
	out    atomic.Int64     // response body bytes (downloads)
}

// Counts is what a proxy saw during one tool run.
type Counts struct {
	ByKind   map[string]int64 // "GET manifest" -> n
	BytesIn  int64            // request bodies
	BytesOut int64            // response bodies
}

// Total is the number of requests.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c.ByKind {
		n += v
	}
	return n
}

// Add sums two counts.
func (c Counts) Add(d Counts) Counts {
	out := Counts{ByKind: map[string]int64{}, BytesIn: c.BytesIn + d.BytesIn, BytesOut: c.BytesOut + d.BytesOut}
	for k, v := range c.ByKind {
		out.ByKind[k] += v
	}
	for k, v := range d.ByKind {
		out.ByKind[k] += v
	}
	return out
}

// Keys returns the "METHOD kind" keys, sorted.
func (c Counts) Keys() []string {
	ks := make([]string, 0, len(c.ByKind))
	for k := range c.ByKind {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// StartProxy serves a counting reverse proxy to target (host:port, plain
// HTTP) on a free loopback port.
func StartProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Host: l.Addr().String(), counts: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Tools run up to 8 (crane: 8 processes × 4 jobs) requests at once;
	// without enough idle connections the proxy would reconnect per
	// request and charge that to whichever tool is running.
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	rp.Transport = tr
	// The registry builds upload Locations from the Host header; leaving it
	// as the proxy's address keeps clients coming back through the proxy.
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + apipath.Kind(r.URL.Path)
		p.mu.Lock()
		p.counts[key]++
		p.mu.Unlock()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingReader{r: r.Body, n: &p.in}
		}
		rp.ServeHTTP(&countingWriter{ResponseWriter: w, n: &p.out}, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// Take returns the counts since the last Take (or the start) and zeroes
// them.
func (p *Proxy) Take() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := Counts{ByKind: p.counts, BytesIn: p.in.Swap(0), BytesOut: p.out.Swap(0)}
	p.counts = map[string]int64{}
	return c
}

// Close stops the proxy.
func (p *Proxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
}

type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
