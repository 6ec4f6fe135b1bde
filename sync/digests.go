package sync

import (
	"cmp"
	"context"
	"errors"
	"slices"
	gosync "sync"

	"github.com/cipdev/cip/internal/hostpool"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// Ref is a manifest digest in a repository (a full name, host included).
type Ref struct {
	Repository string
	Digest     string
}

// Found is what Digests learned, each list sorted by repository and digest.
type Found struct {
	// Present are the refs their repository holds, complete (every child
	// of an index too); the inventory now records that it holds them.
	Present []Ref
	// Incomplete are refs whose manifest their repository holds while it
	// lacks a child (a broken index): the manifests found are recorded, not
	// that the repository holds the digest.
	Incomplete []Ref
	// Absent are the refs their repository does not hold.
	Absent []Ref
	// Fetched counts the manifests got over the network.
	Fetched int
}

// Digests makes the inventory know the given digests: what a crawl does
// for one repository's tags, for digests that a tag listing cannot show
// (an untagged manifest, outside GCR's listing extension). For each ref, a
// manifest the inventory already has costs a HEAD (is it there?); an
// unknown one a GET (is it there, and what is it), then a GET of each of
// its children the inventory lacks, however nested. Everything found is
// recorded in one transaction after the reads. Only opts.Jobs (requests in
// flight) applies.
func Digests(ctx context.Context, db *inventory.DB, client *registry.Client, refs []Ref, opts Options) (*Found, error) {
	refs = sortedRefs(refs)
	res := &Found{}
	if len(refs) == 0 {
		return res, nil
	}
	digests := make([]string, len(refs))
	for i, r := range refs {
		digests[i] = r.Digest
	}
	known, err := db.KnownDigests(ctx, digests)
	if err != nil {
		return nil, err
	}
	f := newFetcher(db, client, opts.Jobs)
	type outcome int
	const (
		present outcome = iota
		incomplete
		absent
	)
	outcomes := make([]outcome, len(refs))
	// A GET both finds an unknown digest and reads it, for the first ref
	// of that digest; the others (other repositories) HEAD it: the run's
	// one GET of a digest says nothing about another repository.
	// Of the refs of one unknown digest (in repositories of several hosts,
	// mirrors say), the getter is on the host with the fewest GETs so far:
	// the GETs spread over the hosts instead of all landing on the first.
	getter := make([]bool, len(refs))
	byDigest := map[string][]int{}
	var unknown []string
	for i, r := range refs {
		if !known[r.Digest] {
			if _, ok := byDigest[r.Digest]; !ok {
				unknown = append(unknown, r.Digest)
			}
			byDigest[r.Digest] = append(byDigest[r.Digest], i)
		}
	}
	slices.Sort(unknown)
	gets := map[string]int{}
	for _, dg := range unknown {
		best := -1
		for _, i := range byDigest[dg] {
			if best < 0 || gets[hostOf(refs[i].Repository)] < gets[hostOf(refs[best].Repository)] {
				best = i
			}
		}
		getter[best] = true
		gets[hostOf(refs[best].Repository)]++
	}
	var mu gosync.Mutex
	var ms []*inventory.Manifest
	var errs []error
	// Refs are in repository order, so by host: a pool per host lets every
	// host's look-ups run side by side.
	pool := hostpool.New(f.jobs)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, r := range refs {
		pool.Go(hostOf(r.Repository), func() {
			if gctx.Err() != nil {
				return
			}
			ctx := gctx
			err := func() error {
				repo, err := client.ParseRepository(r.Repository)
				if err != nil {
					return err
				}
				if !getter[i] {
					_, err := client.Head(ctx, repo, r.Digest)
					if errors.Is(err, registry.ErrNotFound) {
						outcomes[i] = absent
						return nil
					}
					if err != nil || known[r.Digest] {
						return err
					}
				}
				got, _, missing, bad, err := f.fetchNew(ctx, repo, []string{r.Digest}, true)
				if err != nil {
					return err
				}
				// A manifest that cannot be verified is as good as absent: it
				// is never recorded, and an index above it is incomplete.
				_, rootBad := bad[r.Digest]
				switch {
				case getter[i] && (slices.Contains(missing, r.Digest) || rootBad):
					outcomes[i] = absent
				case len(missing) > 0 || len(bad) > 0:
					outcomes[i] = incomplete
				}
				mu.Lock()
				ms = append(ms, got...)
				mu.Unlock()
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel() // the first failure ends the call, as it did with errgroup
			}
		})
	}
	pool.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	var held []inventory.Copy
	for i, r := range refs {
		switch outcomes[i] {
		case present:
			res.Present = append(res.Present, r)
			held = append(held, inventory.Copy{Repository: r.Repository, Digest: r.Digest})
		case incomplete:
			res.Incomplete = append(res.Incomplete, r)
		case absent:
			res.Absent = append(res.Absent, r)
		}
	}
	res.Fetched = int(f.gets.Load())
	// One GET may serve several refs (one digest in two repositories of a
	// run is got once): record each manifest once, in digest order.
	slices.SortFunc(ms, func(a, b *inventory.Manifest) int { return cmp.Compare(a.Digest, b.Digest) })
	ms = slices.CompactFunc(ms, func(a, b *inventory.Manifest) bool { return a.Digest == b.Digest })
	if err := db.RecordFound(ctx, ms, held); err != nil {
		return nil, err
	}
	return res, nil
}

// sortedRefs returns a copy of refs sorted by repository and digest, each
// once.
func sortedRefs(refs []Ref) []Ref {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, compareRefs)
	return slices.Compact(refs)
}

func compareRefs(a, b Ref) int {
	return cmp.Or(cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Digest, b.Digest))
}
