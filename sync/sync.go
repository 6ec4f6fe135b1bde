// Package sync crawls registries into the inventory, incrementally.
//
// For each repository it lists tags (using GCR's tags/list extension when
// the registry offers it, which also names untagged digests), HEADs each
// tag to learn its digest, and GETs a manifest only when its digest is new
// to the inventory: digests are content addresses, so a re-sync of an
// unchanged registry fetches no manifest at all. Elsewhere, the digests the
// inventory knows the repository holds untagged (cip put them there, or a
// live HEAD found them) are confirmed with a HEAD by digest each, and kept
// unless the registry answers 404. Manifest lists and OCI
// indexes are followed to their children, however nested. Each repository
// is written in one short transaction after all of its reads, so an
// interrupted sync leaves a consistent inventory and a rerun completes it.
package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/hostpool"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultJobs is the default work per registry host, for crawls and
// promotions alike: the registry Transport's default requests in flight per
// host (see registry.DefaultJobs for where the number comes from).
const DefaultJobs = registry.DefaultJobs

// reposPerJob is how many repositories of one host are crawled per request
// slot: enough that a slot freed by one repository finds another's request
// ready. maxReposPerHost caps them: 64 repositories, each waiting on one
// request at a time, keep 32 slots busy, and a crawl at --jobs 128 need
// not hold 512 repositories of each host at once.
const (
	reposPerJob     = 4
	maxReposPerHost = 64
)

// staggered orders repositories for crawling: each host's in name order,
// but starting at an offset that grows with the host's rank (host k of n
// starts k/n of the way into its list, and wraps around). Mirrors hold the
// same repositories; crawled in the same order, they would all need the
// same new manifests at the same moment and the fastest host would GET
// nearly all of them (one GET serves every repository that needs a
// digest) while the others waited on it. Staggered, each host reaches
// different digests first, and the GETs spread over the hosts.
func staggered(repos []string) []string {
	by := map[string][]string{}
	var hosts []string
	for _, r := range repos {
		h := hostOf(r)
		if _, ok := by[h]; !ok {
			hosts = append(hosts, h)
		}
		by[h] = append(by[h], r)
	}
	sort.Strings(hosts)
	out := make([]string, 0, len(repos))
	for k, h := range hosts {
		list := by[h]
		off := k * len(list) / len(hosts)
		out = append(out, list[off:]...)
		out = append(out, list[:off]...)
	}
	return out
}

// hostOf returns the registry host of a full repository name.
func hostOf(repo string) string {
	host, _ := inventory.SplitRepository(repo)
	return host
}

// Target is something to crawl: a registry host, a path prefix, or (Exact)
// one repository that is crawled without consulting the catalog.
type Target struct {
	Ref   string
	Exact bool
}

// Options configures Run (and Digests, which reads only Jobs).
type Options struct {
	// Jobs bounds the work in progress per registry host: repositories
	// crawled at once (4 per job) and parallel reads of one repository;
	// the requests in flight per host are the registry Transport's (its
	// Jobs). 0 means DefaultJobs.
	Jobs int
	// Progress follows the crawl (a live status line); nil for none.
	Progress Progress
	// ConfirmTTL lets the crawl of a known repository take a tag the
	// registry still lists from the inventory, without a HEAD, when cip
	// confirmed its digest less than ConfirmTTL ago (a crawl, or its own
	// PUT). 0 confirms every listed tag. New tags, and tags the inventory
	// had confirmed longer ago, are HEADed as always; a tag moved by
	// someone else within the TTL goes unnoticed until it expires (or
	// `cip verify`). Promotions use the same TTL for whole repositories
	// (promote.Options.ConfirmTTL).
	ConfirmTTL time.Duration
	// TrustReferrerTags takes a referrer tag (sha256-<hex>, and cosign's
	// .sig, .att, .sbom) that the registry still lists from the inventory,
	// without a HEAD, when the inventory has it, however long ago it was
	// confirmed. Promotion sets it for destinations: the referrer tags
	// there are cip's own (it records each it puts, and moves them only by
	// merging), so HEADing them again costs a request per signed digest per
	// destination on every run for nothing; cip verify checks them live.
	// A new referrer tag is HEADed as always.
	TrustReferrerTags bool
}

// RegistryStats summarises one registry's crawl.
type RegistryStats struct {
	Registry         string
	Repositories     int
	Removed          int // repositories that vanished
	Tags             int
	ManifestsFetched int
	TagChanges       int
}

// Result is what Run did.
type Result struct {
	RunID      int64
	Registries []RegistryStats // sorted by registry
	// Changes lists the run's tag changes, sorted by repository and tag,
	// when there are at most MaxChanges of them; past that it is nil and
	// ChangesOmitted is set (a first crawl of 22 mirrors adds every one of
	// their ~1M tags, which held 51 MB and the listings' digests with
	// them). Every change is in the inventory's tag_history either way,
	// and RegistryStats.TagChanges counts them.
	Changes        []inventory.TagChange
	ChangesOmitted bool
	Requests       int64
	Duration       time.Duration
	// Warnings name what the crawl skipped and why, sorted: repository
	// names and tags cip's own rules refuse (manifest.ValidateImageName,
	// ValidateTag), and tags whose manifest (or a child of it) cannot be
	// verified or read. Nothing skipped is recorded; the rest of the
	// repository is.
	Warnings []string
}

// RepoError is a failure to crawl one repository; the others go on.
type RepoError struct {
	Repository string
	Err        error
}

func (e *RepoError) Error() string { return fmt.Sprintf("sync %s: %v", e.Repository, e.Err) }
func (e *RepoError) Unwrap() error { return e.Err }

// Run crawls targets into db and returns what it did (cmd/app prints it).
// Repositories that fail are reported in the returned error (errors.Join
// of *RepoError) after every other repository has been written; the Result
// is returned with them.
func Run(ctx context.Context, db *inventory.DB, client *registry.Client, targets []Target, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Jobs <= 0 {
		opts.Jobs = DefaultJobs
	}
	refs := make([]string, len(targets))
	for i, t := range targets {
		refs[i] = t.Ref
	}
	runID, err := db.StartRun(ctx, refs)
	if err != nil {
		return nil, err
	}
	// Its own requests, not those of work beside it on the same Transport.
	var reqs atomic.Int64
	ctx = registry.WithAttemptCounter(ctx, &reqs)
	s := &syncer{
		db: db, client: client, opts: opts, runID: runID,
		stats:  map[string]*RegistryStats{},
		writer: newWriter(db, runID),
	}
	s.fetch = newFetcher(db, client, opts.Jobs).storing(s.writer.manifests)
	stop := s.startProgress()
	defer stop()

	repos, removable, derr := s.discover(ctx, targets)
	var errs []error
	errs = append(errs, derr...)

	// The run's token requests may name several repositories at once.
	client.Expect(repos, false)
	// Repositories are queued per host and the hosts crawled side by side
	// (the Transport bounds each host's requests in flight). More
	// repositories in progress per host than its request slots: a
	// repository waits on one request at a time for part of its crawl (its
	// tag listing, its index children, its write).
	pool := hostpool.New(min(reposPerJob*opts.Jobs, maxReposPerHost))
	var mu gosync.Mutex
	for _, repo := range staggered(repos) {
		pool.Go(hostOf(repo), func() {
			if ctx.Err() != nil {
				return
			}
			if err := s.syncRepository(ctx, repo); err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, &RepoError{Repository: repo, Err: err})
				mu.Unlock()
			}
		})
	}
	pool.Wait()
	s.writer.close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, repo := range removable {
		changes, err := db.RemoveRepository(ctx, runID, repo)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st := s.stat(repo)
		st.Removed++
		st.TagChanges += len(changes)
		s.keepChanges(changes)
	}

	res := &Result{RunID: runID, Requests: reqs.Load(), Duration: time.Since(start)}
	for _, st := range s.stats {
		res.Registries = append(res.Registries, *st)
	}
	sort.Slice(res.Registries, func(i, j int) bool { return res.Registries[i].Registry < res.Registries[j].Registry })
	sort.Slice(s.changes, func(i, j int) bool {
		a, b := s.changes[i], s.changes[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		return a.Tag < b.Tag
	})
	res.Changes, res.ChangesOmitted = s.changes, s.changesOmitted
	res.Warnings = slices.Clone(s.warnings)
	slices.Sort(res.Warnings)
	stop()

	stats := inventory.RunStats{Requests: res.Requests}
	for _, st := range res.Registries {
		stats.Repositories += st.Repositories
		stats.Tags += st.Tags
		stats.ManifestsFetched += st.ManifestsFetched
	}
	for _, e := range errs {
		stats.Errors = append(stats.Errors, e.Error())
	}
	// Record the run even when the caller's context was cancelled.
	if err := db.FinishRun(context.WithoutCancel(ctx), runID, stats); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

type syncer struct {
	db     *inventory.DB
	client *registry.Client
	opts   Options
	runID  int64
	fetch  *fetcher // the run's manifests, and its request slots
	writer *writer

	mu      gosync.Mutex
	stats   map[string]*RegistryStats
	changes []inventory.TagChange
	// changesOmitted: more than MaxChanges changed; changes is dropped.
	changesOmitted bool
	warnings       []string

	reposDone atomic.Int64
	reposAll  atomic.Int64
	tagsSeen  atomic.Int64
}

func (s *syncer) stat(repo string) *RegistryStats {
	reg, _ := inventory.SplitRepository(repo)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stats[reg]
	if !ok {
		st = &RegistryStats{Registry: reg}
		s.stats[reg] = st
	}
	return st
}

// warn records something the crawl skipped.
func (s *syncer) warn(format string, args ...any) {
	s.mu.Lock()
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// request runs f (the fetcher's request: no slot of its own).
func (s *syncer) request(ctx context.Context, f func() error) error {
	return s.fetch.request(ctx, f)
}

// discover turns targets into repositories to crawl, and lists known
// repositories that a complete listing no longer shows (to be removed).
func (s *syncer) discover(ctx context.Context, targets []Target) (repos, removable []string, errs []error) {
	seen := map[string]bool{}
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			repos = append(repos, r)
		}
	}
	for _, t := range targets {
		ref := strings.TrimSuffix(t.Ref, "/")
		host, path := inventory.SplitRepository(ref)
		if t.Exact {
			if path == "" {
				errs = append(errs, fmt.Errorf("sync %s: not a repository (no path after the host)", ref))
				continue
			}
			add(ref)
			continue
		}
		found, complete, err := s.list(ctx, host, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range found {
			add(r)
		}
		if complete {
			known, err := s.db.Repositories(ctx, ref)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, k := range known {
				if !seen[k] {
					removable = append(removable, k)
				}
			}
		}
	}
	sort.Strings(repos)
	sort.Strings(removable)
	s.reposAll.Store(int64(len(repos)))
	return repos, removable, errs
}

// list finds the repositories at or below host/path: from the catalog when
// the registry serves one, else by walking GCR's child lists, else path is
// taken as one repository. complete says whether the listing can be
// trusted to show every repository (so absent ones were deleted).
func (s *syncer) list(ctx context.Context, host, path string) (repos []string, complete bool, err error) {
	reg, err := s.client.ParseRegistry(host)
	if err != nil {
		return nil, false, err
	}
	prefix := host
	if path != "" {
		prefix = host + "/" + path
	}
	cat, cerr := s.client.Catalog(ctx, reg)
	if cerr == nil {
		for _, r := range cat {
			if err := manifest.ValidateImageName(r); err != nil {
				s.warn("skipped repository %q listed by %s: %v", r, host, err)
				continue
			}
			full := host + "/" + r
			if inventory.Under(full, prefix) {
				repos = append(repos, full)
			}
		}
		if len(repos) > 0 || path == "" {
			return repos, true, nil
		}
	}
	if path == "" || refused(cerr) {
		return nil, false, fmt.Errorf("list repositories of %s: %w", host, cerr)
	}
	// No catalog (or nothing in it below the prefix): walk GCR children.
	var found int
	walked, werr := s.walk(ctx, prefix, &found)
	if werr != nil {
		if errors.Is(werr, registry.ErrNotFound) {
			// Nothing there: one (absent) repository, crawled to notice removal.
			return []string{prefix}, false, nil
		}
		return nil, false, werr
	}
	return walked, cerr == nil, nil
}

// walk lists repo and its GCR children recursively; a registry without the
// extension yields just repo. found counts the repositories of the whole
// walk, which the catalog's cap bounds: a registry naming children without
// end (or ever deeper) is refused, not followed.
func (s *syncer) walk(ctx context.Context, repo string, found *int) ([]string, error) {
	if *found++; *found > s.client.MaxRepositories() {
		return nil, fmt.Errorf("list repositories below %s: %w: more than %d (--max-repositories)", repo, registry.ErrListTooLarge, s.client.MaxRepositories())
	}
	r, err := s.client.ParseRepository(repo)
	if err != nil {
		return nil, err
	}
	tl, err := s.client.Tags(ctx, r)
	if err != nil {
		return nil, err
	}
	out := []string{repo}
	for _, c := range tl.Children {
		if err := manifest.ValidateImageName(c); err != nil || strings.Contains(c, "/") {
			if err == nil {
				err = errors.New("a child is one path component")
			}
			s.warn("skipped child repository %q listed by %s: %v", c, repo, err)
			continue
		}
		sub, err := s.walk(ctx, repo+"/"+c, found)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// syncRepository crawls one repository and writes it in one transaction.
func (s *syncer) syncRepository(ctx context.Context, repoName string) error {
	defer s.reposDone.Add(1)
	repo, err := s.client.ParseRepository(repoName)
	if err != nil {
		return err
	}
	tl, err := s.client.Tags(ctx, repo)
	if errors.Is(err, registry.ErrNotFound) {
		// No tag listing: the repository does not exist (any more), or it
		// holds only untagged manifests (docker-registry answers
		// NAME_UNKNOWN then), which the inventory may know.
		untagged, err := s.confirmUntagged(ctx, repo, nil)
		if err != nil {
			return err
		}
		if len(untagged) > 0 {
			state := inventory.RepositoryState{Name: repoName, Tags: map[string]string{}, Untagged: untagged}
			changes, err := s.writer.write(state)
			if err != nil {
				return err
			}
			s.record(repoName, 0, 0, changes, true)
			return nil
		}
		changes, err := s.db.RemoveRepository(ctx, s.runID, repoName)
		if err != nil {
			return err
		}
		s.record(repoName, 0, 0, changes, false)
		return nil
	}
	if err != nil {
		return err
	}

	state := inventory.RepositoryState{Name: repoName, Tags: map[string]string{}}
	tagGets := 0 // manifests fetched by tag
	if tl.Manifests != nil {
		// GCR extension: digests and their tags without a HEAD per tag.
		for dg, m := range tl.Manifests {
			if err := digest.Validate(dg); err != nil {
				s.warn("skipped %s@%s (tags %q): %v", repoName, dg, m.Tags, err)
				continue
			}
			tags := s.validTags(repoName, m.Tags)
			if len(tags) == 0 {
				state.Untagged = append(state.Untagged, dg)
			}
			for _, t := range tags {
				state.Tags[t] = dg
			}
		}
		sort.Strings(state.Untagged)
	} else {
		tl.Tags = s.validTags(repoName, tl.Tags)
		// A repository new to the inventory has (nearly) every manifest to
		// fetch: GET each tag's manifest at once (its digest is the body's),
		// one request instead of a HEAD and a GET. Known repositories HEAD
		// their tags and GET only new digests.
		known, err := s.db.HasRepository(ctx, repoName)
		if err != nil {
			return err
		}
		if known {
			toHead := tl.Tags
			if s.opts.ConfirmTTL > 0 || s.opts.TrustReferrerTags {
				fresh, ferr := s.trustedTags(ctx, repoName)
				if ferr != nil {
					return ferr
				}
				toHead = nil
				for _, tag := range tl.Tags {
					if dg, ok := fresh[tag]; ok {
						state.Tags[tag] = dg
						if state.Trusted == nil {
							state.Trusted = map[string]bool{}
						}
						state.Trusted[tag] = true
					} else {
						toHead = append(toHead, tag)
					}
				}
			}
			if err = s.headTags(ctx, repo, toHead, state.Tags); err == nil {
				state.Untagged, err = s.confirmUntagged(ctx, repo, state.Tags)
			}
		} else {
			tagGets, err = s.getTags(ctx, repo, tl.Tags, state.Tags)
		}
		if err != nil {
			return err
		}
	}
	s.tagsSeen.Add(int64(len(state.Tags)))

	roots := make([]string, 0, len(state.Tags)+len(state.Untagged))
	for _, dg := range state.Tags {
		roots = append(roots, dg)
	}
	roots = append(roots, state.Untagged...)
	fresh, nfetched, _, bad, err := s.fetch.fetchNew(ctx, repo, roots, false)
	if err != nil {
		return err
	}
	state.New = s.dropUnverified(&state, fresh, bad)
	changes, err := s.writer.write(state)
	if err != nil {
		return err
	}
	s.fetch.written(state.New)
	s.record(repoName, len(state.Tags), tagGets+nfetched, changes, true)
	return nil
}

// trustedTags are the tags of repo that a crawl may take from the
// inventory: those confirmed within the ConfirmTTL, and with
// TrustReferrerTags every referrer tag it has.
func (s *syncer) trustedTags(ctx context.Context, repo string) (map[string]string, error) {
	fresh := map[string]string{}
	if s.opts.ConfirmTTL > 0 {
		var err error
		if fresh, err = s.db.FreshTags(ctx, repo, s.db.Now().Add(-s.opts.ConfirmTTL)); err != nil {
			return nil, err
		}
	}
	if s.opts.TrustReferrerTags {
		all, err := s.db.Tags(ctx, repo)
		if err != nil {
			return nil, err
		}
		for tag, dg := range all {
			if referrer.IsTag(tag) {
				fresh[tag] = dg
			}
		}
	}
	return fresh, nil
}

func (s *syncer) record(repo string, tags, fetched int, changes []inventory.TagChange, exists bool) {
	st := s.stat(repo)
	s.mu.Lock()
	defer s.mu.Unlock()
	if exists {
		st.Repositories++
	} else if len(changes) > 0 {
		st.Removed++
	}
	st.Tags += tags
	st.ManifestsFetched += fetched
	st.TagChanges += len(changes)
	s.keepChanges(changes)
}

// MaxChanges bounds the tag changes a Result lists.
const MaxChanges = 10000

// maxChanges is MaxChanges; tests lower it.
var maxChanges = MaxChanges

// keepChanges adds changes to the Result's (under s.mu while the crawl
// runs) until there are more than maxChanges: then none are kept.
func (s *syncer) keepChanges(changes []inventory.TagChange) {
	if s.changesOmitted || len(changes) == 0 {
		return
	}
	if len(s.changes)+len(changes) > maxChanges {
		s.changes, s.changesOmitted = nil, true
		return
	}
	s.changes = append(s.changes, changes...)
}

// headTags learns each tag's digest with a HEAD, in parallel.
func (s *syncer) headTags(ctx context.Context, repo name.Repository, tags []string, out map[string]string) error {
	var mu gosync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for _, tag := range tags {
		g.Go(func() error {
			var dg string
			err := s.request(gctx, func() error {
				d, err := s.client.Head(gctx, repo, tag)
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					// Some registries answer HEAD badly; GET tells the same.
					m, gerr := s.client.GetManifest(gctx, repo, tag)
					if gerr != nil {
						if unverified(gerr) {
							return gerr
						}
						return err
					}
					d.Digest = m.Digest
					err = nil
				}
				if err != nil {
					return err
				}
				dg = d.Digest
				return nil
			})
			if errors.Is(err, registry.ErrNotFound) {
				return nil // deleted between listing and HEAD
			}
			if unverified(err) {
				s.warn("skipped %s:%s: %v", repo.Name(), tag, err)
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			out[tag] = dg
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// getTags learns each tag's digest with a GET of its manifest, in
// parallel, and keeps the manifests for fetchNew (the run's manifests).
// It returns how many digests new to the run it fetched.
func (s *syncer) getTags(ctx context.Context, repo name.Repository, tags []string, out map[string]string) (int, error) {
	var mu gosync.Mutex
	var fresh atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for _, tag := range tags {
		g.Go(func() error {
			var raw registry.Manifest
			var m *inventory.Manifest
			release := func() {}
			err := s.request(gctx, func() error {
				var err error
				if raw, err = s.client.GetManifest(gctx, repo, tag); err != nil {
					return err
				}
				if m, err = inventory.ParseManifest(raw.Digest, raw.MediaType, raw.Raw); err != nil {
					return err
				}
				release, err = s.fetch.admit(gctx, m)
				return err
			})
			if errors.Is(err, registry.ErrNotFound) {
				return nil // deleted between listing and GET
			}
			if err == nil {
				var isNew bool
				if isNew, err = s.fetch.keep(gctx, m); isNew {
					fresh.Add(1)
				}
				release()
			}
			if unverified(err) {
				s.warn("skipped %s:%s: %v", repo.Name(), tag, err)
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s:%s: %w", repo.Name(), tag, err)
			}
			mu.Lock()
			out[tag] = raw.Digest
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return int(fresh.Load()), err
}

// refused says whether a catalog's error is one a walk of GCR's child lists
// would only repeat or hide: a listing refused for its size or its loop, or
// a host that cannot be reached, timed out or was given up.
func refused(err error) bool {
	var ce *registry.ConnectError
	var te *registry.TimeoutError
	var ge *registry.GivenUpError
	return errors.Is(err, registry.ErrListTooLarge) || errors.Is(err, registry.ErrListLoop) ||
		errors.As(err, &ce) || errors.As(err, &te) || errors.As(err, &ge)
}

// validTags returns the tags that cip's own tag rule
// (manifest.ValidateTag, the OCI distribution grammar) accepts, and warns
// about the others: a tag with a space, a newline, a NUL or 300 characters
// is never recorded, so that no snapshot writes one.
func (s *syncer) validTags(repo string, tags []string) []string {
	out := tags[:0:0]
	for _, t := range tags {
		if err := manifest.ValidateTag(t); err != nil {
			s.warn("skipped tag %q of %s: %v", t, repo, err)
			continue
		}
		out = append(out, t)
	}
	return out
}

// unverified reports whether err is about a manifest cip cannot verify
// or read (a digest algorithm it does not check, a schema 1 manifest
// neither digest rule verifies, bytes that are no manifest): its tag is
// skipped with a warning and the rest of the repository is synced. Other
// errors (bytes that hash to another digest, network failures) fail the
// repository, as the inventory must not record a partial crawl of them.
func unverified(err error) bool {
	return errors.Is(err, digest.ErrUnsupported) || errors.Is(err, digest.ErrUnverifiable) || errors.Is(err, inventory.ErrBadManifest)
}

// dropUnverified removes from a crawl what reaches a manifest that could
// not be verified (bad: digest -> why): the tags and untagged digests
// whose manifest, or some child of it, is bad, with a warning each, and
// the fetched manifests above a bad one (an index must never be recorded
// without its children). It returns the manifests to record.
func (s *syncer) dropUnverified(st *inventory.RepositoryState, fresh []*inventory.Manifest, bad map[string]error) []*inventory.Manifest {
	if len(bad) == 0 {
		return fresh
	}
	// why[d] is the bad digest d reaches.
	why := reaching(fresh, bad)
	reason := func(d string) string {
		b := why[d]
		if b == d {
			return bad[b].Error()
		}
		return fmt.Sprintf("child %s: %v", b, bad[b])
	}
	for tag, d := range st.Tags {
		if _, ok := why[d]; ok {
			s.warn("skipped %s:%s: %s", st.Name, tag, reason(d))
			delete(st.Tags, tag)
		}
	}
	st.Untagged = slices.DeleteFunc(st.Untagged, func(d string) bool {
		if _, ok := why[d]; ok {
			s.warn("skipped %s@%s: %s", st.Name, d, reason(d))
			return true
		}
		return false
	})
	return slices.DeleteFunc(fresh, func(m *inventory.Manifest) bool {
		_, ok := why[m.Digest]
		return ok
	})
}
