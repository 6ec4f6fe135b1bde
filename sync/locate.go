package sync

import (
	"context"
	"errors"
	"slices"
	gosync "sync"

	"github.com/cipdev/cip/internal/hostpool"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// Listings keeps the referrer tags of the repositories that one run
// listed live (Locate), so that a referrers look-up later in the same run
// (ReferrerOptions.Listings) reads them instead of listing the repository
// again. Safe for concurrent use; the zero value is not: use NewListings.
type Listings struct {
	mu    gosync.Mutex
	repos map[string]*listedTags
}

// listedTags are the referrer tags one listing showed: known maps those
// whose digest the listing named (GCR's extension) to it; listed names
// every referrer tag the repository has.
type listedTags struct {
	known  map[string]string
	listed map[string]bool
}

// NewListings returns an empty Listings.
func NewListings() *Listings { return &Listings{repos: map[string]*listedTags{}} }

func (l *Listings) put(repo string, t *listedTags) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.repos[repo] = t
	l.mu.Unlock()
}

func (l *Listings) get(repo string) *listedTags {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.repos[repo]
}

// referrerTagsOf keeps the referrer tags of a listing.
func referrerTagsOf(tl *registry.TagList) *listedTags {
	t := &listedTags{known: map[string]string{}, listed: map[string]bool{}}
	for _, tag := range tl.Tags {
		if referrer.IsTag(tag) {
			t.listed[tag] = true
		}
	}
	for dg, m := range tl.Manifests {
		for _, tag := range m.Tags {
			if referrer.IsTag(tag) {
				t.known[tag], t.listed[tag] = dg, true
			}
		}
	}
	return t
}

// Locate makes the inventory know that refs' repositories hold their
// digests, as Digests does, but lists each repository first (one request,
// pages aside): on a registry with GCR's listing extension (gcr.io,
// Artifact Registry), whose listing names every manifest of the
// repository, tagged or not, a digest the inventory has and the listing
// names is held with no further request, where Digests would HEAD it; the
// rest (every ref elsewhere, and digests the inventory lacks or the
// listing does not name) go to Digests. A repository that does not exist
// holds none of its refs. The listings' referrer tags go into listings
// (nil: kept nowhere) for a referrers look-up of the same run. Registry
// hosts are listed side by side, opts.Jobs requests in flight each.
func Locate(ctx context.Context, db *inventory.DB, client *registry.Client, refs []Ref, opts Options, listings *Listings) (*Found, error) {
	refs = sortedRefs(refs)
	res := &Found{}
	if len(refs) == 0 {
		return res, nil
	}
	digests := make([]string, len(refs))
	byRepo := map[string][]Ref{}
	var repos []string
	for i, r := range refs {
		digests[i] = r.Digest
		if _, ok := byRepo[r.Repository]; !ok {
			repos = append(repos, r.Repository)
		}
		byRepo[r.Repository] = append(byRepo[r.Repository], r)
	}
	known, err := db.KnownDigests(ctx, digests)
	if err != nil {
		return nil, err
	}
	f := newFetcher(db, client, opts.Jobs)
	var mu gosync.Mutex
	var held, rest, absent []Ref
	var errs []error
	pool := hostpool.New(f.jobs)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, repoName := range repos {
		pool.Go(hostOf(repoName), func() {
			if gctx.Err() != nil {
				return
			}
			var tl *registry.TagList
			err := func() error {
				repo, err := client.ParseRepository(repoName)
				if err != nil {
					return err
				}
				return f.request(gctx, func() error {
					var err error
					tl, err = client.Tags(gctx, repo)
					return err
				})
			}()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, registry.ErrNotFound):
				absent = append(absent, byRepo[repoName]...)
				return
			case err != nil:
				errs = append(errs, err)
				cancel() // the first failure ends the call, as in Digests
				return
			}
			listings.put(repoName, referrerTagsOf(tl))
			for _, r := range byRepo[repoName] {
				if _, named := tl.Manifests[r.Digest]; named && known[r.Digest] {
					held = append(held, r)
				} else {
					rest = append(rest, r)
				}
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
	if len(rest) > 0 {
		if res, err = Digests(ctx, db, client, rest, opts); err != nil {
			return nil, err
		}
	}
	copies := make([]inventory.Copy, len(held))
	for i, r := range held {
		copies[i] = inventory.Copy{Repository: r.Repository, Digest: r.Digest}
	}
	if err := db.RecordFound(ctx, nil, copies); err != nil {
		return nil, err
	}
	res.Present = append(res.Present, held...)
	res.Absent = append(res.Absent, absent...)
	slices.SortFunc(res.Present, compareRefs)
	slices.SortFunc(res.Absent, compareRefs)
	return res, nil
}
