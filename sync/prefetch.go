package sync

import (
	"context"
	"errors"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// ReferrerAnswers holds referrers API answers asked ahead of a look-up
// (StartPrefetch), for Referrers (ReferrerOptions.Answers) to use
// instead of asking again. A plan with a fresh inventory must ask the
// source's referrers API once per wanted digest, at the source's quota,
// and could ask only after the destinations' crawl: asked while the
// destinations are crawled, the source's share no longer follows theirs.
// The answers are seconds old when used; an answer that failed is not
// kept (the look-up asks again). Safe for concurrent use.
type ReferrerAnswers struct {
	mu       gosync.Mutex
	m        map[Ref][]registry.Referrer
	noAPI    map[string]bool // hosts whose first answer said they serve no referrers API
	requests atomic.Int64
}

// get returns the answer kept for subject in repo: its referrers, or
// registry.ErrNoReferrersAPI for a host without the API; ok is false when
// none is kept.
func (a *ReferrerAnswers) get(host, repo, subject string) (rs []registry.Referrer, ok bool, err error) {
	if a == nil {
		return nil, false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.noAPI[host] {
		return nil, true, registry.ErrNoReferrersAPI
	}
	rs, ok = a.m[Ref{Repository: repo, Digest: subject}]
	return rs, ok, nil
}

// Requests returns the referrers API requests the prefetch sent.
func (a *ReferrerAnswers) Requests() int64 {
	if a == nil {
		return 0
	}
	return a.requests.Load()
}

// PrefetchOptions tunes StartPrefetch.
type PrefetchOptions struct {
	// Jobs bounds the questions in flight per project (see askGrouped); 0
	// means DefaultJobs.
	Jobs int
	// DB, when set, is read for the index children of refs' digests as a
	// crawl running meanwhile stores the indexes (children's children
	// too), and each child is asked about in its parent's repository,
	// until Prefetch.CrawlDone and one last read.
	DB *inventory.DB
}

// maxChildRounds bounds the reads of the inventory for children: at
// childPoll apart, about 40 minutes of crawl.
const maxChildRounds = 10000

// childPoll is how often the inventory is read for children the crawl
// has stored since the last read, while nothing new was found.
const childPoll = 250 * time.Millisecond

// Prefetch is a look-up of referrers API answers ahead of Referrers
// (StartPrefetch): its first question to each host has been answered by
// the time StartPrefetch returns, the rest run in the background until
// Wait. A nil *Prefetch is none: its methods do nothing.
type Prefetch struct {
	answers   *ReferrerAnswers
	cancel    context.CancelFunc
	done      chan struct{}
	crawled   chan struct{} // closed by CrawlDone
	crawlOnce gosync.Once
}

// StartPrefetch asks the referrers API about each of refs (a wanted digest
// in its source repository): first one question to each host, all hosts
// at once, before it returns (a host without the API then costs one
// request, and the host's authentication is over before any other work
// the caller starts meanwhile touches it: the requests each counts stay
// its own); then, in the background, the rest, every project at once
// with opts.Jobs in flight in each, and (with opts.DB) their index
// children as the inventory learns them. Failures are not errors (the
// look-up asks again); ctx, or Stop, ends it.
func StartPrefetch(ctx context.Context, client *registry.Client, refs []Ref, opts PrefetchOptions) *Prefetch {
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &ReferrerAnswers{m: map[Ref][]registry.Referrer{}, noAPI: map[string]bool{}}
	ask := func(ctx context.Context, r Ref) {
		repo, err := client.ParseRepository(r.Repository)
		if err != nil {
			return
		}
		host := repo.RegistryStr()
		a.mu.Lock()
		none := a.noAPI[host]
		a.mu.Unlock()
		if none {
			return
		}
		a.requests.Add(1)
		rs, err := client.Referrers(ctx, repo, r.Digest, "")
		a.mu.Lock()
		defer a.mu.Unlock()
		switch {
		case errors.Is(err, registry.ErrNoReferrersAPI):
			a.noAPI[host] = true
		case err == nil:
			a.m[r] = rs
		}
	}
	var first, rest []Ref
	seen := map[string]bool{}
	for _, r := range refs {
		host, _, _ := strings.Cut(r.Repository, "/")
		if !seen[host] {
			seen[host] = true
			first = append(first, r)
			continue
		}
		rest = append(rest, r)
	}
	var g errgroup.Group
	g.SetLimit(maxGroups)
	for _, r := range first {
		g.Go(func() error { ask(ctx, r); return nil })
	}
	_ = g.Wait()
	pf := &Prefetch{answers: a, cancel: cancel, done: make(chan struct{}), crawled: make(chan struct{})}
	go func() {
		defer close(pf.done)
		askGrouped(ctx, rest, jobs, ask)
		if opts.DB != nil {
			a.children(ctx, opts.DB, pf.crawled, refs, func(rs []Ref) { askGrouped(ctx, rs, jobs, ask) })
		}
	}()
	return pf
}

// CrawlDone tells the look-up the crawl it runs beside is over: one last
// read of the inventory for index children, and it ends.
func (pf *Prefetch) CrawlDone() {
	if pf != nil {
		pf.crawlOnce.Do(func() { close(pf.crawled) })
	}
}

// Wait returns the answers once every question has been asked (the crawl
// counts as done: CrawlDone).
func (pf *Prefetch) Wait() *ReferrerAnswers {
	if pf == nil {
		return nil
	}
	pf.CrawlDone()
	<-pf.done
	return pf.answers
}

// Stop ends the look-up where it is (a plan that failed) and waits for it.
func (pf *Prefetch) Stop() {
	if pf != nil {
		pf.cancel()
		pf.Wait()
	}
}

// maxGroups bounds the projects asked about at once.
const maxGroups = 256

// askGrouped asks about refs a project at a time per group, every project
// (host and first path component: the unit a quota counts on Google's
// hosts, and a repository's parent elsewhere) at once and jobs questions in
// flight in each: one global bound would fill with the questions of one
// project waiting for its pace while the others wait for a slot (a
// fresh plan's children took 47 s so, 35 s without them).
func askGrouped(ctx context.Context, refs []Ref, jobs int, ask func(context.Context, Ref)) {
	byGroup := map[string][]Ref{}
	var groups []string
	for _, r := range refs {
		host, rest, _ := strings.Cut(r.Repository, "/")
		project, _, _ := strings.Cut(rest, "/")
		k := host + "/" + project
		if _, ok := byGroup[k]; !ok {
			groups = append(groups, k)
		}
		byGroup[k] = append(byGroup[k], r)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxGroups)
	for _, k := range groups {
		g.Go(func() error {
			inner, ictx := errgroup.WithContext(gctx)
			inner.SetLimit(jobs)
			for _, r := range byGroup[k] {
				inner.Go(func() error {
					if ictx.Err() == nil {
						ask(ictx, r)
					}
					return nil
				})
			}
			return inner.Wait()
		})
	}
	_ = g.Wait() // nothing fails: an unanswered question is asked again
}

// children asks (through ask) about the index children of roots, and
// theirs, as opts.DB learns them: a digest whose manifest the inventory
// holds is expanded once; one it does not hold yet is read again at the
// next round. It ends once crawled is closed and a last round is
// done, when nothing is left to expand, or with ctx.
func (a *ReferrerAnswers) children(ctx context.Context, db *inventory.DB, crawled <-chan struct{}, roots []Ref, ask func([]Ref)) {
	pending := map[Ref]bool{}
	asked := map[Ref]bool{}
	for _, r := range roots {
		pending[r], asked[r] = true, true
	}
	for round := 0; len(pending) > 0 && round < maxChildRounds && ctx.Err() == nil; round++ {
		last := false
		select {
		case <-crawled:
			last = true
		default:
		}
		digests := make([]string, 0, len(pending))
		for r := range pending {
			digests = append(digests, r.Digest)
		}
		slices.Sort(digests)
		digests = slices.Compact(digests)
		kids, corrupt, err := db.ManifestChildren(ctx, digests)
		if err != nil {
			return // the look-up asks
		}
		var next []Ref
		for r := range pending {
			cs, known := kids[r.Digest]
			if !known || corrupt[r.Digest] {
				continue
			}
			delete(pending, r)
			for _, c := range cs {
				k := Ref{Repository: r.Repository, Digest: c}
				if !asked[k] {
					asked[k], pending[k] = true, true
					next = append(next, k)
				}
			}
		}
		slices.SortFunc(next, func(x, y Ref) int { return strings.Compare(x.Repository+"@"+x.Digest, y.Repository+"@"+y.Digest) })
		ask(next)
		if last {
			return
		}
		if len(next) == 0 {
			t := time.NewTimer(childPoll)
			select {
			case <-ctx.Done():
			case <-crawled:
			case <-t.C:
			}
			t.Stop()
		}
	}
}
