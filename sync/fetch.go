package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/once"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// fetcher gets manifests for one run (a crawl, or one Digests call): each
// digest once however many repositories need it (content addressing: one
// GET serves all), with at most jobs requests in flight.
type fetcher struct {
	db     *inventory.DB
	client *registry.Client
	jobs   int
	sem    chan struct{} // bounds requests in flight
	got    once.Group[string, *inventory.Manifest]
	gets   atomic.Int64 // manifests this run got over the network
}

func newFetcher(db *inventory.DB, client *registry.Client, jobs int) *fetcher {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	return &fetcher{db: db, client: client, jobs: jobs, sem: make(chan struct{}, jobs)}
}

// request runs f holding one of the request slots.
func (f *fetcher) request(ctx context.Context, fn func() error) error {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.sem }()
	return fn()
}

// keep adds m, got some other way (a GET by tag), to the run's manifests;
// it reports whether m was new to the run.
func (f *fetcher) keep(ctx context.Context, m *inventory.Manifest) bool {
	_, ran, _ := f.got.Do(ctx, m.Digest, func() (*inventory.Manifest, error) { return m, nil })
	if ran {
		f.gets.Add(1)
	}
	return ran
}

// fetch returns the manifest dg, getting it from repo unless this run
// already has (or is getting) it; fetchedHere says this call did the GET.
func (f *fetcher) fetch(ctx context.Context, repo name.Repository, dg string) (*inventory.Manifest, bool, error) {
	for {
		m, ran, err := f.got.Do(ctx, dg, func() (*inventory.Manifest, error) { return f.get(ctx, repo, dg) })
		if err == nil || ran || ctx.Err() != nil {
			return m, ran && err == nil, err
		}
		// Another repository's GET failed (and was forgotten): try from
		// this one. Each turn waits for a different failed call or makes
		// the GET itself, so the loop ends.
	}
}

// get GETs and parses repo@dg.
func (f *fetcher) get(ctx context.Context, repo name.Repository, dg string) (*inventory.Manifest, error) {
	var m *inventory.Manifest
	err := f.request(ctx, func() error {
		raw, err := f.client.GetManifest(ctx, repo, dg)
		if err != nil {
			return err
		}
		m, err = inventory.ParseManifest(dg, raw.MediaType, raw.Raw)
		if err != nil {
			return fmt.Errorf("%s@%s: %w", repo.Name(), dg, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.gets.Add(1)
	return m, nil
}

// fetchNew GETs every manifest reachable from roots that the inventory does
// not hold yet, following index children level by level. It returns them,
// and how many this call fetched over the network. A digest repo does not
// have (ErrNotFound) fails the call, unless lenient: then it is returned in
// missing, and its children (unknown) are not followed. A manifest that
// cannot be verified or read (unverified) is returned in bad, with why,
// and not followed either: the caller drops what reaches it.
func (f *fetcher) fetchNew(ctx context.Context, repo name.Repository, roots []string, lenient bool) (out []*inventory.Manifest, nfetched int, missing []string, bad map[string]error, err error) {
	var fetched atomic.Int64
	seen := map[string]bool{}
	level := roots
	for len(level) > 0 {
		var todo []string
		for _, dg := range level {
			if !seen[dg] {
				seen[dg] = true
				todo = append(todo, dg)
			}
		}
		known, err := f.db.KnownDigests(ctx, todo)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		var need []string
		for _, dg := range todo {
			if !known[dg] {
				need = append(need, dg)
			}
		}
		got := make([]*inventory.Manifest, len(need))
		absent := make([]bool, len(need))
		why := make([]error, len(need))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(f.jobs)
		for i, dg := range need {
			g.Go(func() error {
				m, fetchedHere, err := f.fetch(gctx, repo, dg)
				if lenient && errors.Is(err, registry.ErrNotFound) {
					absent[i] = true
					return nil
				}
				if unverified(err) {
					why[i] = err
					return nil
				}
				if err != nil {
					return err
				}
				if fetchedHere {
					fetched.Add(1)
				}
				got[i] = m
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, 0, nil, nil, err
		}
		level = nil
		for i, m := range got {
			if absent[i] {
				missing = append(missing, need[i])
				continue
			}
			if why[i] != nil {
				if bad == nil {
					bad = map[string]error{}
				}
				bad[need[i]] = why[i]
				continue
			}
			out = append(out, m)
			for _, c := range m.Children {
				if !seen[c.Digest] {
					level = append(level, c.Digest)
				}
			}
		}
	}
	sort.Strings(missing)
	return out, int(fetched.Load()), missing, bad, nil
}
