package sync

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/cipdev/cip/internal/once"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// fetcher gets manifests for one run (a crawl, or one Digests call): each
// digest once however many repositories need it (content addressing: one
// GET serves all). Requests in flight are the registry Transport's to
// bound, per host; jobs bounds the parallel reads of one repository.
//
// A crawl's fetcher also writes every image manifest to the inventory as
// soon as it has it (store), and keeps only a stub of it (no bytes, no
// blobs): so that a crawl holds the bytes of the manifests in flight, not
// of every manifest of the run, and its memory does not grow with the
// registry (a repository of 5,000 one-megabyte manifests held them all
// until its write). Indexes wait for their repository's write, after
// their children, so that the inventory never holds an index whose
// children it lacks; once written they are stubs too (written).
type fetcher struct {
	db     *inventory.DB
	client *registry.Client
	jobs   int
	got    once.Group[string, *held]
	gets   atomic.Int64 // manifests this run got over the network
	// store, when set, records image manifests at once (a crawl's writer);
	// budget bounds the bytes fetched and not yet stored.
	store  func(ctx context.Context, ms []*inventory.Manifest) error
	budget *semaphore.Weighted
}

// storeBudget bounds the manifest bytes a crawl has fetched and not yet
// written: 16 manifests of the 4 MiB registry.MaxManifestSize, which keeps
// a crawl's peak memory far below 300 MB whatever the registry holds,
// while the writer commits them in batches.
const storeBudget = 64 << 20

// held is one manifest of the run: the parsed manifest until it is in the
// inventory, then a stub with its digest and children only.
type held struct {
	v atomic.Pointer[heldValue]
}

type heldValue struct {
	m      *inventory.Manifest
	stored bool // m is a stub: the manifest is in the inventory
}

func newHeld(m *inventory.Manifest) *held {
	h := &held{}
	h.v.Store(&heldValue{m: m})
	return h
}

// load returns the manifest, and whether it is a stub already written.
func (h *held) load() (*inventory.Manifest, bool) {
	v := h.v.Load()
	return v.m, v.stored
}

// written replaces the manifest by its stub, once it is in the inventory:
// callers that already read it keep their copy.
func (h *held) written() {
	m := h.v.Load().m
	h.v.Store(&heldValue{m: &inventory.Manifest{Digest: m.Digest, MediaType: m.MediaType, IsIndex: m.IsIndex, Children: m.Children}, stored: true})
}

func newFetcher(db *inventory.DB, client *registry.Client, jobs int) *fetcher {
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	return &fetcher{db: db, client: client, jobs: jobs}
}

// storing makes f write image manifests as it gets them, through store.
func (f *fetcher) storing(store func(ctx context.Context, ms []*inventory.Manifest) error) *fetcher {
	f.store = store
	f.budget = semaphore.NewWeighted(storeBudget)
	return f
}

// request runs fn, unless ctx is done. It holds no slot: the registry
// Transport bounds the requests in flight, per host (a slot here, shared by
// all hosts, would let one slow host hold the others' work).
func (f *fetcher) request(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn()
}

// admit reserves room for m's bytes in the store budget, for an image the
// fetcher will store; release it once m is stored (or dropped). Callers
// admit while they still hold the request slot of m's GET: so at most jobs
// fetched manifests wait for room, and the bytes a crawl holds stay
// bounded (storeBudget plus jobs manifests) however slow the writer.
func (f *fetcher) admit(ctx context.Context, m *inventory.Manifest) (release func(), err error) {
	if f.store == nil || m.IsIndex {
		return func() {}, nil
	}
	n := min(int64(len(m.Raw)), storeBudget)
	if err := f.budget.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { f.budget.Release(n) }, nil
}

// hold makes m the run's manifest for its digest: an image is written to
// the inventory first when the fetcher stores (outside any request slot:
// other requests go on while it waits for the commit). m was admitted.
func (f *fetcher) hold(ctx context.Context, m *inventory.Manifest) (*held, error) {
	h := newHeld(m)
	if f.store == nil || m.IsIndex {
		return h, nil
	}
	if err := f.store(ctx, []*inventory.Manifest{m}); err != nil {
		return nil, err
	}
	h.written()
	return h, nil
}

// keep adds m, got some other way (a GET by tag) and admitted, to the
// run's manifests (storing it, as hold does); it reports whether m was new
// to the run.
func (f *fetcher) keep(ctx context.Context, m *inventory.Manifest) (bool, error) {
	_, ran, err := f.got.Do(ctx, m.Digest, func() (*held, error) { return f.hold(ctx, m) })
	if ran && err == nil {
		f.gets.Add(1)
	}
	return ran, err
}

// fetch returns the run's manifest dg, getting it from repo unless this
// run already has (or is getting) it; fetchedHere says this call did the
// GET.
func (f *fetcher) fetch(ctx context.Context, repo name.Repository, dg string) (*held, bool, error) {
	for {
		h, ran, err := f.got.Do(ctx, dg, func() (*held, error) { return f.get(ctx, repo, dg) })
		if err == nil || ran || ctx.Err() != nil {
			return h, ran && err == nil, err
		}
		// Another repository's GET failed (and was forgotten): try from
		// this one. Each turn waits for a different failed call or makes
		// the GET itself, so the loop ends.
	}
}

// get GETs, parses, admits and holds repo@dg.
func (f *fetcher) get(ctx context.Context, repo name.Repository, dg string) (*held, error) {
	var m *inventory.Manifest
	var release func()
	err := f.request(ctx, func() error {
		raw, err := f.client.GetManifest(ctx, repo, dg)
		if err != nil {
			return err
		}
		m, err = inventory.ParseManifest(dg, raw.MediaType, raw.Raw)
		if err != nil {
			return fmt.Errorf("%s@%s: %w", repo.Name(), dg, err)
		}
		release, err = f.admit(ctx, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer release()
	h, err := f.hold(ctx, m)
	if err != nil {
		return nil, err
	}
	f.gets.Add(1)
	return h, nil
}

// written marks the manifests a repository write recorded as in the
// inventory: the run keeps stubs of them.
func (f *fetcher) written(ms []*inventory.Manifest) {
	for _, m := range ms {
		if h, ok := f.got.Value(m.Digest); ok {
			h.written()
		}
	}
}

// rotated returns digests starting at an offset chosen by host. Mirrors
// crawl the same repository at about the same moment, and one GET of a
// digest serves them all (whoever asks first): asked for in the same
// order, one host would GET nearly all of a large repository's manifests
// while the others waited on it; from different offsets, each host asks
// first for its own share.
func rotated(digests []string, host string) []string {
	if len(digests) < 2 {
		return digests
	}
	h := fnv.New32a()
	h.Write([]byte(host))
	off := int(h.Sum32() % uint32(len(digests)))
	return append(slices.Clone(digests[off:]), digests[:off]...)
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
		need = rotated(need, repo.RegistryStr())
		got := make([]*inventory.Manifest, len(need))
		stored := make([]bool, len(need))
		absent := make([]bool, len(need))
		why := make([]error, len(need))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(f.jobs)
		for i, dg := range need {
			g.Go(func() error {
				h, fetchedHere, err := f.fetch(gctx, repo, dg)
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
				got[i], stored[i] = h.load()
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
			if !stored[i] {
				out = append(out, m)
			}
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

// reaching maps each bad digest to itself and each manifest of fresh that
// reaches one (an index above it, however nested) to the bad digest it
// reaches: parents are found from the fetched indexes, level by level up.
func reaching(fresh []*inventory.Manifest, bad map[string]error) map[string]string {
	why := map[string]string{}
	for d := range bad {
		why[d] = d
	}
	for changed := true; changed; {
		changed = false
		for _, m := range fresh {
			if _, done := why[m.Digest]; done {
				continue
			}
			for _, c := range m.Children {
				if b, ok := why[c.Digest]; ok {
					why[m.Digest], changed = b, true
					break
				}
			}
		}
	}
	return why
}
