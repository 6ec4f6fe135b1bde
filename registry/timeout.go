package registry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeout defaults (TransportOptions; cip's --*-timeout flags).
const (
	// DefaultDialTimeout bounds opening a TCP connection. On a working
	// network that takes well under a second; 10 s lets Linux send the SYN
	// again three times (after 1, 3 and 7 s) before the host counts as
	// unreachable. (net/http's default dialer waits 30 s.)
	DefaultDialTimeout = 10 * time.Second
	// DefaultTLSHandshakeTimeout is net/http's own (http.DefaultTransport).
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for an answer once the
	// request is sent. Registries answer in milliseconds; the slowest
	// legitimate waits are the PUT that ends a large blob upload (the
	// registry hashes, and may move, the whole blob before it answers) and
	// GCR's tags/list of a repository with many thousand digests: seconds,
	// tens of seconds for a blob of several GB on object storage.
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultIdleTimeout bounds a body that stops moving: no byte read from
	// a response body, or taken from a request body, for this long. It is
	// what bounds blob streams, which may legitimately take hours in all;
	// TCP itself gives up on a silent peer only after minutes.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds a whole request, body included, except
	// blob streams: the largest are a 4 MiB manifest and a tags page of a
	// few MB, well under a minute at 1 MB/s. It is what stops a server that
	// trickles bytes (1 byte/s keeps the idle timeout from ever firing).
	DefaultRequestTimeout = 2 * time.Minute
)

// timeouts are a Transport's timeouts; 0 means none.
type timeouts struct {
	dial, tls, header, idle, request time.Duration
}

func (o TransportOptions) timeouts() timeouts {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	return timeouts{
		dial:    pick(o.DialTimeout, DefaultDialTimeout),
		tls:     pick(o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		header:  pick(o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		idle:    pick(o.IdleTimeout, DefaultIdleTimeout),
		request: pick(o.RequestTimeout, DefaultRequestTimeout),
	}
}

// defaultBase is the HTTP transport under the Transport when the caller
// gives none: net/http's default with the dial and TLS timeouts, and more
// idle connections per host.
func defaultBase(to timeouts) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// The default of 2 idle connections per host makes parallel jobs
	// against one registry reconnect constantly.
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = 256
	d := &net.Dialer{Timeout: to.dial, KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	t.TLSHandshakeTimeout = to.tls
	return t
}

// watchdog bounds one attempt of a request: it cancels the attempt's
// context, with a *TimeoutError as the cause, when the current phase (the
// request body moving, the wait for the response headers, the response
// body moving) has been silent for its timeout, or (for all but blob
// streams) when the whole attempt outlasts the request timeout. One timer
// serves both, set to whichever comes first.
type watchdog struct {
	cancel   context.CancelCauseFunc
	stopHost func() bool  // detaches the attempt from its host's give-up
	tmpl     TimeoutError // Host, Method, Path
	request  time.Duration
	deadline time.Time // zero: no overall deadline (a blob stream)

	mu    sync.Mutex
	phase string
	after time.Duration // the phase's timeout; 0: none
	timer *time.Timer
	done  bool
}

func newWatchdog(cancel context.CancelCauseFunc, stopHost func() bool, r *http.Request, to timeouts, stream bool) *watchdog {
	w := &watchdog{cancel: cancel, stopHost: stopHost, tmpl: TimeoutError{Host: r.URL.Host, Method: r.Method, Path: r.URL.Path}}
	if to.request > 0 && !stream {
		w.request = to.request
		w.deadline = time.Now().Add(to.request)
	}
	return w
}

// arm starts phase, to time out after d of silence (no timeout when d is 0).
func (w *watchdog) arm(phase string, d time.Duration) {
	w.mu.Lock()
	w.phase, w.after = phase, d
	w.reset()
	w.mu.Unlock()
}

// moved says that bytes moved in the current phase: its silence starts over.
func (w *watchdog) moved() {
	w.mu.Lock()
	if w.after > 0 {
		w.reset()
	}
	w.mu.Unlock()
}

// reset sets the timer to the phase's silence or the deadline, whichever
// is sooner; w.mu is held.
func (w *watchdog) reset() {
	if w.done {
		return
	}
	next := w.after
	if !w.deadline.IsZero() {
		if left := time.Until(w.deadline); next <= 0 || left < next {
			next = max(left, 0)
		}
	}
	switch {
	case next <= 0 && w.deadline.IsZero():
		if w.timer != nil {
			w.timer.Stop()
		}
	case w.timer == nil:
		w.timer = time.AfterFunc(next, w.expire)
	default:
		w.timer.Reset(next)
	}
}

func (w *watchdog) expire() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	e := w.tmpl
	e.Phase, e.After = w.phase, w.after
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		e.Phase, e.After = "request", w.request
	}
	w.mu.Unlock()
	w.cancel(&e)
}

// stop ends the watch and the attempt (its context is released).
func (w *watchdog) stop() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.stopHost()
	w.cancel(nil)
}

// classify turns an attempt's error into the Transport's own: the
// watchdog's or the host's cancellation cause, a dial or TLS timeout, a
// refused connection or unknown host. Others are returned unchanged.
func classify(err error, cause error, r *http.Request, to timeouts) error {
	if err == nil {
		return nil
	}
	var te *TimeoutError
	var ge *GivenUpError
	if cause != nil && (errors.As(cause, &te) || errors.As(cause, &ge)) {
		return cause
	}
	if errors.As(err, &te) || errors.As(err, &ge) {
		return err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Timeout() {
		return &TimeoutError{Host: r.URL.Host, Method: r.Method, Path: r.URL.Path, After: to.dial, Phase: "connect"}
	}
	if err.Error() == "net/http: TLS handshake timeout" {
		return &TimeoutError{Host: r.URL.Host, Method: r.Method, Path: r.URL.Path, After: to.tls, Phase: "TLS handshake"}
	}
	if c := connectFailure(r.URL.Host, err); c != nil {
		return c
	}
	return err
}

// watchedBody is a response body under the attempt's watchdog: each read
// that returns bytes restarts the idle timeout (and counts them); Close
// ends the attempt.
type watchedBody struct {
	rc  io.ReadCloser
	n   *atomic.Int64 // bytes received from the host
	w   *watchdog
	ctx context.Context
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		b.w.moved()
	}
	if err != nil && err != io.EOF {
		if c := context.Cause(b.ctx); c != nil {
			var te *TimeoutError
			var ge *GivenUpError
			if errors.As(c, &te) || errors.As(c, &ge) {
				err = c
			}
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.w.stop()
	return err
}
