// Package hostpool runs work queued per registry host, with a bound on the
// work running at once for each host: the hosts' queues drain side by
// side, so that work for 22 mirrors progresses at once instead of a global
// pool filling with whichever host's work came first and waiting on that
// host (its requests in flight and its pace are the registry Transport's,
// per host too) while the others sit idle.
package hostpool

import "sync"

// Pool is a set of per-host queues. A Pool must not be copied after first
// use.
type Pool struct {
	limit, queueLimit int

	mu    sync.Mutex
	hosts map[string]*queue
	wg    sync.WaitGroup
}

type queue struct {
	pending []func()
	running int
	room    *sync.Cond // signalled when pending shrinks
}

// New returns a pool running at most limit functions at once per host
// (at least 1).
func New(limit int) *Pool {
	return &Pool{limit: max(limit, 1), hosts: map[string]*queue{}}
}

// Bounded returns a pool like New whose Go blocks while the host already
// has queueLimit functions waiting: a producer streaming work (in an
// order that interleaves hosts) then holds only a bounded amount of it.
func Bounded(limit, queueLimit int) *Pool {
	p := New(limit)
	p.queueLimit = max(queueLimit, 1)
	return p
}

// Go queues f for host and returns: at once for a pool from New, or when
// the host's queue has room for a pool from Bounded.
func (p *Pool) Go(host string, f func()) {
	p.mu.Lock()
	q := p.hosts[host]
	if q == nil {
		q = &queue{room: sync.NewCond(&p.mu)}
		p.hosts[host] = q
	}
	for p.queueLimit > 0 && len(q.pending) >= p.queueLimit {
		q.room.Wait()
	}
	q.pending = append(q.pending, f)
	p.wg.Add(1)
	if q.running < p.limit {
		q.running++
		go p.work(q)
	}
	p.mu.Unlock()
}

// work runs q's functions until it is empty.
func (p *Pool) work(q *queue) {
	for {
		p.mu.Lock()
		if len(q.pending) == 0 {
			q.running--
			p.mu.Unlock()
			return
		}
		f := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		q.room.Signal()
		p.mu.Unlock()
		f()
		p.wg.Done()
	}
}

// Wait waits for every queued function to return.
func (p *Pool) Wait() { p.wg.Wait() }
