package sync

// Status is how far a crawl is.
type Status struct {
	Repositories int64 // repositories to crawl (known once the listings are read)
	Done         int64 // repositories crawled, or failed
	Tags         int64 // tags seen
	Fetched      int64 // manifests got over the network
}

// Progress follows a long operation, for a live display (cmd/app draws a
// status line on a terminal). Run calls Start as the crawl begins and Stop
// before it returns; nothing else is reported through it: Run returns its
// Result.
type Progress interface {
	// Start hands over a function reading how far the work is: cheap, and
	// safe to call from any goroutine until Stop returns.
	Start(status func() Status)
	// Stop says the work is over.
	Stop()
}

// startProgress starts opts.Progress, when set, on the syncer's counters;
// the returned stop may be called more than once.
func (s *syncer) startProgress() (stop func()) {
	p := s.opts.Progress
	if p == nil {
		return func() {}
	}
	p.Start(func() Status {
		return Status{Repositories: s.reposAll.Load(), Done: s.reposDone.Load(), Tags: s.tagsSeen.Load(), Fetched: s.fetch.gets.Load()}
	})
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			p.Stop()
		}
	}
}
