package app

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cipdev/cip/internal/human"
	"github.com/cipdev/cip/internal/liveline"
	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/promote"
	cipsync "github.com/cipdev/cip/sync"
)

// progress is what a command shows on stderr while a library works and
// when it is done: nothing with --quiet; summary lines otherwise; and a
// live status line while it works when stderr is a terminal.
type progress struct {
	w    io.Writer // nil: --quiet
	live bool
}

func newProgress(c *cli.Context) progress {
	w, live := progressWriter(c)
	return progress{w: w, live: live}
}

// sync follows a crawl with a live status line, or is nil.
func (p progress) sync() cipsync.Progress {
	if p.w == nil || !p.live {
		return nil
	}
	return &liveStatus[cipsync.Status]{w: p.w, render: func(s cipsync.Status) string {
		return fmt.Sprintf("sync %s %d/%d repositories, %d tags, %d manifests fetched",
			liveline.Bar(s.Done, s.Repositories, 30), s.Done, s.Repositories, s.Tags, s.Fetched)
	}}
}

// promote follows copies with a live status line, or is nil.
func (p progress) promote() promote.Progress {
	if p.w == nil || !p.live {
		return nil
	}
	return &liveStatus[promote.Status]{w: p.w, render: func(s promote.Status) string {
		return fmt.Sprintf("promote %s %d/%d images to %d destinations, %s sent",
			liveline.Bar(s.Done, s.Rows, 30), s.Done, s.Rows, s.Destinations, human.Bytes(s.BytesSent))
	}}
}

// synced prints one line per registry a sync crawled, and its requests.
func (p progress) synced(results ...*cipsync.Result) {
	if p.w == nil {
		return
	}
	for _, res := range results {
		if res == nil {
			continue
		}
		for _, st := range res.Registries {
			fmt.Fprintf(p.w, "synced %s: %d repositories, %d tags, %d manifests fetched, %d tag changes, %d repositories removed\n",
				st.Registry, st.Repositories, st.Tags, st.ManifestsFetched, st.TagChanges, st.Removed)
		}
		fmt.Fprintf(p.w, "sync: %d requests in %s\n", res.Requests, res.Duration.Round(time.Millisecond))
	}
}

// promoted prints one line per destination a promotion wrote to, and its
// requests and verification.
func (p progress) promoted(rep *promote.Report) {
	if p.w == nil || rep == nil {
		return
	}
	for _, d := range rep.Destinations {
		fmt.Fprintf(p.w, "promoted %s: %d copied, %d tagged, %d skipped, %d lost, %s sent, %s mounted, %d requests in %s\n",
			d.Destination, d.Copied, d.Tagged, d.Skipped, d.Lost, human.Bytes(d.BytesSent), human.Bytes(d.BytesMounted), d.Requests,
			seconds(d.DurationSeconds))
	}
	fmt.Fprintf(p.w, "promote: %d requests in %s, %d references verified\n", rep.Requests, seconds(rep.DurationSeconds), rep.Verified)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// liveStatus draws a library's status as the live line while it works.
type liveStatus[S any] struct {
	w      io.Writer
	render func(S) string
	line   *liveline.Line
}

func (l *liveStatus[S]) Start(status func() S) {
	l.line = liveline.Start(l.w, true, func() string { return l.render(status()) })
}

func (l *liveStatus[S]) Stop() {
	if l.line != nil {
		l.line.Stop()
		l.line = nil
	}
}

// tableWidth is the width tables are fitted to: 0 (no limit) with -o wide;
// else $COLUMNS when it is a positive number; else the terminal's width
// when stdout is one; else 0, so that a script reading a pipe gets every
// cell in full.
func tableWidth(c *cli.Context, wide bool) int {
	if wide {
		return 0
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := c.App.Writer.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 0
}

// writeTable prints a table in cip's one style, fitted to width (0: in
// full).
func writeTable(w io.Writer, cols []table.Column, rows [][]string, width int) error {
	return table.Write(w, cols, rows, width)
}
