package app

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/promote"
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
	// --quiet: nothing.
	quiet := progress{}
	quiet.synced(&cipsync.Result{Requests: 1})
	quiet.promoted(&promote.Report{})
	if quiet.sync() != nil || quiet.promote() != nil {
		t.Errorf("--quiet: a live status line")
	}
}
