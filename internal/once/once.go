// Package once runs a function once per key among concurrent callers and
// shares its result: one manifest GET for every repository that needs the
// digest, one ping per registry host, one writer per (repository, digest).
//
// A call that succeeded is kept: later callers get its value without
// running anything. A call that failed is forgotten as soon as it returns,
// so the next caller runs the function again (a transient failure does not
// poison the key), while the callers that were already waiting get the
// error.
package once

import (
	"context"
	"sync"
)

// Group is a set of keyed calls. The zero value is ready to use; a Group
// must not be copied after first use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// Do returns the result of f for key, running f only when no call for key
// has succeeded and none is running. ran reports whether this caller ran f
// (false: the value or error is another caller's). A caller that waits for
// another's call returns ctx.Err() when ctx ends first; f itself gets no
// context from Do and should use the one its caller has.
func (g *Group[K, V]) Do(ctx context.Context, key K, f func() (V, error)) (v V, ran bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[K]*call[V]{}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &call[V]{done: make(chan struct{})}
		g.calls[key] = c
	}
	g.mu.Unlock()
	if ok {
		select {
		case <-c.done:
			return c.v, false, c.err
		case <-ctx.Done():
			var zero V
			return zero, false, ctx.Err()
		}
	}
	// A panic in f must not leave waiters blocked forever.
	finished := false
	defer func() {
		if !finished {
			c.err = errPanicked
			g.forget(key, c)
			close(c.done)
		}
	}()
	c.v, c.err = f()
	finished = true
	if c.err != nil {
		g.forget(key, c)
	}
	close(c.done)
	return c.v, true, c.err
}

// Value returns key's value when a call for it has succeeded.
func (g *Group[K, V]) Value(key K) (V, bool) {
	g.mu.Lock()
	c, ok := g.calls[key]
	g.mu.Unlock()
	if ok {
		select {
		case <-c.done:
			if c.err == nil {
				return c.v, true
			}
		default:
		}
	}
	var zero V
	return zero, false
}

// Forget drops key's call, finished or not: the next Do runs f again.
// Callers already waiting still get the old call's result.
func (g *Group[K, V]) Forget(key K) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

// Len is the number of keys with a call kept or running.
func (g *Group[K, V]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func (g *Group[K, V]) forget(key K, c *call[V]) {
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	g.mu.Unlock()
}

type panicError struct{}

func (panicError) Error() string { return "once: the shared call panicked" }

var errPanicked error = panicError{}
