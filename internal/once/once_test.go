package once

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoRunsOncePerKey(t *testing.T) {
	var g Group[string, int]
	var runs atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 16)
	rans := make([]bool, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, ran, err := g.Do(context.Background(), "k", func() (int, error) {
				runs.Add(1)
				<-release
				return 42, nil
			})
			if err != nil {
				t.Errorf("Do = %v, want no error", err)
			}
			results[i], rans[i] = v, ran
		}()
	}
	// Let every goroutine reach Do before the first call finishes.
	for g.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Errorf("f ran %d times, want 1", got)
	}
	nran := 0
	for i, v := range results {
		if v != 42 {
			t.Errorf("caller %d got %d, want 42", i, v)
		}
		if rans[i] {
			nran++
		}
	}
	if nran != 1 {
		t.Errorf("%d callers report ran, want 1", nran)
	}
	// A finished success is kept.
	if _, ran, _ := g.Do(context.Background(), "k", func() (int, error) { return 0, errors.New("must not run") }); ran {
		t.Error("Do ran f again after a success")
	}
	if v, ok := g.Value("k"); !ok || v != 42 {
		t.Errorf("Value(k) = %d, %v, want 42, true", v, ok)
	}
}

func TestDoForgetsFailures(t *testing.T) {
	var g Group[string, int]
	boom := errors.New("boom")
	if _, ran, err := g.Do(context.Background(), "k", func() (int, error) { return 0, boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("Do = ran %v, err %v, want ran, boom", ran, err)
	}
	if _, ok := g.Value("k"); ok {
		t.Error("Value after a failure reports a value")
	}
	v, ran, err := g.Do(context.Background(), "k", func() (int, error) { return 7, nil })
	if err != nil || !ran || v != 7 {
		t.Errorf("Do after a failure = %d, %v, %v, want 7, true, nil", v, ran, err)
	}
}

func TestWaiterHonoursContext(t *testing.T) {
	var g Group[string, int]
	release := make(chan struct{})
	started := make(chan struct{})
	go g.Do(context.Background(), "k", func() (int, error) { close(started); <-release; return 1, nil })
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := g.Do(ctx, "k", func() (int, error) { return 2, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Do = %v, want DeadlineExceeded", err)
	}
	close(release)
}

func TestPanicReleasesWaiters(t *testing.T) {
	var g Group[string, int]
	started := make(chan struct{})
	release := make(chan struct{})
	waited := make(chan error, 1)
	go func() {
		defer func() { _ = recover() }()
		g.Do(context.Background(), "k", func() (int, error) { close(started); <-release; panic("x") })
	}()
	<-started
	go func() {
		_, _, err := g.Do(context.Background(), "k", func() (int, error) { return 0, nil })
		waited <- err
	}()
	time.Sleep(10 * time.Millisecond)
	close(release)
	select {
	case err := <-waited:
		if err == nil {
			// The waiter may also have arrived after the panic and run f itself.
			return
		}
		if err != errPanicked {
			t.Errorf("waiter got %v, want errPanicked", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter still blocked 5 s after the panic")
	}
}

func TestForget(t *testing.T) {
	var g Group[int, string]
	g.Do(context.Background(), 1, func() (string, error) { return "a", nil })
	g.Forget(1)
	if v, ran, _ := g.Do(context.Background(), 1, func() (string, error) { return "b", nil }); !ran || v != "b" {
		t.Errorf("Do after Forget = %q, %v, want b, true", v, ran)
	}
}
