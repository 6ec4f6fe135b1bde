package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cipdev/cip/internal/human"
	"github.com/cipdev/cip/internal/liveline"
	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// DefaultHeartbeat is how often a long sync or promote logs its progress
// when stderr is not a terminal: well within the no-output timeouts of CI
// systems that have one (Travis CI stops a job after 10 minutes of
// silence), often enough that a person reading the log sees it move, and
// rare enough to be 120 lines in an hour's log.
const DefaultHeartbeat = 30 * time.Second

// Log formats (--log-format).
const (
	logText = "text"
	logJSON = "json"
)

// progress is what a command shows on stderr while a library works and
// when it is done: nothing but warnings with --quiet; summary lines
// otherwise; while it works, a live status line when stderr is a terminal,
// and otherwise (CI logs) a line per finished image and a heartbeat line
// every interval. With --log-format json every line is a JSON record
// (log/slog), with the same facts as attributes.
type progress struct {
	w     io.Writer    // nil: --quiet
	errw  io.Writer    // warnings, --quiet or not
	live  bool         // stderr is a terminal
	log   *slog.Logger // --log-format json; nil: text lines
	every time.Duration
	st    *runState // what --metrics-file reports
	notes *notes    // the registry transport's retries, for the live line
}

func newProgress(c *cli.Context) progress {
	w, live := progressWriter(c)
	p := progress{w: w, errw: c.App.ErrWriter, live: live, every: c.Duration("heartbeat"), st: state(c),
		notes: &notes{w: c.App.ErrWriter, live: live, now: time.Now}}
	if c.String("log-format") == logJSON {
		p.log = slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
	}
	return p
}

// warningsOnly shows no progress, only warnings (a server's runs).
func warningsOnly(c *cli.Context) progress { return progress{errw: c.App.ErrWriter} }

// info prints a progress line: text as it is, or a JSON record msg with
// attrs. Nothing with --quiet.
func (p progress) info(msg, text string, attrs ...slog.Attr) {
	if p.w == nil {
		return
	}
	if p.log != nil {
		p.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
		return
	}
	fmt.Fprintln(p.w, text)
}

// warn prints a warning, with --quiet too.
func (p progress) warn(msg, text string, attrs ...slog.Attr) {
	if p.log != nil {
		p.log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
		return
	}
	fmt.Fprintln(p.errw, "warning: "+text)
}

// ci reports whether progress goes to a log rather than a terminal: one
// line per finished image, and heartbeats.
func (p progress) ci() bool { return p.w != nil && !p.live }

// sync follows a crawl: a live status line, or heartbeats; nil for none.
func (p progress) sync() cipsync.Progress {
	if p.w == nil || (!p.live && p.every <= 0) {
		return nil
	}
	return &liveStatus[cipsync.Status]{p: p, render: func(s cipsync.Status) string {
		return fmt.Sprintf("sync %s %d/%d repositories, %d tags, %d manifests fetched",
			liveline.Bar(s.Done, s.Repositories, 30), s.Done, s.Repositories, s.Tags, s.Fetched)
	}, beat: func(s cipsync.Status, elapsed time.Duration) (string, []slog.Attr) {
		return fmt.Sprintf("sync: %d/%d repositories, %d tags, %d manifests fetched, %s elapsed",
				s.Done, s.Repositories, s.Tags, s.Fetched, elapsed.Round(time.Second)),
			[]slog.Attr{slog.String("phase", "sync"), slog.Int64("repositories_done", s.Done), slog.Int64("repositories", s.Repositories),
				slog.Int64("tags", s.Tags), slog.Int64("manifests_fetched", s.Fetched), slog.Duration("elapsed", elapsed)}
	}}
}

// promote follows copies: a live status line, or heartbeats; nil for none.
func (p progress) promote() promote.Progress {
	if p.w == nil || (!p.live && p.every <= 0) {
		return nil
	}
	return &liveStatus[promote.Status]{p: p, render: promoteLine, beat: func(s promote.Status, elapsed time.Duration) (string, []slog.Attr) {
		attrs := []slog.Attr{slog.Int64("images_done", s.Done), slog.Int64("images", s.Rows), slog.Int("destinations", s.Destinations),
			slog.Int64("bytes_sent", s.BytesSent), slog.Int64("blobs_mounted", s.BlobsMounted), slog.Duration("elapsed", elapsed)}
		if s.Verifying {
			return fmt.Sprintf("promote: verifying %d/%d references, %s elapsed", s.Verified, s.ToVerify, elapsed.Round(time.Second)),
				append([]slog.Attr{slog.String("phase", "verify"), slog.Int64("verified", s.Verified), slog.Int64("to_verify", s.ToVerify)}, attrs...)
		}
		return fmt.Sprintf("promote: %d/%d images to %d destinations, %s sent, %d blobs mounted, %s elapsed",
			s.Done, s.Rows, s.Destinations, human.Bytes(s.BytesSent), s.BlobsMounted, elapsed.Round(time.Second)), append([]slog.Attr{slog.String("phase", "copy")}, attrs...)
	}}
}

// promoteLine is promote's live status line: copying (what was sent and
// what was mounted, so that a run that mounts everything does not look
// stuck at "0 B sent"), then verifying.
func promoteLine(s promote.Status) string {
	if s.Verifying {
		return fmt.Sprintf("verify  %s %d/%d references written, checked with a live HEAD",
			liveline.Bar(s.Verified, s.ToVerify, 30), s.Verified, s.ToVerify)
	}
	return fmt.Sprintf("promote %s %d/%d images to %d destinations, %s sent, %d blobs mounted",
		liveline.Bar(s.Done, s.Rows, 30), s.Done, s.Rows, s.Destinations, human.Bytes(s.BytesSent), s.BlobsMounted)
}

// image logs one finished copy or tag row, in CI logs (a terminal has the
// live line instead).
func (p progress) image(r promote.ImageRecord) {
	if !p.ci() {
		return
	}
	attrs := []slog.Attr{slog.String("destination", r.Destination), slog.String("image", r.Image), slog.String("digest", r.Digest),
		slog.Any("tags", r.Tags), slog.Int64("bytes_sent", r.BytesSent), slog.Int64("bytes_mounted", r.BytesMounted),
		slog.Duration("duration", seconds(r.DurationSeconds))}
	took := seconds(r.DurationSeconds)
	switch {
	case r.Error != "":
		if p.log != nil {
			p.log.LogAttrs(context.Background(), slog.LevelError, "failed", append(attrs, slog.String("error", r.Error))...)
			return
		}
		fmt.Fprintf(p.w, "failed %s: %s\n", r.Ref(), r.Error)
	case r.Action == "copy":
		tags := "no tag"
		if len(r.Tags) > 0 {
			tags = "tags " + strings.Join(r.Tags, ", ")
		}
		p.info("copied", fmt.Sprintf("copied %s (%s): %s sent, %s mounted in %s", r.Ref(), tags,
			human.Bytes(r.BytesSent), human.Bytes(r.BytesMounted), took), attrs...)
	default:
		p.info("tagged", fmt.Sprintf("tagged %s: %s in %s", r.Ref(), strings.Join(r.Tags, ", "), took), attrs...)
	}
}

// synced prints one line per registry a sync crawled, and its requests
// (and keeps the results for --metrics-file).
func (p progress) synced(results ...*cipsync.Result) {
	if p.st != nil {
		p.st.addSyncs(results...)
	}
	for _, res := range results {
		if res == nil {
			continue
		}
		// What the crawl skipped (names, tags, manifests cip cannot
		// trust), with --quiet too.
		for _, w := range res.Warnings {
			p.warn("skipped", w, slog.String("warning", w))
		}
		for _, st := range res.Registries {
			p.info("synced", fmt.Sprintf("synced %s: %d repositories, %d tags, %d manifests fetched, %d tag changes, %d repositories removed",
				st.Registry, st.Repositories, st.Tags, st.ManifestsFetched, st.TagChanges, st.Removed),
				slog.String("registry", st.Registry), slog.Int("repositories", st.Repositories), slog.Int("tags", st.Tags),
				slog.Int("manifests_fetched", st.ManifestsFetched), slog.Int("tag_changes", st.TagChanges), slog.Int("repositories_removed", st.Removed))
		}
		d := res.Duration.Round(time.Millisecond)
		p.info("sync", fmt.Sprintf("sync: %d requests in %s", res.Requests, d), slog.Int64("requests", res.Requests), slog.Duration("duration", d))
	}
}

// referrersFound warns about the referrers a look-up left out (their
// manifests cannot be verified), with --quiet too.
func (p progress) referrersFound(found ...*cipsync.ReferrersFound) {
	for _, f := range found {
		if f == nil {
			continue
		}
		for _, w := range f.Warnings {
			p.warn("skipped", w, slog.String("warning", w))
		}
	}
}

// promoted prints one line per destination a promotion wrote to, and its
// totals and verification.
func (p progress) promoted(rep *promote.Report) {
	if rep == nil {
		return
	}
	for _, w := range rep.Warnings {
		p.warn("repaired", w, slog.String("warning", w))
	}
	for _, d := range rep.Destinations {
		p.info("promoted", fmt.Sprintf("promoted %s: %d copied, %d tagged, %s%d skipped, %d lost, %s sent, %s mounted, %d requests in %s",
			d.Destination, d.Copied, d.Tagged, referred(d.Referred), d.Skipped, d.Lost, human.Bytes(d.BytesSent), human.Bytes(d.BytesMounted), d.Requests,
			seconds(d.DurationSeconds)),
			slog.String("destination", d.Destination), slog.Int("copied", d.Copied), slog.Int("tagged", d.Tagged),
			slog.Int("referred", d.Referred), slog.Int("skipped", d.Skipped),
			slog.Int("lost", d.Lost), slog.Int64("bytes_sent", d.BytesSent), slog.Int64("bytes_mounted", d.BytesMounted),
			slog.Int64("requests", d.Requests), slog.Duration("duration", seconds(d.DurationSeconds)), slog.Int("errors", len(d.Errors)))
	}
	t := rep.Totals
	p.info("promote", fmt.Sprintf("promote: %d copied, %d tagged, %s%d requests in %s, %d references verified",
		t.Copied, t.Tagged, referred(t.Referred), t.Requests, seconds(rep.DurationSeconds), rep.Verified),
		slog.Int("copied", t.Copied), slog.Int("tagged", t.Tagged), slog.Int("referred", t.Referred), slog.Int64("requests", t.Requests),
		slog.Int64("http_requests", rep.HTTPRequests), slog.Duration("duration", seconds(rep.DurationSeconds)),
		slog.Int("verified", rep.Verified), slog.Int("mismatches", len(rep.Mismatches)))
}

// referred names the referrers a promotion copied, in its summary lines:
// nothing when it copied none, so that a promotion without signatures
// reads as it always did.
func referred(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d referred, ", n)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// liveStatus draws a library's status as the live line while it works on
// a terminal, or logs it every p.every off one (a heartbeat).
type liveStatus[S any] struct {
	p      progress
	render func(S) string                               // the live line
	beat   func(S, time.Duration) (string, []slog.Attr) // a heartbeat: text, JSON attributes
	line   *liveline.Line
}

func (l *liveStatus[S]) Start(status func() S) {
	if l.p.live {
		l.line = liveline.Start(l.p.w, true, func() string { return l.render(status()) + l.p.notes.suffix() })
		l.p.notes.setLine(l.line)
		return
	}
	start := time.Now()
	l.line = liveline.Every(l.p.every, func() {
		elapsed := time.Since(start)
		text, attrs := l.beat(status(), elapsed)
		l.p.info("progress", text, attrs...)
	})
}

func (l *liveStatus[S]) Stop() {
	if l.line != nil {
		l.p.notes.setLine(nil)
		l.line.Stop()
		l.line = nil
	}
}

// notes carries what the registry transport reports while it works to the
// live line: the latest retry rides on it while it waits ("retrying HOST
// in 3s (429)"), so that a run waiting out a 429 never looks frozen, and
// the transport's log records are printed above the line rather than
// through it. Off a terminal the transport's log lines are the record:
// each retry with its reason and wait, each host given up. A nil *notes
// draws nothing and writes the log to stderr.
type notes struct {
	w    io.Writer // stderr
	live bool
	now  func() time.Time

	mu    sync.Mutex
	line  *liveline.Line // the live line being drawn, if any
	retry string         // the latest retry's reason, shown until `until`
	host  string
	until time.Time
}

// event is the Transport's Events callback.
func (n *notes) event(e registry.Event) {
	if n == nil || !n.live || e.GaveUp != nil {
		return
	}
	n.mu.Lock()
	n.host, n.retry, n.until = e.Host, e.Reason, n.now().Add(e.Wait)
	n.mu.Unlock()
}

// Write is the transport logger's output: above the live line while one
// is drawn, else stderr. (slog handlers write one record per call.)
func (n *notes) Write(p []byte) (int, error) {
	n.mu.Lock()
	line := n.line
	n.mu.Unlock()
	if line == nil {
		return n.w.Write(p)
	}
	line.Println(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// suffix is what the live line shows of the latest retry while it waits.
func (n *notes) suffix() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	left := n.until.Sub(n.now())
	if n.retry == "" || left <= 0 {
		return ""
	}
	return fmt.Sprintf(" · retrying %s in %s (%s)", n.host, roundWait(left), n.retry)
}

func (n *notes) setLine(l *liveline.Line) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.line = l
	n.mu.Unlock()
}

// roundWait rounds a wait for people: tenths of a second under 10 s,
// seconds above.
func roundWait(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return max(d.Round(100*time.Millisecond), 100*time.Millisecond)
	}
	return d.Round(time.Second)
}

// syncWriter serialises writes to stderr, which the copying goroutines,
// the heartbeat, the live line and the registry transport's log share.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// terminal reports whether w (maybe behind a syncWriter) is a terminal.
func terminal(w io.Writer) bool {
	if s, ok := w.(*syncWriter); ok {
		w = s.w
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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
