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
// The pace adapts (AIMD). A host starts unpaced, at a guess (the hosts
// config's start-qps), or at its ceiling (--qps, or the hosts config). The first 429 opens a throttling episode: for
// episodeWindow the host keeps being sent what it was, and the episode
// measures the host's quota. A host refuses only when its bucket is empty:
// between the first and the last refused request of the episode, every
// request it accepted took a token that refilled in that time, so the
// accepted requests sent between the two refused ones, over the time
// between them, are the quota (whatever was offered meanwhile), as long as
// the host saw the requests in the order they were sent: when the round
// trips of the episode's answers spread over more than a quarter of the
// span (a loaded client sending and reading late), the count is only a
// guess. When the refusals are too close together to time (a single burst)
// for up to a second, a guess stands in too: what the host accepted since
// the first refusal. A guess is never below half of what the host accepted
// in its busiest second around the episode (at least the lesser of its
// bucket's depth and its quota: it refuses only with its bucket empty);
// past 90% of a guess the pace goes on climbing, 2% of it a second (at
// least one request/s), until the next 429 measures the quota. Then the
// pace is set to
// half of min(pace, quota) (the multiplicative decrease), the host waits
// out the longest Retry-After it gave, and the pace recovers additively: a
// tenth of the quota per second up to 90% of it (a margin for the clocks of
// client and server not agreeing on what a second is), and beyond that by
// 1% of the quota per 10 s, so that a quota that grows is found again at
// the cost of one short episode every few minutes; both climbs past 90%
// happen only in seconds when the pace held the host back (it was sent
// 80% of the pace or more). A host may also start at a guess (start: 50/s
// per project on Google's hosts). Answers to requests sent before a
// decrease tell of the old pace and are not counted.
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
	// turn is held by the one request waiting for the pace; the others
	// wait for it in the channel, which wakes one of them at a time. When
	// every waiting request slept until the next turn, each turn woke all
	// of them and all but one went back to sleep: 170 µs of CPU a turn
	// with 64 waiting, 76 µs with the head alone (BenchmarkThrottleWaiters).
	turn  chan struct{}
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex
	ceiling   float64   // requests/s never exceeded; 0: none
	rate      float64   // the pace; 0: unpaced (no ceiling, no 429 yet)
	quota     float64   // the accepted rate measured in the last episode; 0: unknown
	guessed   bool      // quota is a low guess (refusals too close together to time)
	tat       time.Time // the pace's theoretical arrival time of the next request (GCRA)
	paused    time.Time // no request starts before (Retry-After)
	decreased time.Time // the last decrease
	raised    time.Time // the last additive increase
	ep        episode
	decreases int64
	// measured is the last quota an episode timed (not a guess), and
	// when: what the next run may start from (Transport.MeasuredQuotas).
	measured   float64
	measuredAt time.Time
	sent       sendWindow // requests started
	accepted   sendWindow // answers other than 429 and 5xx, by when they came
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
	start    time.Time   // when its first 429 came; zero when none is open
	first    time.Time   // when the first refused request was sent
	last     time.Time   // when the last refused request was sent
	accepted []time.Time // when each accepted request sent after first was sent
	busiest  int         // the most requests accepted in one second, from a second before it opened
	// The shortest and longest round trips (answer less send) of the
	// answers it saw: how far the client's own delays may have moved a
	// request between when it was sent and when the host saw it.
	rttMin, rttMax time.Duration
	resume         time.Time // the latest Retry-After deadline given
}

// minSpan is the least time between an episode's first and last refused
// requests that times the quota: ten requests' worth at the quotas
// registries grant (50/s: one every 20 ms), within 10%. An episode whose
// refusals span less goes on measuring up to maxEpisode.
const minSpan = 200 * time.Millisecond

// maxEpisode is the longest an episode measures: a host still refusing
// after it is cut on what it accepted in the last second.
const maxEpisode = time.Second

// maxEpisodeSamples bounds what an episode keeps: at most a few seconds of
// accepted requests at any quota.
const maxEpisodeSamples = 4096

func newThrottle(jobs int, ceiling float64, now func() time.Time, sleep func(context.Context, time.Duration) error) *throttle {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	return &throttle{slots: make(chan struct{}, jobs), turn: make(chan struct{}, 1), now: now, sleep: sleep, ceiling: ceiling, rate: ceiling}
}

// start sets the pace a host without a ceiling starts at: a guess of its
// quota (the pace at plateau of it), which climbs as guesses do until the
// first 429 measures the quota. 0 leaves it unpaced.
func (t *throttle) start(rate float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rate <= 0 || t.ceiling > 0 {
		return
	}
	t.rate, t.quota, t.guessed = rate, rate/plateau, true
	t.raised = t.now()
}

// remember starts the pace from a quota an earlier run measured: at the
// plateau of it (below the ceiling, if any), climbing from there as after
// a measured episode (1% of the quota per 10 s while the pace holds the
// host back), so that a run does not meet the quota again only to learn
// what it already knew.
func (t *throttle) remember(quota float64) {
	if !(quota > 0) || math.IsInf(quota, 0) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.quota, t.guessed = max(quota, minRate), false
	t.rate = max(minRate, plateau*t.quota)
	if t.ceiling > 0 && t.rate > t.ceiling {
		t.rate = t.ceiling
	}
	t.raised = t.now()
}

// measuredQuota returns the last quota an episode of this run timed, and
// when (zero: none did).
func (t *throttle) measuredQuota() (float64, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settle(t.now())
	return t.measured, t.measuredAt
}

// acquire takes a slot and waits for the pace (and any pause). It returns
// when the request may be sent, and that moment (answered needs it).
func (t *throttle) acquire(ctx context.Context) (time.Time, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	// The one request at the head waits for the pace; the rest wait to
	// be the head.
	select {
	case t.turn <- struct{}{}:
	case <-ctx.Done():
		t.release()
		return time.Time{}, ctx.Err()
	}
	defer func() { <-t.turn }()
	// Wait for a turn without booking one ahead: the pace may change
	// while this request waits (a cut, a pause, the climb back), and a
	// turn booked seconds ahead at the old pace would keep it. Each wait
	// ends when the next turn is due, then the request tries again; the
	// loop is bounded (a turn comes at least once a second, minRate).
	for i := 0; ; i++ {
		d, at := t.take(i >= maxWaits)
		if d <= 0 {
			return at, nil
		}
		if err := t.sleep(ctx, d); err != nil {
			t.release()
			return time.Time{}, err
		}
	}
}

// maxWaits bounds the tries of one request for a turn; past it the request
// goes anyway (a clock gone wrong must not hold a request forever).
const maxWaits = 100000

// release frees the slot acquire took.
func (t *throttle) release() { <-t.slots }

// take gives the caller the next turn under the pace and the pause when
// it is due now (or force): it returns 0 and now. Otherwise it returns how
// long until the next turn is due, and takes nothing.
func (t *throttle) take(force bool) (time.Duration, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.settle(now)
	if !force && t.paused.After(now) {
		return t.paused.Sub(now), time.Time{}
	}
	if t.rate > 0 {
		// GCRA: a turn is due when the theoretical arrival time, less the
		// tolerance, has come.
		if due := t.tat.Add(-paceTolerance); !force && due.After(now) {
			return due.Sub(now), time.Time{}
		}
		interval := time.Duration(float64(time.Second) / t.rate)
		if t.tat.Before(now) {
			t.tat = now
		}
		t.tat = t.tat.Add(interval)
	}
	t.sent.add(now)
	return 0, now
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
	if status == 429 || !t.ep.start.IsZero() {
		rtt := now.Sub(sent)
		if t.ep.start.IsZero() || rtt > t.ep.rttMax {
			t.ep.rttMax = rtt
		}
		if t.ep.start.IsZero() || rtt < t.ep.rttMin {
			t.ep.rttMin = rtt
		}
	}
	switch {
	case status == 429:
		if t.ep.start.IsZero() {
			t.ep.start, t.ep.first, t.ep.last = now, sent, sent
			t.ep.busiest = t.accepted.lastSecond(now)
		} else if sent.After(t.ep.last) {
			t.ep.last = sent
		}
		if retryAfter <= 0 {
			retryAfter = defaultThrottleWait
		}
		if r := now.Add(retryAfter); r.After(t.ep.resume) {
			t.ep.resume = r
		}
	case status > 0 && status < 500:
		t.accepted.add(now)
		if !t.ep.start.IsZero() {
			t.ep.busiest = max(t.ep.busiest, t.accepted.lastSecond(now))
			if sent.After(t.ep.first) && len(t.ep.accepted) < maxEpisodeSamples {
				t.ep.accepted = append(t.ep.accepted, sent)
			}
		}
	}
	t.settle(now)
	return t.decreases > before, t.rate, t.quota
}

// settle closes an episode that has measured long enough (the
// multiplicative decrease), and applies the additive increase due since
// the last one.
func (t *throttle) settle(now time.Time) {
	if open := now.Sub(t.ep.start); !t.ep.start.IsZero() && open >= episodeWindow && (t.ep.last.Sub(t.ep.first) >= minSpan || open >= maxEpisode) {
		var measured float64
		if span := t.ep.last.Sub(t.ep.first); span >= minSpan {
			n := 0
			for _, at := range t.ep.accepted {
				if !at.After(t.ep.last) {
					n++
				}
			}
			measured = float64(n) / span.Seconds()
			// The span times the quota only if the host saw the requests
			// in about the order and at about the times they were sent. A
			// loaded client (a goroutine scheduled late, a connection
			// dialled, an answer read late: 230-650 ms on a 2-core machine
			// at 128 in flight per host) moves them by up to the spread of
			// the round trips; past a quarter of the span, the count
			// between the two refusals is no measure (it read 0-27/s of a
			// 60/s quota), only a guess.
			t.guessed = t.ep.rttMax-t.ep.rttMin > span/4
		} else {
			// Refusals too close together to time: what the host accepted
			// since the first is a lower bound of its quota (its bucket was
			// empty then).
			measured = float64(len(t.ep.accepted)) / now.Sub(t.ep.first).Seconds()
			t.guessed = true
		}
		if t.guessed {
			// A guess is never below half of what the host accepted in its
			// busiest second around the episode: a host refuses only once
			// its bucket is empty, so in the second before, it accepted at
			// least the lesser of its bucket's depth and its quota (and at
			// most their sum: half errs low when the bucket is no deeper
			// than a second of quota). This is counted by when the answers
			// came, which the client's delays shift but do not lose.
			measured = max(measured, float64(t.ep.busiest)/2)
		}
		t.quota = max(measured, minRate)
		if !t.guessed {
			t.measured, t.measuredAt = t.quota, now
		}
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
	// Probing past the plateau is for a host the pace holds back: one
	// sent less than most of its pace in the last second (idle, or held
	// by its own work) learns nothing from a higher pace, and one left
	// idle for a minute would otherwise come back far above its quota
	// (a project started at 50/s and idle 70 s came back at 127/s, and
	// its 8 requests in flight were refused by the dozen).
	held := float64(t.sent.lastSecond(now)) >= 0.8*t.rate
	for range min(steps, 600) {
		if t.rate < plateau*t.quota {
			t.rate = min(plateau*t.quota, t.rate+max(1, t.quota/10))
		} else if !held {
			break
		} else if t.guessed {
			// A guess is no ceiling: go on climbing, 2% of it a second,
			// until the next 429 measures the quota.
			t.rate += max(1, t.quota/50)
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
