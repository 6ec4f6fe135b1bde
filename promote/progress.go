package promote

import "sync/atomic"

// Status is how far Promote is, over every destination: copying, then
// verifying what it wrote.
type Status struct {
	Rows         int64 // copy and tag rows to do
	Done         int64 // rows done, or failed
	Destinations int
	BytesSent    int64 // blob bytes streamed from the source
	BlobsSent    int64
	BlobsMounted int64 // blobs mounted from another repository (no bytes sent)
	BytesMounted int64
	// Verifying is set once the copies are over and Promote checks each
	// reference it wrote with a live HEAD: Verified of ToVerify are done.
	Verifying          bool
	Verified, ToVerify int64
}

// Progress follows Promote, for a live display (cmd/app draws a status
// line on a terminal, and a heartbeat line in CI logs). Promote calls Start
// as the copies begin and Stop when it has verified what it wrote; nothing
// else is reported through it: Promote returns its Report (and
// Options.OnImage hears of each row as it finishes).
type Progress interface {
	// Start hands over a function reading how far Promote is: cheap, and
	// safe to call from any goroutine until Stop returns.
	Start(status func() Status)
	// Stop says Promote is over.
	Stop()
}

// progress is Promote's handle on opts.Progress (nil: none).
type progress struct {
	p                Progress
	verify           *atomic.Bool
	checked, toCheck *atomic.Int64
}

// newProgress starts p, when set, on the destinations' counters.
func newProgress(p Progress, names []string, dests map[string]*destStats) progress {
	pr := progress{p: p, verify: &atomic.Bool{}, checked: &atomic.Int64{}, toCheck: &atomic.Int64{}}
	if p != nil {
		p.Start(func() Status {
			s := Status{Destinations: len(names), Verifying: pr.verify.Load(), Verified: pr.checked.Load(), ToVerify: pr.toCheck.Load()}
			for _, n := range names {
				st := dests[n]
				s.Rows += st.rowsAll.Load()
				s.Done += st.rowsDone.Load()
				s.BytesSent += st.bytesSent.Load()
				s.BlobsSent += st.blobsSent.Load()
				s.BlobsMounted += st.blobsMounted.Load()
				s.BytesMounted += st.bytesMounted.Load()
			}
			return s
		})
	}
	return pr
}

// verifying says the copies are over and n references are to be checked.
func (p progress) verifying(n int) {
	p.toCheck.Store(int64(n))
	p.verify.Store(true)
}

// verified counts one reference checked.
func (p progress) verified() { p.checked.Add(1) }

// Stop stops the progress, when there is one.
func (p progress) Stop() {
	if p.p != nil {
		p.p.Stop()
	}
}
