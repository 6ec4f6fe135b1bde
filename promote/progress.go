package promote

// Status is how far Promote's copies are, over every destination.
type Status struct {
	Rows         int64 // copy and tag rows to do
	Done         int64 // rows done, or failed
	Destinations int
	BytesSent    int64 // blob bytes streamed from the source
}

// Progress follows Promote's copies, for a live display (cmd/app draws a
// status line on a terminal). Promote calls Start as the copies begin and
// Stop when they are over, before it verifies; nothing else is reported
// through it: Promote returns its Report.
type Progress interface {
	// Start hands over a function reading how far the copies are: cheap,
	// and safe to call from any goroutine until Stop returns.
	Start(status func() Status)
	// Stop says the copies are over.
	Stop()
}

// progress is Promote's handle on opts.Progress (nil: none).
type progress struct{ p Progress }

// newProgress starts p, when set, on the destinations' counters.
func newProgress(p Progress, names []string, dests map[string]*destStats) progress {
	if p != nil {
		p.Start(func() Status {
			s := Status{Destinations: len(names)}
			for _, n := range names {
				st := dests[n]
				s.Rows += st.rowsAll.Load()
				s.Done += st.rowsDone.Load()
				s.BytesSent += st.bytesSent.Load()
			}
			return s
		})
	}
	return progress{p}
}

// Stop stops the progress, when there is one.
func (p progress) Stop() {
	if p.p != nil {
		p.p.Stop()
	}
}
