package registry

import (
	"context"
	"math"
	"sync"
	"time"
)

// Per-host scheduling. Every registry host has its own requests in flight
// (Jobs) and its own pace, so that a host that is slow or throttles never
// holds back the others: 22 mirrors progress at once, each at its own quota.
//
// The pace adapts (AIMD). A host starts unpaced, or at its ceiling (--qps,
// or the hosts config). The first 429 opens a throttling episode: for
// episodeWindow the host keeps being sent what it was, and the answers it
// accepts in that time measure its quota (a host that answers 429 is at its
// quota, so what it still accepts is the quota; only requests sent after the
// first refused one count, those sent before found its bucket not yet
// empty). Then the pace is set to
// half of min(pace, quota) (the multiplicative decrease), the host waits
// out the longest Retry-After it gave, and the pace recovers additively: a
// tenth of the quota per second up to 90% of it (a margin for the clocks of
// client and server not agreeing on what a second is), and beyond that by
// 1% of the quota per 10 s, so that a quota that grows is found again at
// the cost of one short episode every few minutes. Answers to requests
// sent before a decrease tell of the old pace and are not counted.
const (
	// DefaultJobs is the default number of requests in flight per host.
	// At the tens of milliseconds a request to a production registry
	// takes, 8 in flight offer 100-200 requests/s, more than registries'
	// quotas grant (Artifact Registry answers 429 past roughly 50-80/s per
	// region), so more only queue; on loopback, 8 keep a local run from
	// crowding two cores.
	DefaultJobs = 8

	// episodeWindow is how long a throttling episode measures what the
	// host accepts before the pace is cut: at 40 ms a request and 8 in
	// flight, about 50 answers, enough for an estimate within ~15%.
	episodeWindow = 250 * time.Millisecond
	// minRate is the slowest pace, so that a host refusing everything is
	// still asked once a second.
	minRate = 1.0
	// paceTolerance is the burst the pace allows (requests may start this
	// much earlier than the pace says when the host was idle): small,
	// because a server's own bucket may be shallow.
	paceTolerance = 100 * time.Millisecond
	// defaultThrottleWait is how long a host that answered 429 without a
	// Retry-After is left alone.
	defaultThrottleWait = time.Second
	// plateau is the fraction of the measured quota the additive recovery
	// climbs to quickly.
	plateau = 0.9
)

// throttle is one host's scheduler: slots for requests in flight, and the
// adaptive pace.
type throttle struct {
	slots chan struct{}
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex
	ceiling   float64   // requests/s never exceeded; 0: none
	rate      float64   // the pace; 0: unpaced (no ceiling, no 429 yet)
	quota     float64   // the accepted rate measured in the last episode; 0: unknown
	tat       time.Time // the pace's theoretical arrival time of the next request (GCRA)
	paused    time.Time // no request starts before (Retry-After)
	decreased time.Time // the last decrease
	raised    time.Time // the last additive increase
	ep        episode
	decreases int64
	sent      sendWindow
}

// sendWindow counts the requests started in the last second, in tenths.
type sendWindow struct {
	n     [10]int
	tenth [10]int64 // which tenth of a second each bucket counts
}

func (w *sendWindow) add(at time.Time) {
	k := at.UnixNano() / int64(100*time.Millisecond)
	i := int(k % 10)
	if w.tenth[i] != k {
		w.tenth[i], w.n[i] = k, 0
	}
	w.n[i]++
}

func (w *sendWindow) lastSecond(now time.Time) int {
	k := now.UnixNano() / int64(100*time.Millisecond)
	total := 0
	for i := range w.n {
		if k-w.tenth[i] < 10 {
			total += w.n[i]
		}
	}
	return total
}

// episode is an open throttling episode.
type episode struct {
	start    time.Time // when its first 429 came; zero when none is open
	sent     time.Time // when the request answered by it was sent
	accepted int       // answers other than 429 and 5xx to requests sent since
	samples  int       // answers of any kind to requests sent since
	resume   time.Time // the latest Retry-After deadline given
}

// minSamples is how many answers an episode needs to measure the quota;
// with fewer (a host sent little, throttled for reasons of its own), the
// pace halves from what was sent in the last second instead.
const minSamples = 8

func newThrottle(jobs int, ceiling float64, now func() time.Time, sleep func(context.Context, time.Duration) error) *throttle {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	return &throttle{slots: make(chan struct{}, jobs), now: now, sleep: sleep, ceiling: ceiling, rate: ceiling}
}

// acquire takes a slot and waits for the pace (and any pause). It returns
// when the request may be sent, and that moment (answered needs it).
func (t *throttle) acquire(ctx context.Context) (time.Time, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	d, at := t.reserve()
	// A pause can begin while this request waits for its turn: wait that
	// out too (a bounded number of times; each pause is itself bounded).
	for range 8 {
		if d <= 0 {
			return at, nil
		}
		if err := t.sleep(ctx, d); err != nil {
			t.release()
			return time.Time{}, err
		}
		d, at = t.pausedFor()
	}
	return t.now(), nil
}

// pausedFor returns how long the host's pause still lasts, and now.
func (t *throttle) pausedFor() (time.Duration, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	return t.paused.Sub(now), now
}

// release frees the slot acquire took.
func (t *throttle) release() { <-t.slots }

// reserve books the next start under the pace and returns how long to wait
// for it (0: go now) and when that is.
func (t *throttle) reserve() (time.Duration, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.settle(now)
	start := now
	if t.paused.After(start) {
		start = t.paused
	}
	if t.rate > 0 {
		interval := time.Duration(float64(time.Second) / t.rate)
		tat := t.tat
		if tat.Before(start) {
			tat = start
		}
		if earliest := tat.Add(-paceTolerance); earliest.After(start) {
			start = earliest
		}
		t.tat = tat.Add(interval)
	}
	t.sent.add(start)
	return start.Sub(now), start
}

// answered tells the throttle how the host answered a request sent at
// sent: status 429 opens (or extends) an episode, other answers count as
// accepted in an open one. retryAfter is the host's Retry-After (0: none).
// It reports whether this answer closed an episode (the pace was cut), and
// the pace and quota then.
func (t *throttle) answered(sent time.Time, status int, retryAfter time.Duration) (cut bool, rate, quota float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if sent.Before(t.decreased) {
		return false, 0, 0 // sent at the old pace
	}
	before := t.decreases
	switch {
	case status == 429:
		if t.ep.start.IsZero() {
			t.ep.start, t.ep.sent = now, sent
		} else if sent.After(t.ep.sent) {
			t.ep.samples++
		}
		if retryAfter <= 0 {
			retryAfter = defaultThrottleWait
		}
		if r := now.Add(retryAfter); r.After(t.ep.resume) {
			t.ep.resume = r
		}
	case status > 0 && status < 500 && !t.ep.start.IsZero() && sent.After(t.ep.sent):
		// Requests sent before the first refused one found the host's
		// bucket not yet empty; those sent since measure its refill.
		t.ep.accepted++
		t.ep.samples++
	}
	t.settle(now)
	return t.decreases > before, t.rate, t.quota
}

// settle closes an episode that has measured long enough (the
// multiplicative decrease), and applies the additive increase due since
// the last one.
func (t *throttle) settle(now time.Time) {
	if !t.ep.start.IsZero() && now.Sub(t.ep.start) >= episodeWindow {
		measured := float64(t.ep.accepted) / now.Sub(t.ep.start).Seconds()
		if t.ep.samples < minSamples {
			measured = float64(t.sent.lastSecond(now))
		}
		t.quota = max(measured, minRate)
		base := t.rate
		if base == 0 || base > t.quota {
			base = t.quota
		}
		t.rate = max(minRate, base/2)
		if t.ep.resume.After(t.paused) {
			t.paused = t.ep.resume
		}
		t.decreased, t.raised = now, now
		t.tat = t.paused
		t.ep = episode{}
		t.decreases++
		return
	}
	if t.quota == 0 || t.rate == 0 || now.Sub(t.raised) < time.Second {
		return
	}
	steps := int(now.Sub(t.raised) / time.Second)
	t.raised = t.raised.Add(time.Duration(steps) * time.Second)
	for range min(steps, 600) {
		if t.rate < plateau*t.quota {
			t.rate = min(plateau*t.quota, t.rate+max(1, t.quota/10))
		} else {
			t.rate += max(0.05, t.quota/1000) // 1% of the quota per 10 s
		}
	}
	if t.ceiling > 0 && t.rate > t.ceiling {
		t.rate = t.ceiling
	}
}

// pace returns the current pace (0: unpaced), the measured quota (0:
// unknown) and how many decreases there were.
func (t *throttle) pace() (rate, quota float64, decreases int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settle(t.now())
	return t.rate, t.quota, t.decreases
}

// roundRate rounds a rate for logs and stats.
func roundRate(r float64) float64 { return math.Round(r*10) / 10 }
