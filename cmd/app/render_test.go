package app

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/liveline"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// The libraries return results; these are the lines cip prints from them
// on stderr (e2e tests read them from the binary too).
func TestSummaryLines(t *testing.T) {
	var b bytes.Buffer
	p := progress{w: &b}
	p.synced(&cipsync.Result{
		Registries: []cipsync.RegistryStats{{Registry: "127.0.0.1:5000", Repositories: 7, Tags: 15, ManifestsFetched: 20, TagChanges: 3, Removed: 1}},
		Requests:   42, Duration: 1234567 * time.Microsecond,
	}, nil)
	p.promoted(&promote.Report{
		Destinations: []promote.DestinationReport{{Destination: "127.0.0.1:5001/prod", Copied: 2, Tagged: 3, Skipped: 4, Lost: 1,
			BytesSent: 3 << 20, BytesMounted: 1 << 10, Requests: 30, DurationSeconds: 0.5}},
		Totals:       promote.Totals{Copied: 2, Tagged: 3, Requests: 30},
		HTTPRequests: 31, DurationSeconds: 0.75, Verified: 5,
	})
	p.promoted(nil)
	want := "synced 127.0.0.1:5000: 7 repositories, 15 tags, 20 manifests fetched, 3 tag changes, 1 repositories removed\n" +
		"sync: 42 requests in 1.235s\n" +
		"promoted 127.0.0.1:5001/prod: 2 copied, 3 tagged, 4 skipped, 1 lost, 3.0 MiB sent, 1.0 KiB mounted, 30 requests in 500ms\n" +
		"promote: 2 copied, 3 tagged, 30 requests in 750ms, 5 references verified\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("summary lines (-want +got):\n%s", diff)
	}
	// A promotion that copied referrers says how many, per destination and
	// in its totals.
	b.Reset()
	p.promoted(&promote.Report{
		Destinations: []promote.DestinationReport{{Destination: "127.0.0.1:5001/prod", Copied: 1, Referred: 6, Requests: 9}},
		Totals:       promote.Totals{Copied: 1, Referred: 6, Requests: 9},
	})
	want = "promoted 127.0.0.1:5001/prod: 1 copied, 0 tagged, 6 referred, 0 skipped, 0 lost, 0 B sent, 0 B mounted, 9 requests in 0s\n" +
		"promote: 1 copied, 0 tagged, 6 referred, 9 requests in 0s, 0 references verified\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("summary lines with referrers (-want +got):\n%s", diff)
	}
	// --quiet: nothing.
	quiet := progress{}
	quiet.synced(&cipsync.Result{Requests: 1})
	quiet.promoted(&promote.Report{})
	if quiet.sync() != nil || quiet.promote() != nil {
		t.Errorf("--quiet: a live status line")
	}
}

// Off a terminal (a CI log) the transport's log records are the record of
// its retries: notes draws nothing and passes them to stderr as they are.
func TestNotesOffTerminal(t *testing.T) {
	var b bytes.Buffer
	n := &notes{w: &b, now: time.Now}
	n.event(registry.Event{Host: "reg.example", Wait: 3 * time.Second, Reason: "429"})
	if got := n.suffix(); got != "" {
		t.Errorf("suffix off a terminal = %q, want none", got)
	}
	fmt.Fprint(n, "level=INFO msg=retrying host=reg.example reason=429 wait=3s\n")
	if got, want := b.String(), "level=INFO msg=retrying host=reg.example reason=429 wait=3s\n"; got != want {
		t.Errorf("log through notes = %q, want %q", got, want)
	}
	var nilNotes *notes
	nilNotes.event(registry.Event{Host: "x", Wait: time.Second})
	if nilNotes.suffix() != "" {
		t.Error("a nil *notes has a suffix")
	}
}

// While the live line is drawn, the transport's log is printed above it.
func TestNotesLogAboveLiveLine(t *testing.T) {
	var b lockedBuffer
	n := &notes{w: &b, live: true, now: time.Now}
	line := liveline.Start(&b, true, func() string { return "sync [==] 1/2" })
	n.setLine(line)
	fmt.Fprint(n, "level=WARN msg=\"giving up on host\" host=reg.example\n")
	n.setLine(nil)
	line.Stop()
	if got := b.String(); !strings.HasPrefix(got, "\r\033[Klevel=WARN msg=\"giving up on host\" host=reg.example\n") {
		t.Errorf("output = %q, want the record printed over the status line", got)
	}
}

// On a terminal the latest retry rides on the live line while it waits.
func TestNotesOnLiveLine(t *testing.T) {
	var b bytes.Buffer
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	n := &notes{w: &b, live: true, now: func() time.Time { return now }}
	if got := n.suffix(); got != "" {
		t.Errorf("suffix before any retry = %q", got)
	}
	n.event(registry.Event{Host: "reg.example", Wait: 3 * time.Second, Reason: "429"})
	if got, want := n.suffix(), " · retrying reg.example in 3s (429)"; got != want {
		t.Errorf("suffix = %q, want %q", got, want)
	}
	now = now.Add(2 * time.Second)
	if got, want := n.suffix(), " · retrying reg.example in 1s (429)"; got != want {
		t.Errorf("suffix a second later = %q, want %q", got, want)
	}
	now = now.Add(2 * time.Second)
	if got := n.suffix(); got != "" {
		t.Errorf("suffix after the wait = %q, want none", got)
	}
	if b.Len() != 0 {
		t.Errorf("a live terminal got lines for retries: %q", b.String())
	}
}

// Rows written one at a time are the bytes writeData prints for the slice.
func TestWriteRowsMatchesWriteData(t *testing.T) {
	rows := []planRow{
		{Destination: "d.io/p", Image: "app", Digest: "sha256:aa", Action: "copy", Source: "s.io/s", Tags: []string{"v1", "v2"}, TagsMissing: []string{"v1", "v2"}, File: "f.yaml", Line: 3},
		{Destination: "d.io/p", Image: "a<b>", Digest: "sha256:bb", Action: "lost", Source: "s.io/s", Tags: []string{}, TagsMissing: []string{}, File: "f.yaml", Line: 9},
	}
	for _, format := range []string{"json", "yaml"} {
		for n := range len(rows) + 1 {
			var want, got bytes.Buffer
			if err := writeData(&want, format, append([]planRow{}, rows[:n]...)); err != nil {
				t.Fatal(err)
			}
			if err := writeRows(&got, format, func(emit func(planRow) error) error {
				for _, r := range rows[:n] {
					if err := emit(r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if want.String() != got.String() {
				t.Errorf("%s, %d rows: writeRows =\n%s\nwant (writeData)\n%s", format, n, got.String(), want.String())
			}
		}
	}
}
