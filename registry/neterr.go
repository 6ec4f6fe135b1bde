package registry

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ConnectError is a registry host that could not be reached at all: the
// connection was refused, or its name does not resolve. Neither is retried:
// nothing listens there, and asking again only delays the error.
type ConnectError struct {
	Host string // host[:port] as the request named it
	Err  error  // the dial or look-up error
}

func (e *ConnectError) Error() string {
	var dns *net.DNSError
	if errors.As(e.Err, &dns) {
		return fmt.Sprintf("look up %s: no such host", dns.Name)
	}
	return fmt.Sprintf("connect to %s: connection refused", e.Host)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// TimeoutError is a request that a registry host left unanswered, or
// stalled, for longer than one of the Transport's timeouts.
type TimeoutError struct {
	Host   string        // host[:port]
	Method string        // GET, HEAD, PUT, …
	Path   string        // the URL path, without its query (which may hold upload tokens)
	After  time.Duration // the timeout that ran out
	// What was awaited: "connect", "TLS handshake", "response headers",
	// "body" (no byte moved for After) or "request" (the whole request).
	Phase string
}

func (e *TimeoutError) Error() string {
	what := map[string]string{
		"connect":          "no connection",
		"TLS handshake":    "no TLS handshake",
		"response headers": "no answer",
		"body":             "no byte moved",
		"request":          "the request took too long",
	}[e.Phase]
	if what == "" {
		what = e.Phase
	}
	return fmt.Sprintf("timed out after %s talking to %s (%s %s): %s", e.After, e.Host, e.Method, e.Path, what)
}

// Timeout reports true, as a net.Error does.
func (e *TimeoutError) Timeout() bool { return true }

// GivenUpError is a request to a registry host that cip stopped talking to
// for the rest of the run: its retry budget ran out, or it asked cip to
// wait longer than cip ever waits. Every later request to the host fails at
// once with it, so that the host's work stops holding job slots.
type GivenUpError struct {
	Host   string
	Reason string // why, e.g. "retry budget of 100 spent; last: 429 on GET /v2/a/tags/list"
}

func (e *GivenUpError) Error() string {
	return fmt.Sprintf("gave up on %s: %s", e.Host, e.Reason)
}

// connectFailure classifies an error from dialling host: a refused
// connection or a name that does not exist (as opposed to a temporary
// resolver failure) becomes a ConnectError; anything else is nil.
func connectFailure(host string, err error) *ConnectError {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED) {
		return &ConnectError{Host: host, Err: err}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return &ConnectError{Host: host, Err: err}
	}
	return nil
}

// transportError digs the Transport's own errors (ConnectError,
// TimeoutError, GivenUpError) out of the wrappers that net/http
// (*url.Error) and go-containerregistry (a ping's error per scheme) put
// around them, so that the message says what failed once, without URLs.
// Any other error is returned unchanged.
func transportError(err error) error {
	e, _ := ownError(err)
	return e
}

// ownError is transportError, and whether err held one of the Transport's
// own errors.
func ownError(err error) (error, bool) {
	if err == nil {
		return nil, false
	}
	var g *GivenUpError
	if errors.As(err, &g) {
		return g, true
	}
	var c *ConnectError
	if errors.As(err, &c) {
		return c, true
	}
	var t *TimeoutError
	if errors.As(err, &t) {
		return t, true
	}
	return err, false
}
