package sync

import (
	"context"
	"errors"
	gosync "sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/once"
	"github.com/cipdev/cip/registry"
)

// ReferrerAnswers holds referrers API answers asked ahead of a look-up
// (PrefetchReferrers), for Referrers (ReferrerOptions.Answers) to use
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

// PrefetchReferrers asks the referrers API about each of refs (a wanted
// digest in its source repository), jobs at a time per repository as
// Referrers does, the first question to each host alone (a host without
// the API then costs one request). It keeps what was answered and returns
// when every question has been asked or ctx ends; failures are not
// errors (the look-up asks again).
func PrefetchReferrers(ctx context.Context, client *registry.Client, refs []Ref, jobs int) *ReferrerAnswers {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	a := &ReferrerAnswers{m: map[Ref][]registry.Referrer{}, noAPI: map[string]bool{}}
	var probes once.Group[string, struct{}]
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
	byRepo := map[string][]Ref{}
	var repos []string
	for _, r := range refs {
		if _, ok := byRepo[r.Repository]; !ok {
			repos = append(repos, r.Repository)
		}
		byRepo[r.Repository] = append(byRepo[r.Repository], r)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reposPerJob * jobs)
	for _, repo := range repos {
		g.Go(func() error {
			rs := byRepo[repo]
			if host, err := client.ParseRepository(repo); err == nil {
				if _, ran, _ := probes.Do(gctx, host.RegistryStr(), func() (struct{}, error) { ask(gctx, rs[0]); return struct{}{}, nil }); ran {
					rs = rs[1:]
				}
			}
			inner, ictx := errgroup.WithContext(gctx)
			inner.SetLimit(jobs)
			for _, r := range rs {
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
	return a
}
