package promote_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/cipdev/cip/promote"
)

// recordProgress keeps what Promote (or a sync) reported.
type recordProgress[S any] struct {
	starts, stops atomic.Int32
	status        func() S
	last          S // read at Stop
}

func (p *recordProgress[S]) Start(status func() S) { p.starts.Add(1); p.status = status }
func (p *recordProgress[S]) Stop() {
	p.stops.Add(1)
	p.last = p.status()
}

// MakePlan returns its syncs for the caller to report, and Promote's
// progress sees every row done; the summaries are in the returned values
// (cmd/app prints them).
func TestPlanSyncsAndProgress(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	p := e.mustPlan(set)
	// Destinations first, then the sources of what they lack.
	if len(p.Syncs) != 2 {
		t.Fatalf("cold plan: %d syncs, want 2 (destinations, sources)", len(p.Syncs))
	}
	if got, want := len(p.Syncs[1].Registries), 1; got != want || p.Syncs[1].Registries[0].Registry != e.src.Host {
		t.Errorf("second sync crawled %+v, want the source registry %s", p.Syncs[1].Registries, e.src.Host)
	}
	prog := &recordProgress[promote.Status]{}
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4, Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if prog.starts.Load() != 1 || prog.stops.Load() != 1 {
		t.Errorf("progress started %d, stopped %d times; want once each", prog.starts.Load(), prog.stops.Load())
	}
	var blobs int64
	for _, d := range rep.Destinations {
		blobs += int64(d.BlobsSent)
	}
	// At Stop, the copies are over and verified.
	want := promote.Status{Rows: int64(p.Pending()), Done: int64(p.Pending()), Destinations: 2, BytesSent: prog.last.BytesSent, BlobsSent: blobs,
		Verifying: true, Verified: int64(rep.Verified), ToVerify: int64(rep.Verified)}
	if prog.last != want || prog.last.BytesSent == 0 || rep.Verified == 0 {
		t.Errorf("status at Stop = %+v, want %+v with bytes sent", prog.last, want)
	}
	var sent int64
	for _, d := range rep.Destinations {
		sent += d.BytesSent
	}
	if sent != prog.last.BytesSent {
		t.Errorf("status says %d bytes sent, the report %d", prog.last.BytesSent, sent)
	}
	// Nothing missing: only the destinations are synced.
	if p2 := e.mustPlan(set); len(p2.Syncs) != 1 {
		t.Errorf("warm plan: %d syncs, want 1", len(p2.Syncs))
	}
	// Offline: none.
	p3, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Offline: true})
	if err != nil || len(p3.Syncs) != 0 {
		t.Errorf("offline plan: %v syncs, err %v; want none", len(p3.Syncs), err)
	}
}
