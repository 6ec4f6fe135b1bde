package registry

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThrottleWaiters measures the CPU a paced host's waiting requests
// cost per turn (the whole process's user+system time, so the runtime's
// timer wake-ups count): jobs requests wait at once, the pace lets 500 a
// second go. With every waiter sleeping until the next turn: 88 µs a turn
// at 8 waiting, 170 µs at 64; with one head waiter: 73 and 76 µs.
func BenchmarkThrottleWaiters(b *testing.B) {
	for _, jobs := range []int{8, 64} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			th := newThrottle(jobs, 500, time.Now, sleepCtx)
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			left := b.N
			c0 := cpuTime()
			b.ResetTimer()
			for g := 0; g < jobs; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						mu.Lock()
						if left == 0 {
							mu.Unlock()
							return
						}
						left--
						mu.Unlock()
						if _, err := th.acquire(ctx); err != nil {
							b.Error(err)
							return
						}
						th.release()
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e3, "cpu-µs/turn")
		})
	}
}
