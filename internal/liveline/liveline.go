// Package liveline redraws one status line on a terminal while a long
// operation runs (sync, promote), and clears it when the operation ends.
// Off a terminal it prints nothing: callers print summary lines instead,
// and a heartbeat now and then (Every).
package liveline

import (
	"io"
	"strings"
	"sync"
	"time"
)

// redrawEvery is fast enough to look live, slow enough to cost nothing.
const redrawEvery = 200 * time.Millisecond

// Line is a status line being redrawn. Its zero value is not usable; Start
// returns one.
type Line struct {
	w    io.Writer
	live bool
	mu   sync.Mutex // serialises writes to w
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Start redraws status() on w every redrawEvery until Stop. When w is nil
// or live is false, it draws nothing.
func Start(w io.Writer, live bool, status func() string) *Line {
	l := &Line{w: w, live: live && w != nil, done: make(chan struct{})}
	if !l.live {
		return l
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(redrawEvery)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				l.write("\r\033[K")
				return
			case <-t.C:
				l.write("\r\033[K" + status())
			}
		}
	}()
	return l
}

func (l *Line) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, s)
}

// Println prints s as a line of its own: above the status line while it is
// drawn (the next redraw puts the status back below it), else as a plain
// line on w. Safe to call from any goroutine.
func (l *Line) Println(s string) {
	if l.w == nil {
		return
	}
	if l.live {
		s = "\r\033[K" + s
	}
	l.write(s + "\n")
}

// Stop clears the line and returns once nothing more will be drawn. It may
// be called more than once.
func (l *Line) Stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

// Every calls tick every interval until Stop: the live line's twin off a
// terminal, where a CI log gets a heartbeat line now and then instead of
// a line redrawn in place. interval <= 0 calls nothing.
func Every(interval time.Duration, tick func()) *Line {
	l := &Line{done: make(chan struct{})}
	if interval <= 0 {
		return l
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				tick()
			}
		}
	}()
	return l
}

// Bar renders done of all as a bar of width characters: [=====     ].
func Bar(done, all int64, width int) string {
	filled := 0
	if all > 0 {
		filled = int(int64(width) * min(done, all) / all)
	}
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "]"
}
