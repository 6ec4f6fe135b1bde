package promote

import (
	"fmt"
	"io"
	gosync "sync"
	"time"
)

// progress redraws one status line per run on a terminal while copies
// run: per destination, rows done of rows to do and bytes sent.
type progress struct {
	w     io.Writer
	names []string
	dests map[string]*destStats
	done  chan struct{}
	once  gosync.Once
	wg    gosync.WaitGroup
}

// redrawEvery is fast enough to look live, slow enough to cost nothing.
const redrawEvery = 200 * time.Millisecond

func newProgress(w io.Writer, live bool, names []string, dests map[string]*destStats) *progress {
	p := &progress{w: w, names: names, dests: dests, done: make(chan struct{})}
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
	var all, done, sent int64
	for _, n := range p.names {
		st := p.dests[n]
		all += st.rowsAll.Load()
		done += st.rowsDone.Load()
		sent += st.bytesSent.Load()
	}
	const width = 30
	filled := 0
	if all > 0 {
		filled = int(width * done / all)
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\r\033[Kpromote [%s] %d/%d images to %d destinations, %s sent", bar, done, all, len(p.names), formatBytes(sent))
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
