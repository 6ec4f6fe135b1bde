// Package memprof writes a heap profile of a run near its peak: the heap is
// read every poll, and each time it has grown a tenth past the last profile
// written, the profile is written again (over the same file). A profile
// written at exit shows what is left, not what the run needed at its
// worst; this one shows what was live at the last garbage collection
// before the largest heap seen.
package memprof

import (
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// maxWrites bounds the profiles written in one run: growing a tenth each
// time, 200 writes cover a heap from 1 MiB to far past any machine's memory.
const maxWrites = 200

// Start samples the heap every poll and writes path as it grows. The
// returned stop ends the sampling and writes path once more if the heap
// grew since; it returns the first error writing path met.
func Start(path string, poll time.Duration) (stop func() error) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		mu      sync.Mutex
		written uint64
		writes  int
		werr    error
	)
	heap := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		h := heap()
		if writes >= maxWrites || h <= written+written/10 {
			return
		}
		written = h
		writes++
		if err := write(path); err != nil && werr == nil {
			werr = err
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				check()
			}
		}
	}()
	return func() error {
		close(done)
		<-finished
		check()
		mu.Lock()
		defer mu.Unlock()
		return werr
	}
}

func write(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".memprof-*")
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
