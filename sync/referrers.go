package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/once"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// MaxReferrerDepth bounds how deep Referrers follows referrers of
// referrers: a signature on an attestation of an image is two levels
// (image, attestation, signature), and a third leaves room for one more
// (a countersignature) that no tool makes today. Deeper chains would only
// let a registry chain referrers without end, each costing requests.
const MaxReferrerDepth = 3

// MaxReferrersPerDigest bounds the referrers a look-up takes per digest it
// starts from (its children and referrers of referrers included): a
// multi-arch image signed per platform, attested and with SBOMs has tens;
// a thousand is far beyond any, and bounds what a hostile registry can
// make cip fetch and copy.
const MaxReferrersPerDigest = 1000

// ReferrerOptions configures Referrers.
type ReferrerOptions struct {
	// Jobs bounds registry requests in flight; 0 means DefaultJobs.
	Jobs int
	// ConfirmTTL takes referrer tags and referrers API answers that cip
	// confirmed less than ConfirmTTL ago from the inventory, without a
	// request (as Options.ConfirmTTL does for tags). 0 asks again.
	ConfirmTTL time.Duration
	// Listed reports repositories whose tags the inventory has current (a
	// crawl of this run wrote them): their referrer tags are read from it,
	// without a listing. Nil lists every repository's tags.
	Listed func(repo string) bool
	// Depth bounds referrers of referrers (1: only the digests'
	// own); 0 means MaxReferrerDepth.
	Depth int
	// Listings holds repositories this run listed live already (Locate):
	// their referrer tags are read from it, without a listing, and
	// recorded as listed. Nil: none.
	Listings *Listings
	// Answers holds referrers API answers asked ahead
	// (StartPrefetch): a subject answered there is not asked again.
	// Nil: none.
	Answers *ReferrerAnswers
}

// ReferrersFound is what Referrers did.
type ReferrersFound struct {
	Subjects     int      // digests whose referrers were looked for (children and referrers of referrers included)
	Referrers    int      // (subject, referrer) pairs found
	APIRequests  int64    // requests to referrers APIs, pages included
	TagRequests  int64    // tag listings and HEADs of referrer tags
	Fetched      int      // manifests got over the network
	NoAPI        []string // registry hosts that do not serve the referrers API, sorted
	Changes      []inventory.TagChange
	Repositories int
	// Warnings name the referrers left out because their manifest (or a
	// child of it) cannot be verified or read (they are never recorded),
	// and the manifests whose inventory copy was damaged, fetched again
	// and repaired; sorted.
	Warnings []string
}

// Referrers finds the referrers of refs' digests in their repositories,
// and of their index children (however nested), and, up to opts.Depth
// levels, the referrers of those referrers, and records them
// (inventory.WriteReferrers): the three places a referrer lives. Referrer
// tags (sha256-<hex>, and cosign's .sig, .att and .sbom) come from one tag
// listing per repository (none for a repository opts.Listed names) and a
// HEAD of each referrer tag of a digest looked at (none when the listing
// names its digest, as GCR's does, or cip confirmed it within the TTL);
// the referrers API costs a request per digest looked at, on registries
// that serve it, unless cip asked within the TTL. The first 404 from a
// host's referrers API marks the host as not serving it for the rest of
// the call. Manifests new to the inventory are got once each.
func Referrers(ctx context.Context, db *inventory.DB, client *registry.Client, refs []Ref, opts ReferrerOptions) (*ReferrersFound, error) {
	if opts.Depth <= 0 {
		opts.Depth = MaxReferrerDepth
	}
	l := &lookup{db: db, client: client, opts: opts, fetch: newFetcher(db, client, opts.Jobs), noAPI: map[string]bool{}}
	byRepo := map[string][]string{}
	var repos []string
	for _, r := range refs {
		if _, ok := byRepo[r.Repository]; !ok {
			repos = append(repos, r.Repository)
		}
		byRepo[r.Repository] = append(byRepo[r.Repository], r.Digest)
	}
	slices.Sort(repos)
	res := &ReferrersFound{}
	states := make([]*inventory.ReferrerState, len(repos))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reposPerJob * l.fetch.jobs)
	for i, repo := range repos {
		g.Go(func() error {
			st, err := l.repository(gctx, repo, byRepo[repo])
			if err != nil {
				return fmt.Errorf("find referrers in %s: %w", repo, err)
			}
			states[i] = st
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var write []inventory.ReferrerState
	for _, st := range states {
		if st == nil {
			continue
		}
		write = append(write, *st)
		res.Repositories++
	}
	changes, err := db.WriteReferrers(ctx, 0, write)
	if err != nil {
		return nil, err
	}
	res.Changes = changes
	res.Subjects = int(l.subjects.Load())
	res.Referrers = int(l.found.Load())
	res.APIRequests = l.apiRequests.Load()
	res.TagRequests = l.tagRequests.Load()
	res.Fetched = int(l.fetch.gets.Load())
	for h := range l.noAPI {
		res.NoAPI = append(res.NoAPI, h)
	}
	slices.Sort(res.NoAPI)
	res.Warnings = slices.Sorted(slices.Values(l.warnings))
	return res, nil
}

// lookup is one Referrers call.
type lookup struct {
	db     *inventory.DB
	client *registry.Client
	opts   ReferrerOptions
	fetch  *fetcher

	mu       gosync.Mutex
	noAPI    map[string]bool // hosts that answered 404
	warnings []string
	probes   once.Group[string, struct{}] // each host's first referrers request

	subjects, found          atomic.Int64
	apiRequests, tagRequests atomic.Int64
}

func (l *lookup) hostHasNoAPI(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.noAPI[host]
}

// referrerKinds are the referrer tags of one subject, in the order they
// are looked at.
var referrerKinds = []referrer.Kind{referrer.TagSchema, referrer.CosignSignature, referrer.CosignAttestation, referrer.CosignSBOM}

// repository looks up the referrers of roots in one repository.
func (l *lookup) repository(ctx context.Context, repoName string, roots []string) (*inventory.ReferrerState, error) {
	repo, err := l.client.ParseRepository(repoName)
	if err != nil {
		return nil, err
	}
	st := &inventory.ReferrerState{Repository: repoName, API: map[string][]string{}, Tags: map[string]string{}}
	// The digests themselves, with their children, when the inventory
	// lacks them (callers usually ask about digests it has).
	rootMs, _, _, bad, err := l.fetch.fetchNew(ctx, repo, roots, true)
	if err != nil {
		return nil, err
	}
	rootMs, _ = l.dropUnverified(repoName, rootMs, nil, bad)
	st.New = append(st.New, rootMs...)
	seen := map[string]bool{}
	level, err := l.descendants(ctx, repo, roots, rootMs, seen)
	if err != nil {
		return nil, err
	}
	tags := &referrerTags{l: l, repo: repo, st: st, given: l.opts.Listings.get(repoName)}
	if l.opts.Listed != nil && l.opts.Listed(repoName) {
		tags.crawled = true
	} else if l.opts.ConfirmTTL > 0 {
		if tags.crawledFresh, tags.fresh, err = l.db.FreshReferrerTags(ctx, repoName, l.db.Now().Add(-l.opts.ConfirmTTL)); err != nil {
			return nil, err
		}
	}
	var checked map[string]bool
	if l.opts.ConfirmTTL > 0 {
		if checked, err = l.db.FreshReferrerChecks(ctx, repoName, l.db.Now().Add(-l.opts.ConfirmTTL)); err != nil {
			return nil, err
		}
	}
	limit := MaxReferrersPerDigest * len(roots)
	found := 0
	for depth := 0; depth < l.opts.Depth && len(level) > 0; depth++ {
		l.subjects.Add(int64(len(level)))
		if err := tags.read(ctx, level); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil, nil // nothing there (any more): a crawl notices
			}
			return nil, err
		}
		byTag, err := l.tagDigests(ctx, repo, level, tags.known, tags.listed, st)
		if err != nil {
			return nil, err
		}
		api, err := l.api(ctx, repo, level, checked, st)
		if err != nil {
			return nil, err
		}
		// The manifests the tags and the API name, got when new (an index
		// at sha256-<hex> with its children, the referrers it lists).
		var want []string
		for _, dg := range byTag {
			want = append(want, dg)
		}
		for _, dgs := range api {
			want = append(want, dgs...)
		}
		slices.Sort(want)
		want = slices.Compact(want)
		ms, _, missing, bad, err := l.fetch.fetchNew(ctx, repo, want, true)
		if err != nil {
			return nil, err
		}
		ms, missing = l.dropUnverified(repoName, ms, missing, bad)
		st.New = append(st.New, ms...)
		got := map[string]*inventory.Manifest{}
		for _, m := range ms {
			got[m.Digest] = m
		}
		var next []string
		add := func(dg string) {
			found++
			if !seen[dg] {
				seen[dg] = true
				next = append(next, dg)
			}
		}
		for _, subject := range level {
			for _, k := range referrerKinds {
				dg, ok := byTag[referrer.Tag(subject, k)]
				if !ok || slices.Contains(missing, dg) {
					continue
				}
				if k != referrer.TagSchema {
					add(dg)
					continue
				}
				m := got[dg]
				if m == nil {
					if m, err = l.stored(ctx, repo, dg); err != nil {
						return nil, err
					}
				}
				for _, c := range m.Children {
					add(c.Digest)
				}
			}
			for _, dg := range api[subject] {
				if !slices.Contains(missing, dg) {
					add(dg)
				}
			}
			// A referrer the API listed but the repository no longer
			// serves is not recorded.
			if dgs, ok := st.API[subject]; ok {
				st.API[subject] = slices.DeleteFunc(dgs, func(d string) bool { return slices.Contains(missing, d) })
			}
		}
		if found > limit {
			return nil, fmt.Errorf("more than %d referrers for %d digests", limit, len(roots))
		}
		for _, t := range slices.Sorted(maps.Keys(byTag)) {
			if !slices.Contains(missing, byTag[t]) {
				st.Tags[t] = byTag[t]
			}
		}
		level = next
	}
	l.found.Add(int64(found))
	return st, nil
}

// referrerTags is where one repository's look-up reads referrer tags
// from: the inventory, when a crawl of this run wrote the repository's
// tags (crawled) or, within the ConfirmTTL, when every subject asked about
// had its referrer tags listed live since (fresh, or crawledFresh: a
// complete crawl since); else one live listing: the one this run made
// already (given), or one made when the first subject that needs it is
// asked about, kept for the rest of the look-up (a referrer of a referrer
// found later may need it).
type referrerTags struct {
	l    *lookup
	repo name.Repository
	st   *inventory.ReferrerState

	crawled      bool
	crawledFresh bool
	fresh        map[string]bool
	given        *listedTags
	live         bool // listed live in this run: st.TagSubjects records the subjects
	fromDB       bool // known and listed hold the inventory's referrer tags
	// known: referrer tag -> digest where the digest needs no HEAD;
	// listed: the referrer tags the repository has.
	known  map[string]string
	listed map[string]bool
}

// read makes known and listed current for subjects.
func (t *referrerTags) read(ctx context.Context, subjects []string) error {
	if t.live {
		t.st.TagSubjects = append(t.st.TagSubjects, subjects...)
		return nil
	}
	if t.crawled || (t.given == nil && (t.crawledFresh || !slices.ContainsFunc(subjects, func(s string) bool { return !t.fresh[s] }))) {
		if t.fromDB {
			return nil
		}
		tags, err := t.l.db.Tags(ctx, t.repo.Name())
		if err != nil {
			return err
		}
		t.known, t.listed = map[string]string{}, map[string]bool{}
		for tag, dg := range tags {
			if referrer.IsTag(tag) {
				t.known[tag], t.listed[tag] = dg, true
			}
		}
		t.fromDB = true
		return nil
	}
	if err := t.list(ctx); err != nil {
		return err
	}
	t.live, t.fromDB = true, false
	t.st.TagSubjects = append([]string{}, subjects...)
	return nil
}

// list reads the repository's referrer tags from a live tag listing (the
// run's own when given); tags confirmed within the ConfirmTTL that the
// listing shows keep their digest without a HEAD.
func (t *referrerTags) list(ctx context.Context) error {
	l, st := t.l, t.st
	lt := t.given
	if lt == nil {
		var tl *registry.TagList
		err := l.fetch.request(ctx, func() error {
			l.tagRequests.Add(1)
			var err error
			tl, err = l.client.Tags(ctx, t.repo)
			return err
		})
		if err != nil {
			return err
		}
		lt = referrerTagsOf(tl)
	}
	// Copies: the trust below adds to known, and given may be shared.
	t.known, t.listed = maps.Clone(lt.known), maps.Clone(lt.listed)
	if l.opts.ConfirmTTL > 0 {
		fresh, err := l.db.FreshTags(ctx, t.repo.Name(), l.db.Now().Add(-l.opts.ConfirmTTL))
		if err != nil {
			return err
		}
		for tag, dg := range fresh {
			if _, ok := t.known[tag]; !ok && t.listed[tag] {
				t.known[tag] = dg
				if st.Trusted == nil {
					st.Trusted = map[string]bool{}
				}
				st.Trusted[tag] = true
			}
		}
	}
	return nil
}

// dropUnverified leaves out of a lookup what reaches a manifest that
// could not be verified (bad: digest -> why), as a crawl does: the bad
// manifests and the fetched indexes above them are never recorded, and
// are added to missing (sorted), so that no referrer tag or API answer
// names them; each is a warning.
func (l *lookup) dropUnverified(repo string, ms []*inventory.Manifest, missing []string, bad map[string]error) ([]*inventory.Manifest, []string) {
	if len(bad) == 0 {
		return ms, missing
	}
	why := reaching(ms, bad)
	for _, d := range slices.Sorted(maps.Keys(why)) {
		// The fetch's error names repo@digest already.
		reason := strings.TrimPrefix(bad[why[d]].Error(), repo+"@"+why[d]+": ")
		if why[d] != d {
			reason = fmt.Sprintf("child %s: %s", why[d], reason)
		}
		l.warn(fmt.Sprintf("skipped referrer %s@%s: %s", repo, d, reason))
		missing = append(missing, d)
	}
	slices.Sort(missing)
	return slices.DeleteFunc(ms, func(m *inventory.Manifest) bool { _, ok := why[m.Digest]; return ok }), missing
}

func (l *lookup) warn(w string) {
	l.mu.Lock()
	l.warnings = append(l.warnings, w)
	l.mu.Unlock()
}

// stored reads manifest dg from the inventory. A copy found damaged
// (inventory.CorruptError: its bytes no longer verify) is fetched again
// from repo, verified, repaired in the inventory and reported as a
// warning; its damaged bytes are never used.
func (l *lookup) stored(ctx context.Context, repo name.Repository, dg string) (*inventory.Manifest, error) {
	m, err := l.db.Manifest(ctx, dg)
	var ce *inventory.CorruptError
	if !errors.As(err, &ce) {
		return m, err
	}
	h, err := l.fetch.get(ctx, repo, dg)
	if err == nil {
		m, _ = h.load()
		err = l.db.RepairManifest(ctx, m)
	}
	if err != nil {
		return nil, fmt.Errorf("%w; fetching it again failed: %w", ce, err)
	}
	l.warn(fmt.Sprintf("%v: fetched again from %s and repaired", ce, repo.Name()))
	return m, nil
}

// descendants returns digests and every index child under them that the
// inventory or got knows, each once, marking them in seen. The inventory's
// manifests are read a level at a time (inventory.ManifestChildren: their
// children from their verified bytes); one whose bytes do not verify is
// fetched again and repaired (stored).
func (l *lookup) descendants(ctx context.Context, repo name.Repository, digests []string, got []*inventory.Manifest, seen map[string]bool) ([]string, error) {
	byDigest := map[string]*inventory.Manifest{}
	for _, m := range got {
		byDigest[m.Digest] = m
	}
	var out []string
	level := digests
	for len(level) > 0 { // each digest once (seen): the walk ends
		var this, ask []string
		for _, dg := range level {
			if seen[dg] {
				continue
			}
			seen[dg] = true
			out = append(out, dg)
			this = append(this, dg)
			if byDigest[dg] == nil {
				ask = append(ask, dg)
			}
		}
		children, corrupt, err := l.db.ManifestChildren(ctx, ask)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, dg := range this {
			if m := byDigest[dg]; m != nil {
				for _, c := range m.Children {
					next = append(next, c.Digest)
				}
				continue
			}
			if corrupt[dg] {
				m, err := l.stored(ctx, repo, dg)
				if err != nil {
					return nil, err
				}
				for _, c := range m.Children {
					next = append(next, c.Digest)
				}
				continue
			}
			next = append(next, children[dg]...)
		}
		level = next
	}
	return out, nil
}

// tagDigests resolves the referrer tags of subjects that the repository
// has: from known when it says, else with a HEAD (a GET when HEAD fails).
func (l *lookup) tagDigests(ctx context.Context, repo name.Repository, subjects []string, known map[string]string, listed map[string]bool, st *inventory.ReferrerState) (map[string]string, error) {
	out := map[string]string{}
	var head []string
	for _, s := range subjects {
		for _, k := range referrerKinds {
			t := referrer.Tag(s, k)
			if !listed[t] {
				continue
			}
			if dg, ok := known[t]; ok {
				out[t] = dg
			} else {
				head = append(head, t)
			}
		}
	}
	var mu gosync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.fetch.jobs)
	for _, t := range head {
		g.Go(func() error {
			var dg string
			err := l.fetch.request(gctx, func() error {
				l.tagRequests.Add(1)
				d, err := l.client.Head(gctx, repo, t)
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					m, gerr := l.client.GetManifest(gctx, repo, t)
					if gerr != nil {
						return err
					}
					d.Digest, err = m.Digest, nil
				}
				dg = d.Digest
				return err
			})
			if errors.Is(err, registry.ErrNotFound) {
				return nil // removed since the listing
			}
			if err != nil {
				return err
			}
			mu.Lock()
			out[t] = dg
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// api asks the referrers API about each subject (those checked within the
// TTL are read from the inventory instead), recording the answers in st.
func (l *lookup) api(ctx context.Context, repo name.Repository, subjects []string, checked map[string]bool, st *inventory.ReferrerState) (map[string][]string, error) {
	host := repo.RegistryStr()
	out := map[string][]string{}
	var ask []string
	for _, s := range subjects {
		api, fresh := checked[s]
		switch {
		case fresh && api:
			rs, err := l.db.Referrers(ctx, repo.Name(), s)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if r.FoundBy == inventory.FoundByAPI {
					out[s] = append(out[s], r.Digest)
				}
			}
		case fresh:
		default:
			ask = append(ask, s)
		}
	}
	var mu gosync.Mutex
	// ask records subject s's answer.
	ask1 := func(ctx context.Context, s string) error {
		rs, ok, err := l.opts.Answers.get(host, repo.Name(), s)
		if !ok {
			err = l.fetch.request(ctx, func() error {
				l.apiRequests.Add(1)
				var err error
				rs, err = l.client.Referrers(ctx, repo, s, "")
				return err
			})
		}
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, registry.ErrNoReferrersAPI) {
			l.mu.Lock()
			l.noAPI[host] = true
			l.mu.Unlock()
			st.NoAPI = append(st.NoAPI, s)
			return nil
		}
		if err != nil {
			return err
		}
		dgs := []string{}
		for _, r := range rs {
			dgs = append(dgs, r.Digest)
		}
		st.API[s], out[s] = dgs, dgs
		return nil
	}
	// The first question to a host goes alone: a registry without the API
	// then costs one request, not one per subject in flight.
	if len(ask) > 0 {
		_, ran, err := l.probes.Do(ctx, host, func() (struct{}, error) { return struct{}{}, ask1(ctx, ask[0]) })
		if err != nil {
			return nil, err
		}
		if ran {
			ask = ask[1:]
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.fetch.jobs)
	for _, s := range ask {
		g.Go(func() error {
			if l.hostHasNoAPI(host) {
				mu.Lock()
				st.NoAPI = append(st.NoAPI, s)
				mu.Unlock()
				return nil
			}
			return ask1(gctx, s)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(st.NoAPI)
	return out, nil
}
