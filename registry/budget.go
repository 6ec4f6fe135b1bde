package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Retry budget defaults (TransportOptions; cip's --retry-budget flags).
const (
	// DefaultHostRetryBudget is how many retries one registry host may cost
	// a run beyond what it earns back: every answered request returns one,
	// so a host is given up only while its failures outnumber its answers.
	// 100 rides out a registry restart under 16 jobs (each request retries
	// up to DefaultMaxRetries times) with room to spare.
	DefaultHostRetryBudget = 100
	// DefaultRunRetryBudget is the same budget for the whole run, across
	// hosts: when the network itself is gone, every host fails at once and
	// the run stops after this many retries instead of spending each
	// host's budget in turn.
	DefaultRunRetryBudget = 1000
	// timeoutRetryCost is what a retry after a timeout takes from the
	// budgets: it has already cost seconds of silence, not milliseconds.
	timeoutRetryCost = 10
	// timeoutRetries is how often one request is retried after timing
	// out: once, for a connection that went bad; a second timeout in a row
	// says the server is stuck.
	timeoutRetries = 1
)

// budget is a bucket of retries: a retry takes from it, an answer gives one
// back (never beyond its size). Lock-free: it is touched by every request.
type budget struct {
	size int64
	left atomic.Int64
}

func newBudget(size int) *budget {
	b := &budget{size: int64(size)}
	b.left.Store(int64(size))
	return b
}

// take takes cost from the bucket, or reports false (taking nothing) when
// it holds less.
func (b *budget) take(cost int64) bool {
	for {
		n := b.left.Load()
		if n < cost {
			return false
		}
		if b.left.CompareAndSwap(n, n-cost) {
			return true
		}
	}
}

// earn gives one back.
func (b *budget) earn() {
	for {
		n := b.left.Load()
		if n >= b.size || b.left.CompareAndSwap(n, n+1) {
			return
		}
	}
}

// giveUp stops the Transport talking to host h for the rest of the run:
// requests waiting or in flight end with a *GivenUpError (freeing their job
// slots), and every later request fails at once with it. Only the first
// reason is kept.
func (t *Transport) giveUp(ctx context.Context, host string, h *hostState, reason string) *GivenUpError {
	e := &GivenUpError{Host: host, Reason: reason}
	if !h.down.CompareAndSwap(nil, e) {
		return h.down.Load()
	}
	h.cancel(e)
	if t.log != nil {
		t.log.LogAttrs(ctx, slog.LevelWarn, "giving up on host", slog.String("host", host), slog.String("reason", reason))
	}
	t.emit(Event{Host: host, GaveUp: e})
	return e
}

// chargeRetry takes one retry's cost from h's and the run's budgets; when
// either cannot pay, h is given up and its error returned.
func (t *Transport) chargeRetry(ctx context.Context, host string, h *hostState, cost int64, last string) *GivenUpError {
	if !h.budget.take(cost) {
		return t.giveUp(ctx, host, h, fmt.Sprintf("its retry budget (%d) is spent; last: %s", h.budget.size, last))
	}
	if !t.budget.take(cost) {
		return t.giveUp(ctx, host, h, fmt.Sprintf("the run's retry budget (%d) is spent; last: %s", t.budget.size, last))
	}
	return nil
}

// Event is something the Transport reports as it happens, for a live
// display or a CI log: a request about to wait before a retry, or a host
// given up.
type Event struct {
	Host string
	// Wait > 0: a request to Host waits this long, then retries, because
	// of Reason ("429", "503", "timeout", "connection reset", …).
	Wait   time.Duration
	Reason string
	// GaveUp is set when the Transport stopped talking to Host.
	GaveUp *GivenUpError
}

func (t *Transport) emit(e Event) {
	if t.events != nil {
		t.events(e)
	}
}
