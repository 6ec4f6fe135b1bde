package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/registry"
)

// fastTimeouts are timeouts short enough for tests, each distinct so that
// a message names which one ran out.
func fastTimeouts() registry.TransportOptions {
	return registry.TransportOptions{
		ResponseHeaderTimeout: 300 * time.Millisecond,
		IdleTimeout:           200 * time.Millisecond,
		RequestTimeout:        700 * time.Millisecond,
		Backoff:               time.Millisecond,
	}
}

func clientWith(opts registry.TransportOptions) *registry.Client {
	return registry.New(registry.Options{Transport: registry.NewTransport(opts), Keychain: authn.NewMultiKeychain()})
}

// silentServer accepts TCP connections and never answers; it counts them.
func silentServer(t *testing.T) (host string, conns *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held = append(held, c)
			go func() { io.Copy(io.Discard, c) }()
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		l.Close()
	})
	return l.Addr().String(), conns
}

// A registry that accepts connections and never answers: the request
// fails with the header timeout named, after one retry, in a bounded time.
func TestTimeoutNoAnswer(t *testing.T) {
	host, conns := silentServer(t)
	c := clientWith(fastTimeouts())
	repo := parse(t, c, host+"/staging/app")
	start := time.Now()
	_, err := c.Tags(context.Background(), repo)
	elapsed := time.Since(start)
	want := fmt.Sprintf("timed out after 300ms talking to %s (GET /v2/): no answer", host)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "list tags of "+host+"/staging/app: ") {
		t.Fatalf("Tags from a silent server = %v, want %q", err, want)
	}
	var te *registry.TimeoutError
	if !errors.As(err, &te) || te.Phase != "response headers" {
		t.Errorf("error %v is not a *TimeoutError for the response headers", err)
	}
	// Two pings (go-containerregistry's, then the fallback handshake's),
	// over http and https, each retried once: at most 8 waits of 300 ms.
	if elapsed > 5*time.Second {
		t.Errorf("Tags took %v, want well under 5s", elapsed)
	}
	if conns.Load() == 0 {
		t.Error("the silent server saw no connection")
	}
}

// openServer answers the ping (200) and serves handler for the rest.
func openServer(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// stalled returns a function that blocks a handler until its request ends
// or the test does (a server that reads no body does not notice the
// client hanging up).
func stalled(t *testing.T) func(r *http.Request) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

// manifestBody is a small manifest and its digest.
func manifestBody() ([]byte, string) {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}`)
	return raw, fmt.Sprintf("sha256:%x", sha256.Sum256(raw))
}

// A manifest whose body stops half-way: the idle timeout names it, once
// retried; other requests to the host still work.
func TestTimeoutStallMidManifest(t *testing.T) {
	raw, digest := manifestBody()
	var gets atomic.Int64
	host := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			gets.Add(1)
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
			w.Write(raw[:len(raw)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		fmt.Fprint(w, `{"name":"staging/app","tags":["v1"]}`)
	})
	c := clientWith(fastTimeouts())
	repo := parse(t, c, host+"/staging/app")
	_, err := c.GetManifest(context.Background(), repo, digest)
	want := fmt.Sprintf("timed out after 200ms talking to %s (GET /v2/staging/app/manifests/%s): no byte moved", host, digest)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("GetManifest of a stalled body = %v, want %q", err, want)
	}
	if got := gets.Load(); got != 2 {
		t.Errorf("manifest GETs = %d, want 2 (one retry after a timeout)", got)
	}
	if tl, err := c.Tags(context.Background(), repo); err != nil || len(tl.Tags) != 1 {
		t.Errorf("Tags after the stalled manifest = %v, %v; want [v1]", tl, err)
	}
}

// A server that trickles one byte at a time never trips the idle timeout:
// the request timeout stops it.
func TestTimeoutTrickle(t *testing.T) {
	raw, digest := manifestBody()
	host := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
		for i := range raw {
			if _, err := w.Write(raw[i : i+1]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	c := clientWith(fastTimeouts())
	_, err := c.GetManifest(context.Background(), parse(t, c, host+"/staging/app"), digest)
	want := fmt.Sprintf("timed out after 700ms talking to %s (GET /v2/staging/app/manifests/%s): the request took too long", host, digest)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("GetManifest of a trickled body = %v, want %q", err, want)
	}
}

// A blob stream is bounded by its silence, not its length: one that takes
// twice the request timeout but never pauses for the idle timeout arrives.
func TestTimeoutBlobStreamNotCut(t *testing.T) {
	chunk := bytes.Repeat([]byte("x"), 1024)
	const chunks = 14 // 14 × 100 ms = 1.4 s, twice the request timeout
	sum := sha256.New()
	for range chunks {
		sum.Write(chunk)
	}
	digest := fmt.Sprintf("sha256:%x", sum.Sum(nil))
	host := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(chunks*len(chunk)))
		for range chunks {
			w.Write(chunk)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	c := clientWith(fastTimeouts())
	rc, _, err := c.GetBlob(context.Background(), parse(t, c, host+"/staging/app"), digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != int64(chunks*len(chunk)) {
		t.Fatalf("read %d bytes of a slow blob: %v; want all %d", n, err, chunks*len(chunk))
	}
}

// A blob stream that stops moving fails on the idle timeout, as a
// *TimeoutError read from the body.
func TestTimeoutBlobStreamStalls(t *testing.T) {
	host := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c := clientWith(fastTimeouts())
	rc, _, err := c.GetBlob(context.Background(), parse(t, c, host+"/staging/app"), "sha256:"+strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	var te *registry.TimeoutError
	if !errors.As(err, &te) || te.Phase != "body" || te.After != 200*time.Millisecond {
		t.Fatalf("reading a stalled blob = %v, want a *TimeoutError of the body after 200ms", err)
	}
}

// An upload to a registry that stops reading the body fails on the idle
// timeout instead of blocking in a write.
func TestTimeoutUploadNotRead(t *testing.T) {
	var stall func(*http.Request)
	host := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/v2/staging/app/blobs/uploads/u1")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		stall(r) // the PUT's body is never read
	})
	stall = stalled(t)
	c := clientWith(fastTimeouts())
	data := make([]byte, 64<<20) // more than the socket buffers hold
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	start := time.Now()
	_, err := c.UploadBlob(context.Background(), parse(t, c, host+"/staging/app"), digest, func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}, registry.UploadOptions{})
	var te *registry.TimeoutError
	if !errors.As(err, &te) || te.Method != http.MethodPut {
		t.Fatalf("UploadBlob to a registry that reads nothing = %v, want a *TimeoutError of the PUT", err)
	}
	t.Logf("UploadBlob: %v after %v", err, time.Since(start))
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("UploadBlob took %v, want a few idle timeouts", d)
	}
}

// A request waiting on a silent host does not hold up another host.
func TestTimeoutOtherHostsGoOn(t *testing.T) {
	silent, _ := silentServer(t)
	good := openServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"name":"a","tags":["v1","v2"]}`)
	})
	c := clientWith(fastTimeouts())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Tags(context.Background(), parse(t, c, silent+"/a"))
		errc <- err
	}()
	start := time.Now()
	tl, err := c.Tags(context.Background(), parse(t, c, good+"/a"))
	if err != nil || len(tl.Tags) != 2 {
		t.Fatalf("Tags of the good host = %v, %v", tl, err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the good host took %v while the silent one hung, want at once", d)
	}
	var te *registry.TimeoutError
	if err := <-errc; !errors.As(err, &te) {
		t.Errorf("Tags of the silent host = %v, want a *TimeoutError", err)
	}
}
