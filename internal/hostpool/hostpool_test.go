package hostpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A host whose work never finishes holds only its own workers: another
// host's work, queued after all of it, runs to the end.
func TestSlowHostDoesNotHoldOthers(t *testing.T) {
	p := New(2)
	release := make(chan struct{})
	var slowRunning atomic.Int64
	for range 10 {
		p.Go("slow", func() {
			slowRunning.Add(1)
			<-release
		})
	}
	var fast atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		p.Go("fast", func() { fast.Add(1); wg.Done() })
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("fast host ran %d of 50 while the slow host was stuck", fast.Load())
	}
	// The slow host's two workers were started by Go, but a worker may
	// not have begun its function yet when the fast host finishes: wait
	// (bounded) for both, then give a third the time to show up wrongly.
	deadline := time.Now().Add(10 * time.Second)
	for slowRunning.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := slowRunning.Load(); n != 2 {
		t.Errorf("%d of the slow host's functions running, want 2 (the limit)", n)
	}
	close(release)
	p.Wait()
	if n := slowRunning.Load(); n != 10 {
		t.Errorf("after Wait, %d of 10 slow functions ran", n)
	}
}

// The limit holds per host, and every host gets it: each function waits
// until its host has 3 running (the deadline only keeps a broken pool from
// hanging the test), so a fourth at once would be seen.
func TestLimitPerHost(t *testing.T) {
	p := New(3)
	var mu sync.Mutex
	full := sync.NewCond(&mu)
	expired := false
	timer := time.AfterFunc(time.Minute, func() {
		mu.Lock()
		expired = true
		full.Broadcast()
		mu.Unlock()
	})
	defer timer.Stop()
	now, most := map[string]int{}, map[string]int{}
	for i := range 60 {
		host := []string{"a", "b", "c"}[i%3]
		p.Go(host, func() {
			mu.Lock()
			defer mu.Unlock()
			now[host]++
			most[host] = max(most[host], now[host])
			full.Broadcast()
			for most[host] < 3 && !expired {
				full.Wait()
			}
			now[host]--
		})
	}
	p.Wait()
	for _, h := range []string{"a", "b", "c"} {
		if most[h] != 3 {
			t.Errorf("host %s: at most %d running, want 3", h, most[h])
		}
	}
}

// Bounded's Go waits while the host's queue is full, and only that host's.
func TestBoundedBlocksPerHost(t *testing.T) {
	p := Bounded(1, 2)
	release := make(chan struct{})
	p.Go("a", func() { <-release }) // running
	p.Go("a", func() {})            // queued 1
	p.Go("a", func() {})            // queued 2
	blocked := make(chan struct{})
	go func() {
		p.Go("a", func() {}) // waits for room
		close(blocked)
	}()
	otherDone := make(chan struct{})
	p.Go("b", func() { close(otherDone) })
	select {
	case <-otherDone:
	case <-time.After(5 * time.Second):
		t.Fatal("host b waited for host a's full queue")
	}
	select {
	case <-blocked:
		t.Fatal("Go returned with host a's queue full")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-blocked
	p.Wait()
}
