package registry

import (
	"container/heap"
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

var epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// quotaServer is a registry's quota: a token bucket of depth burst filled
// at qps, as Artifact Registry's per-region quota behaves (and the WAN
// benchmark's simulator).
type quotaServer struct {
	qps, burst float64
	tokens     float64
	last       time.Time
}

func (s *quotaServer) take(now time.Time) bool {
	if s.last.IsZero() {
		s.tokens, s.last = s.burst, now
	}
	s.tokens = math.Min(s.burst, s.tokens+now.Sub(s.last).Seconds()*s.qps)
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

// simResult is what a simulated run saw.
type simResult struct {
	accepted, refused []time.Time // answer times
	starts            []time.Time
}

func (r simResult) count(ts []time.Time, from, to time.Duration) int {
	n := 0
	for _, t := range ts {
		if d := t.Sub(epoch); d >= from && d < to {
			n++
		}
	}
	return n
}

// simulate runs jobs workers (slots), each sending one request after
// another from an endless backlog through th for the given time, against srv with a fixed latency; the
// server decides when a request arrives and answers latency later. It is
// a discrete-event simulation on a fake clock: no goroutines, no waiting.
func simulate(th *throttle, clock *fakeClock, srv *quotaServer, jobs int, latency, length time.Duration) simResult {
	return simulateWorkers(th, clock, srv, jobs, latency, length, false)
}

// simulateWorkers is simulate; with waitOn429 a refused request's worker
// waits out Retry-After itself and nothing takes its place (a crawl whose
// every repository's request was refused at once: the offered load falls
// as the 429s come).
func simulateWorkers(th *throttle, clock *fakeClock, srv *quotaServer, jobs int, latency, length time.Duration, waitOn429 bool) simResult {
	return simulateClient(th, clock, srv, sim{jobs: jobs, latency: latency, length: length, waitOn429: waitOn429})
}

// sim describes a simulated client.
type sim struct {
	jobs            int
	latency, length time.Duration
	waitOn429       bool
	// lag, when set, is a loaded client's: each request reaches the
	// server up to lag after the throttle let it go (its goroutine
	// scheduled late, a connection dialled), and each answer is handled
	// up to lag after it came (the response read, the worker scheduled),
	// both uniformly at random. A 2-core machine running 23 hosts' 128
	// requests in flight lagged 230-650 ms (the WAN benchmark at --jobs
	// 128).
	lag time.Duration
}

// simulateClient runs the simulation s describes.
func simulateClient(th *throttle, clock *fakeClock, srv *quotaServer, s sim) simResult {
	var res simResult
	// Each request takes latency ± 25%, from a seeded generator: requests
	// in lockstep would measure the quota in steps of whole waves.
	rng := rand.New(rand.NewPCG(1, 2))
	lag := func() time.Duration {
		if s.lag <= 0 {
			return 0
		}
		return time.Duration(rng.Int64N(int64(s.lag) + 1))
	}
	q := &eventQueue{}
	for w := range s.jobs {
		heap.Push(q, event{at: epoch, worker: w, kind: evReady})
	}
	for q.Len() > 0 {
		e := heap.Pop(q).(event)
		if e.at.Sub(epoch) > s.length {
			break
		}
		clock.t = e.at
		switch e.kind {
		case evReady:
			d, start := th.take(false)
			if d > 0 {
				heap.Push(q, event{at: e.at.Add(d), worker: e.worker, kind: evReady})
				continue
			}
			e.sent = start
			res.starts = append(res.starts, e.sent)
			if s.lag > 0 {
				// The request reaches the server later.
				heap.Push(q, event{at: e.sent.Add(lag()), worker: e.worker, kind: evArrive, sent: e.sent})
				continue
			}
			heap.Push(q, arrive(srv, rng, e.sent, e.worker, e.sent, s.latency, 0))
		case evArrive:
			heap.Push(q, arrive(srv, rng, e.at, e.worker, e.sent, s.latency, lag()))
		case evAnswer:
			if e.ok {
				res.accepted = append(res.accepted, e.at)
				th.answered(e.sent, 200, 0)
				heap.Push(q, event{at: e.at, worker: e.worker, kind: evReady})
			} else {
				res.refused = append(res.refused, e.at)
				th.answered(e.sent, 429, time.Second)
				// The Transport frees the slot while the refused request
				// waits out Retry-After, and the next request of the
				// backlog takes it (or, waitOn429, nothing does).
				next := e.at
				if s.waitOn429 {
					next = next.Add(time.Second)
				}
				heap.Push(q, event{at: next, worker: e.worker, kind: evReady})
			}
		}
	}
	return res
}

// arrive is a request sent at sent reaching srv at at: the server takes a
// token or refuses, and the client handles its answer latency ± 25% and
// lag later.
func arrive(srv *quotaServer, rng *rand.Rand, at time.Time, worker int, sent time.Time, latency, lag time.Duration) event {
	ok := srv.take(at)
	took := latency*3/4 + time.Duration(rng.Int64N(int64(latency)/2+1))
	return event{at: at.Add(took + lag), worker: worker, kind: evAnswer, sent: sent, ok: ok}
}

const (
	evReady = iota
	evArrive
	evAnswer
)

type event struct {
	at     time.Time
	worker int
	kind   int
	sent   time.Time
	ok     bool
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].kind > q[j].kind // answers before new sends at one instant
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func newTestThrottle(clock *fakeClock, jobs int, ceiling float64) *throttle {
	return newThrottle(jobs, ceiling, clock.now, func(context.Context, time.Duration) error { return nil })
}

// The adaptive pace finds a 60/s quota within the first second and keeps
// under it afterwards, at nearly the quota, whatever the requests in
// flight (8 to 128 offer 200 to 3,200 requests/s at 40 ms each).
func TestThrottleFindsQuota(t *testing.T) {
	for _, jobs := range []int{8, 32, 128} {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, jobs, 0)
		srv := &quotaServer{qps: 60, burst: 60}
		res := simulate(th, clock, srv, jobs, 40*time.Millisecond, 60*time.Second)
		if n := res.count(res.refused, 0, time.Second); n == 0 {
			t.Errorf("jobs %d: no 429 in the first second; the test offers more than the quota and should see some", jobs)
		}
		if n := res.count(res.refused, 1100*time.Millisecond, 60*time.Second); n > 0 {
			t.Errorf("jobs %d: %d answers 429 after the first second, want none", jobs, n)
		}
		// After the recovery (a few seconds), nearly the quota.
		got := float64(res.count(res.accepted, 10*time.Second, 60*time.Second)) / 50
		if got < 0.8*60 || got > 60.5 {
			t.Errorf("jobs %d: %.1f requests/s accepted from 10 s to 60 s, want 48-60 (the quota is 60)", jobs, got)
		}
		rate, quota, cuts := th.pace()
		if cuts != 1 || quota < 50 || quota > 75 {
			t.Errorf("jobs %d: pace %.1f, quota measured %.1f after %d cuts, want one cut and a quota near 60", jobs, rate, quota, cuts)
		}
	}
}

// When the refused requests' workers wait out Retry-After themselves, the
// load offered falls right after one burst of refusals, too short to time:
// the pace starts from a low guess, probes past it, and one more short
// episode measures the quota.
func TestThrottleFindsQuotaWhenLoadFalls(t *testing.T) {
	for _, jobs := range []int{8, 32, 128} {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, jobs, 0)
		srv := &quotaServer{qps: 60, burst: 60}
		res := simulateWorkers(th, clock, srv, jobs, 40*time.Millisecond, 60*time.Second, true)
		_, quota, cuts := th.pace()
		late := res.count(res.refused, 1100*time.Millisecond, 60*time.Second)
		got := float64(res.count(res.accepted, 10*time.Second, 60*time.Second)) / 50
		if quota < 50 || quota > 66 || cuts > 2 || late > 10 || got < 0.75*60 {
			t.Errorf("jobs %d: quota measured %.1f after %d cuts, %d answers 429 after the first second, %.1f/s accepted from 10 s; want 50-66, at most 2 cuts and 10 late 429s, at least 45/s",
				jobs, quota, cuts, late, got)
		}
	}
}

// A loaded client: requests reach the host up to 100-400 ms after the
// throttle let them go, and their answers are handled as late (the WAN
// benchmark at --jobs 128 on 2 cores: 23 hosts' 128 requests in flight).
// The host then sees the requests in another order than they were sent,
// and the requests accepted between two refused ones no longer time the
// quota: they read 14-38 requests/s of a 60/s quota, which the pace then
// kept (14-36/s accepted). The guess stands on what the host accepted in
// its busiest second instead, and the pace goes on probing past it.
func TestThrottleFindsQuotaLaggingClient(t *testing.T) {
	for _, lag := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond} {
		for _, jobs := range []int{32, 128} {
			for _, waitOn429 := range []bool{false, true} {
				clock := &fakeClock{t: epoch}
				th := newTestThrottle(clock, jobs, 0)
				srv := &quotaServer{qps: 60, burst: 60}
				res := simulateClient(th, clock, srv, sim{jobs: jobs, latency: 40 * time.Millisecond, length: 60 * time.Second, waitOn429: waitOn429, lag: lag})
				_, quota, cuts := th.pace()
				late := res.count(res.refused, 1100*time.Millisecond, 60*time.Second)
				got := float64(res.count(res.accepted, 10*time.Second, 60*time.Second)) / 50
				if quota < 30 || quota > 66 || cuts > 3 || late > 20 || got < 0.75*60 {
					t.Errorf("lag %v, jobs %d, waitOn429 %v: quota measured %.1f after %d cuts, %d answers 429 after the first second, %.1f/s accepted from 10 s; want 30-66, at most 3 cuts and 20 late 429s, at least 45/s",
						lag, jobs, waitOn429, quota, cuts, late, got)
				}
			}
		}
	}
	// At 128 in flight the first cut, within the first seconds, guesses
	// at least half the quota.
	for _, lag := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond} {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, 128, 0)
		srv := &quotaServer{qps: 60, burst: 60}
		simulateClient(th, clock, srv, sim{jobs: 128, latency: 40 * time.Millisecond, length: 2 * time.Second, lag: lag})
		if _, quota, cuts := th.pace(); cuts != 1 || quota < 30 {
			t.Errorf("lag %v, jobs 128: quota %.1f after %d cuts in the first 2 s, want one cut and at least 30 (half the quota)", lag, quota, cuts)
		}
	}
}

// A quota that is not the bucket's depth: a shallow bucket (5) of 20/s.
func TestThrottleShallowBucket(t *testing.T) {
	clock := &fakeClock{t: epoch}
	th := newTestThrottle(clock, 8, 0)
	srv := &quotaServer{qps: 20, burst: 5}
	res := simulate(th, clock, srv, 8, 40*time.Millisecond, 60*time.Second)
	late := res.count(res.refused, 5*time.Second, 60*time.Second)
	got := float64(res.count(res.accepted, 20*time.Second, 60*time.Second)) / 40
	if late > 10 || got < 0.75*20 || got > 20.5 {
		t.Errorf("%d answers 429 after 5 s and %.1f requests/s accepted from 20 s, want few and 15-20", late, got)
	}
}

// With a ceiling under the quota nothing is refused and the ceiling holds.
func TestThrottleCeiling(t *testing.T) {
	clock := &fakeClock{t: epoch}
	th := newTestThrottle(clock, 8, 30)
	srv := &quotaServer{qps: 60, burst: 60}
	res := simulate(th, clock, srv, 8, 40*time.Millisecond, 20*time.Second)
	if len(res.refused) > 0 {
		t.Errorf("%d answers 429 under a ceiling of half the quota, want none", len(res.refused))
	}
	for s := time.Duration(0); s < 20*time.Second; s += time.Second {
		// The tolerance lets 3 more start in the first second.
		if n := res.count(res.starts, s, s+time.Second); n > 34 {
			t.Errorf("%d requests started in second %v, want at most 30 (+ the tolerance)", n, s)
		}
	}
}

// The steps of one episode: a 429 opens it, the requests accepted between
// the first and the last refused ones measure the quota, the pace halves
// from the lower of pace and quota, the host waits out Retry-After, answers
// to requests sent before the cut are not counted, and the pace climbs
// back a tenth of the quota a second.
func TestThrottleEpisode(t *testing.T) {
	clock := &fakeClock{t: epoch}
	th := newTestThrottle(clock, 8, 100)
	sent := clock.t
	clock.t = clock.t.Add(10 * time.Millisecond)
	th.answered(sent, 429, 2*time.Second)
	// Refused requests sent at 0 and 200 ms; 8 accepted sent between them
	// (40/s), one sent before the first (the bucket was not empty yet: not
	// counted) and one after the last (not timed: not counted).
	th.answered(sent.Add(-time.Millisecond), 200, 0)
	for i := range 8 {
		clock.t = clock.t.Add(20 * time.Millisecond)
		th.answered(sent.Add(time.Duration(i+1)*20*time.Millisecond), 200, 0)
	}
	// Their answers come after they were sent: round trips of 10-20 ms,
	// spread far less than the span (the host saw them in order).
	clock.t = epoch.Add(220 * time.Millisecond)
	th.answered(sent.Add(200*time.Millisecond), 429, time.Second)
	th.answered(sent.Add(210*time.Millisecond), 200, 0)
	clock.t = epoch.Add(260 * time.Millisecond)
	rate, quota, cuts := th.pace()
	if cuts != 1 || math.Abs(quota-40) > 0.01 || math.Abs(rate-20) > 0.01 {
		t.Fatalf("after the episode: pace %.2f, quota %.2f, %d cuts; want 20 (half of min(100, 40)), 40, 1", rate, quota, cuts)
	}
	// Retry-After 2 s from the 429 at 10 ms: no turn before 2.01 s.
	if d, _ := th.take(false); d != 2010*time.Millisecond-260*time.Millisecond {
		t.Errorf("a request at 260 ms waits %v for its turn, want %v (Retry-After)", d, 2010*time.Millisecond-260*time.Millisecond)
	}
	// A late 429 to a request sent before the cut opens no episode.
	th.answered(sent, 429, time.Second)
	clock.t = clock.t.Add(time.Second)
	th.answered(sent, 200, 0)
	if _, _, cuts := th.pace(); cuts != 1 {
		t.Errorf("a stale 429 cut the pace again (%d cuts)", cuts)
	}
	// Recovery: +4/s (a tenth of 40) per second, up to 36 (90%), then slowly.
	clock.t = epoch.Add(260*time.Millisecond + 3*time.Second)
	if rate, _, _ := th.pace(); math.Abs(rate-32) > 0.01 {
		t.Errorf("pace 3 s after the cut = %.2f, want 32", rate)
	}
	clock.t = clock.t.Add(10 * time.Second)
	if rate, _, _ := th.pace(); rate < 36 || rate > 36.6 {
		t.Errorf("pace 13 s after the cut = %.2f, want 36 and a little (90%% of the quota, then 1%% per 10 s)", rate)
	}
	// The ceiling caps the recovery however long it goes on.
	clock.t = clock.t.Add(10 * time.Hour)
	if rate, _, _ := th.pace(); rate > 100 {
		t.Errorf("pace after 10 h = %.2f, above the ceiling 100", rate)
	}
}

// Refusals too close together to time: after a second of no more, half of
// what the host accepted in the second before stands in for the quota.
func TestThrottleEpisodeOneBurst(t *testing.T) {
	clock := &fakeClock{t: epoch}
	th := newTestThrottle(clock, 8, 0)
	for i := range 30 {
		clock.t = epoch.Add(time.Duration(i) * 10 * time.Millisecond)
		th.answered(clock.t, 200, 0) // 30 accepted in 300 ms
	}
	burst := clock.t
	for range 5 {
		th.answered(burst, 429, time.Second)
	}
	clock.t = burst.Add(300 * time.Millisecond)
	if _, _, cuts := th.pace(); cuts != 0 {
		t.Errorf("cut %d times 300 ms after one burst, want none yet (the episode goes on measuring)", cuts)
	}
	clock.t = burst.Add(time.Second)
	rate, quota, cuts := th.pace()
	if cuts != 1 || quota != 15 || rate != 7.5 {
		t.Errorf("a second after one burst of 429s: pace %.1f, quota %.1f, %d cuts; want 7.5, 15 (half the 30 accepted in the second before), 1", rate, quota, cuts)
	}
}

// The slots bound requests in flight; a cancelled wait gives its slot back.
func TestThrottleSlots(t *testing.T) {
	th := newThrottle(2, 0, time.Now, sleepCtx)
	ctx := context.Background()
	for range 2 {
		if _, err := th.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := th.acquire(cctx); err == nil {
		t.Fatal("a third acquire with 2 slots taken succeeded")
	}
	th.release()
	if _, err := th.acquire(ctx); err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
}

// A host started at a guess of its quota (Google's hosts: 50/s per
// project) is never refused when its quota is above the guess (a 60/s
// quota: no 429 in a 12 s crawl, where an unpaced start is refused in its
// first second), finds a quota below the guess by one early episode, and
// climbs, slowly, towards a larger one.
func TestThrottleStartPace(t *testing.T) {
	t.Run("quota above the start", func(t *testing.T) {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, 8, 0)
		th.start(50)
		srv := &quotaServer{qps: 60, burst: 60}
		res := simulate(th, clock, srv, 8, 40*time.Millisecond, 12*time.Second)
		got := float64(res.count(res.accepted, 0, 12*time.Second)) / 12
		if len(res.refused) > 0 || got < 48 || got > 60.5 {
			t.Errorf("%d answers 429, %.1f requests/s accepted; want none and 48-60", len(res.refused), got)
		}
		clock = &fakeClock{t: epoch}
		unpaced := newTestThrottle(clock, 8, 0)
		res = simulate(unpaced, clock, &quotaServer{qps: 60, burst: 60}, 8, 40*time.Millisecond, 12*time.Second)
		if len(res.refused) == 0 {
			t.Error("an unpaced start was never refused: the test offers too little to tell")
		}
	})
	t.Run("quota below the start", func(t *testing.T) {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, 8, 0)
		th.start(50)
		srv := &quotaServer{qps: 30, burst: 30}
		res := simulate(th, clock, srv, 8, 40*time.Millisecond, 60*time.Second)
		_, quota, cuts := th.pace()
		if len(res.refused) == 0 || cuts < 1 || quota < 25 || quota > 36 {
			t.Errorf("%d answers 429, quota %.1f after %d cuts; want some, and a quota near 30", len(res.refused), quota, cuts)
		}
		if late := res.count(res.refused, 5*time.Second, 60*time.Second); late > 0 {
			t.Errorf("%d answers 429 after 5 s, want none once the quota is measured", late)
		}
	})
	t.Run("quota far above the start", func(t *testing.T) {
		clock := &fakeClock{t: epoch}
		th := newTestThrottle(clock, 32, 0)
		th.start(50)
		srv := &quotaServer{qps: 400, burst: 400}
		res := simulate(th, clock, srv, 32, 40*time.Millisecond, 100*time.Second)
		first := float64(res.count(res.accepted, 0, 10*time.Second)) / 10
		last := float64(res.count(res.accepted, 90*time.Second, 100*time.Second)) / 10
		if first > 62 || last < 120 {
			t.Errorf("%.1f requests/s accepted in the first 10 s and %.1f in the last; want the start (50-62) climbing past 120", first, last)
		}
	})
}

// A pace climbs past its plateau only while it holds the host back: a
// project started at 50/s and left idle for 70 s (its work not yet come)
// comes back at 50/s, not at the 127/s a climb by the clock would reach
// and its first burst would be refused at.
func TestThrottleIdleDoesNotClimb(t *testing.T) {
	clock := &fakeClock{t: epoch}
	th := newTestThrottle(clock, 8, 0)
	th.start(50)
	clock.t = clock.t.Add(70 * time.Second)
	if rate, _, _ := th.pace(); rate > 51 {
		t.Errorf("pace %.1f after 70 s idle, want 50 (no climb without load)", rate)
	}
}

// A run that starts from the quota an earlier run measured is not refused
// where one starting from the guess meets the quota once: under 60/s, a
// guess of 50/s climbs past it within 30 s of load; a remembered 60/s
// starts at 54/s and climbs 1% of it per 10 s, below the quota for 60 s.
// What the remembered run measures again (it is refused at last, after a
// longer run) is the quota, kept for the run after it.
func TestThrottleRememberedQuota(t *testing.T) {
	clock := &fakeClock{t: epoch}
	guess := newTestThrottle(clock, 8, 0)
	guess.start(50)
	res := simulate(guess, clock, &quotaServer{qps: 60, burst: 60}, 8, 40*time.Millisecond, 60*time.Second)
	if len(res.refused) == 0 {
		t.Fatal("the guess was never refused in 60 s: the test offers too little to tell")
	}
	q, at := guess.measuredQuota()
	if q < 54 || q > 66 || at.IsZero() {
		t.Fatalf("the guess's run measured %.1f at %v, want a quota near 60", q, at)
	}

	clock = &fakeClock{t: epoch}
	kept := newTestThrottle(clock, 8, 0)
	kept.remember(q)
	res = simulate(kept, clock, &quotaServer{qps: 60, burst: 60}, 8, 40*time.Millisecond, 60*time.Second)
	got := float64(res.count(res.accepted, 0, 60*time.Second)) / 60
	t.Logf("remembered %.1f: %.1f requests/s accepted in 60 s", q, got)
	if len(res.refused) > 0 || got < 50 {
		t.Errorf("remembered %.1f: %d answers 429 and %.1f requests/s accepted in 60 s; want none and 50 or more", q, len(res.refused), got)
	}
	if q2, _ := kept.measuredQuota(); q2 != 0 {
		t.Errorf("a run never refused measured %.1f, want nothing to keep", q2)
	}

	// A ceiling holds over a remembered quota.
	clock = &fakeClock{t: epoch}
	capped := newTestThrottle(clock, 8, 20)
	capped.remember(60)
	if rate, _, _ := capped.pace(); rate != 20 {
		t.Errorf("pace %.1f with a ceiling of 20 and 60 remembered, want 20", rate)
	}
}
