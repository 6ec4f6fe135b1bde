package sync

import (
	"fmt"
	"io"
	gosync "sync"
	"time"
)

// progress redraws one status line on a terminal while a sync runs.
type progress struct {
	w    io.Writer
	s    *syncer
	done chan struct{}
	once gosync.Once
	wg   gosync.WaitGroup
}

// redrawEvery is fast enough to look live, slow enough to cost nothing.
const redrawEvery = 200 * time.Millisecond

func newProgress(w io.Writer, live bool, s *syncer) *progress {
	p := &progress{w: w, s: s, done: make(chan struct{})}
	if w == nil || !live {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(redrawEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	all := p.s.reposAll.Load()
	done := p.s.reposDone.Load()
	width := 30
	filled := 0
	if all > 0 {
		filled = int(int64(width) * done / all)
	}
	bar := make([]byte, width)
	for i := range bar {
		if i < filled {
			bar[i] = '='
		} else {
			bar[i] = ' '
		}
	}
	fmt.Fprintf(p.w, "\r\033[Ksync [%s] %d/%d repositories, %d tags, %d manifests fetched", bar, done, all, p.s.tagsSeen.Load(), p.s.gets.Load())
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
