package promote

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/hostpool"
	"github.com/cipdev/cip/internal/once"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// Report is what Promote did, per destination registry and per image.
type Report struct {
	// Interrupted says the run was cancelled (Ctrl-C) before it finished:
	// the counts are what was done by then, and nothing was verified. A
	// rerun does what is left.
	Interrupted  bool                `json:"interrupted"`
	Rows         int                 `json:"rows"`         // copy and tag rows the plan had pending
	RowsDone     int                 `json:"rows_done"`    // of those, the ones finished
	Destinations []DestinationReport `json:"destinations"` // sorted by destination
	Totals       Totals              `json:"totals"`       // the sum of Destinations
	// Images has one record per copy or tag row finished or failed, by
	// destination, image and digest (rows an interrupted run never
	// started are not there).
	Images []ImageRecord `json:"images"`
	// HTTPRequests counts every HTTP request of the run as the shared
	// transport sent it: the destinations' requests (Totals.Requests) and
	// also retries and authentication handshakes.
	HTTPRequests    int64      `json:"http_requests"`
	DurationSeconds float64    `json:"duration_seconds"`
	Verified        int        `json:"verified"` // references checked with a live HEAD at the end
	Mismatches      []Mismatch `json:"mismatches"`
	// ReferrersVerified counts the referrers put that were checked live
	// at the end (listed with their subject, or at their cosign tag).
	ReferrersVerified  int                `json:"referrers_verified"`
	ReferrerMismatches []ReferrerMismatch `json:"referrer_mismatches"`
	// Signatures are --sign-key's records, one per promoted (image,
	// digest), by image and digest (nil without --sign-key).
	Signatures []SignRecord `json:"signatures,omitempty"`
	// Warnings say what the run repaired: manifests whose bytes in the
	// inventory no longer verified, fetched again before any use (sorted).
	Warnings []string `json:"warnings"`
	// Confirmed counts the destination repositories this run wrote and
	// verified complete (recorded as confirmed, for later runs to trust).
	Confirmed int `json:"confirmed"`
}

// DestinationReport is one destination registry's part of a Report.
type DestinationReport struct {
	Destination  string `json:"destination"`
	Copied       int    `json:"copied"`        // plan rows copied (digests, with their tags)
	Tagged       int    `json:"tagged"`        // tags put
	Skipped      int    `json:"skipped"`       // plan rows already done
	Referred     int    `json:"referred"`      // referrers copied (refer rows)
	Lost         int    `json:"lost"`          // plan rows in neither source nor destination
	ManifestsPut int    `json:"manifests_put"` // manifests put by digest, index children included
	BlobsSent    int    `json:"blobs_sent"`
	BlobsMounted int    `json:"blobs_mounted"`
	BytesSent    int64  `json:"bytes_sent"`
	BytesMounted int64  `json:"bytes_mounted"`
	// Requests counts the registry API requests made for this destination:
	// its source reads and its verifying HEADs included, a retried request
	// once.
	Requests        int64    `json:"requests"`
	DurationSeconds float64  `json:"duration_seconds"`
	Errors          []string `json:"errors"`
}

// destStats accumulates one destination's report while copies run.
type destStats struct {
	name                              string
	copied, tagged, manifests         atomic.Int64
	blobsSent, blobsMounted           atomic.Int64
	bytesSent, bytesMounted, requests atomic.Int64
	rowsAll, rowsDone                 atomic.Int64
	referred                          atomic.Int64
	skipped, lost                     int
	mu                                gosync.Mutex
	errors                            []string
	finished                          time.Time
}

// engine copies plan rows. One engine per run: its once groups make every
// (repository, digest) a single writer's work.
type engine struct {
	db     *inventory.DB
	client *registry.Client
	runID  int64
	jobs   int       // parallel copies of one manifest's blobs or children
	rec    *recorder // this run's inventory writes, batched
	fan    *fanout   // source blobs read once for several destination registries
	// absent holds the destination repositories the inventory does not
	// know (the sync found them absent): nothing is there but what this run
	// puts, which the groups below track, so their blobs need no HEAD.
	absent map[string]bool
	// knownHosts holds the destination registries the inventory knows any
	// repository of (mount sources); others need no look-up.
	knownHosts map[string]bool

	// One writer per (repository, digest) and per (repository, blob), and
	// one first placement of a blob per destination host, whose value is
	// the repository it landed in (where the others mount it from).
	manifests once.Group[string, struct{}] // dstRepo@digest
	blobs     once.Group[string, struct{}] // dstRepo@blob
	hosts     once.Group[string, string]   // host + " " + blob
	// repairs fetches a corrupt manifest again once per digest.
	repairs once.Group[string, *inventory.Manifest]

	mu       gosync.Mutex
	read     map[string]*inventory.Manifest
	readSize int // bytes of the manifests in read
	warnings []string
	// complete holds dstRepo@digest for what this run put, complete: the
	// subjects referrers may follow.
	complete map[string]bool
	// tagsPut holds the manifest this run last put at each referrer tag
	// (dstRepo:tag): what liveTag answers for a repository the sync found
	// absent.
	tagsPut map[string]*inventory.Manifest
}

// Promote carries out a plan's copy and tag rows, records each finished
// copy and tag in the inventory in its own transaction, and verifies what
// it wrote with live HEADs. It refuses a plan with tag moves. Rows that fail
// do not stop the others; their errors are joined in the returned error,
// with the report filled in.
func Promote(ctx context.Context, db *inventory.DB, client *registry.Client, plan *Plan, opts Options) (*Report, error) {
	if len(plan.TagMoves) > 0 {
		return nil, &TagMoveError{Moves: plan.TagMoves}
	}
	start := time.Now()
	reqs0 := client.Transport().Requests()
	runID, err := db.StartRun(ctx, []string{"promote", fmt.Sprintf("load:%d", plan.LoadID)})
	if err != nil {
		return nil, err
	}
	e := &engine{
		db: db, client: client, runID: runID, jobs: opts.jobs(), fan: newFanout(),
		absent: map[string]bool{}, knownHosts: map[string]bool{},
		read: map[string]*inventory.Manifest{}, tagsPut: map[string]*inventory.Manifest{},
	}
	dests := map[string]*destStats{}
	var names []string
	for _, sum := range plan.Summaries() {
		st := &destStats{name: sum.Destination, finished: start}
		st.rowsAll.Store(int64(sum.Copy + sum.Tag))
		st.skipped, st.lost = sum.Skip, sum.Lost
		dests[sum.Destination] = st
		names = append(names, sum.Destination)
	}
	for _, r := range plan.Refers {
		st, ok := dests[r.Dst]
		if !ok {
			st = &destStats{name: r.Dst, finished: start}
			dests[r.Dst] = st
			names = append(names, r.Dst)
		}
		st.rowsAll.Add(1)
	}
	sort.Strings(names)
	finish := func(err error) (*Report, error) {
		return nil, errors.Join(err, db.FinishRun(context.WithoutCancel(ctx), runID, inventory.RunStats{Errors: []string{err.Error()}}))
	}
	// The copy and tag rows grouped by digest across destinations, so
	// that one digest's copies to every destination run together (the
	// fan-out reads each source blob once for all of them), and the hosts
	// interleave. A streamed plan's rows are read from the inventory into
	// a spool first: none is held, and no read of the inventory stays
	// open while the copies write to it.
	var work spool[inventory.PlanRow]
	defer work.close()
	if err := e.collect(ctx, plan, &work); err != nil {
		return finish(err)
	}
	// The referrers' destinations too (they are copied after the rows).
	for _, r := range plan.Refers {
		if err := e.note(ctx, inventory.PlanRow{Dst: r.Dst, DstRepo: r.DstRepo, Action: inventory.ActionRefer}); err != nil {
			return finish(err)
		}
	}
	e.rec = newRecorder(db, runID)

	prog := newProgress(opts.Progress, names, dests)
	var mu gosync.Mutex
	var errs []error
	var records []ImageRecord
	// What this run wrote, once, to verify: each tag it put (a tag
	// answering with the digest proves the digest complete there too), or
	// the digest when it put no tag.
	var refs spool[inventory.WantedRef]
	defer refs.close()
	rowsDone := 0
	var signRows []inventory.PlanRow // the rows done, to sign (--sign-key)
	done := map[string]bool{}        // destination repositories with a row done
	failed := map[string]bool{}      // destination repositories with a failed row
	// Rows are queued per destination host, and the hosts copied side by
	// side (the Transport bounds each host's requests in flight). More rows
	// in progress per host than its request slots: a row spends much of
	// its time between requests (its blobs before its manifest, its
	// manifest before its tags). The queues are bounded, so that a streamed
	// plan is read as the copies go.
	rows := min(rowsPerJob*e.jobs, maxRowsPerHost)
	pool := hostpool.Bounded(rows, 4*rows)
	run := func(r inventory.PlanRow) {
		st := dests[r.Dst]
		if st == nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("plan row for %s outside the plan's destinations", r.Dst))
			mu.Unlock()
			return
		}
		host, _ := inventory.SplitRepository(r.DstRepo)
		pool.Go(host, func() {
			if ctx.Err() != nil {
				return // interrupted: not started
			}
			t := &rowTally{}
			began := time.Now()
			err := e.row(withTally(ctx, t), st, r)
			end := time.Now()
			if err != nil && ctx.Err() != nil {
				return // cut off by the interrupt: neither done nor failed
			}
			st.rowsDone.Add(1)
			rec := record(r, t, began, end, err)
			if opts.OnImage != nil {
				opts.OnImage(rec)
			}
			mu.Lock()
			defer mu.Unlock()
			st.finished = end
			records = append(records, rec)
			if err != nil {
				failed[r.DstRepo] = true
				st.mu.Lock()
				st.errors = append(st.errors, err.Error())
				st.mu.Unlock()
				errs = append(errs, err)
				return
			}
			rowsDone++
			done[r.DstRepo] = true
			if opts.Signing != nil {
				signRows = append(signRows, r)
			}
			if len(r.Missing) == 0 {
				err = refs.add(inventory.WantedRef{Dst: r.Dst, Image: r.Image, Digest: r.Digest, File: r.File, Line: r.Line})
			}
			for _, t := range r.Missing {
				err = errors.Join(err, refs.add(inventory.WantedRef{Dst: r.Dst, Image: r.Image, Tag: t, Digest: r.Digest, File: r.File, Line: r.Line}))
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	// One digest's rows at a time: the blobs that several destination
	// hosts need are noted for the fan-out before its copies start.
	var group []inventory.PlanRow
	flush := func() error {
		if err := e.fanOut(ctx, group); err != nil {
			return err
		}
		for _, r := range group {
			run(r)
		}
		group = group[:0]
		return nil
	}
	err = work.each(func(r inventory.PlanRow) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(group) > 0 && group[0].Digest != r.Digest {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, r)
		return nil
	})
	if err == nil {
		err = flush()
	}
	pool.Wait()
	if err != nil && ctx.Err() == nil {
		errs = append(errs, err)
	}
	// Referrers once their subjects are complete.
	var referred []inventory.ReferRow
	if len(plan.Refers) > 0 && ctx.Err() == nil {
		var rerrs []error
		referred, rerrs = e.referrers(ctx, dests, plan.Refers)
		errs = append(errs, rerrs...)
	}
	// Then the signatures, of every promoted digest that is complete in
	// its destinations (copied now, or there before), once each.
	var signed []SignRecord
	if opts.Signing != nil && ctx.Err() == nil {
		rows := slices.Clone(signRows)
		if err := plan.Each(ctx, db, func(r inventory.PlanRow) error {
			if r.Action == inventory.ActionSkip {
				rows = append(rows, r)
			}
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
		var serrs []error
		var copied []inventory.ReferRow
		signed, copied, serrs = e.signPromoted(ctx, opts.Signing, dests, rows)
		referred = append(referred, copied...)
		errs = append(errs, serrs...)
	}
	if err := e.rec.close(); err != nil {
		errs = append(errs, err)
	}

	sortRecords(records)
	rep := &Report{Rows: work.len(), RowsDone: rowsDone, Images: append([]ImageRecord{}, records...), Mismatches: []Mismatch{}, Signatures: signed}
	if ctx.Err() == nil {
		rep.Verified = refs.len()
		prog.verifying(refs.len())
		ms, verr := verifySpool(ctx, client, &refs, e.jobs, verifyHooks{
			counter: func(dst string) *atomic.Int64 { return &dests[dst].requests },
			done:    prog.verified,
		})
		if verr != nil {
			errs = append(errs, verr)
		}
		if len(ms) > 0 {
			rep.Mismatches = ms
		}
		if len(rep.Mismatches) > 0 {
			errs = append(errs, &VerifyError{Mismatches: rep.Mismatches})
		}
		rep.ReferrersVerified = len(referred)
		rep.ReferrerMismatches = verifyReferrerRows(ctx, db, client, referred, e.jobs)
		if len(rep.ReferrerMismatches) > 0 {
			errs = append(errs, &ReferrerVerifyError{Mismatches: rep.ReferrerMismatches})
		}
		n, err := db.ConfirmTargets(ctx, plan.LoadID, confirmable(plan, done, failed, rep.Mismatches), start)
		if err != nil {
			errs = append(errs, err)
		}
		rep.Confirmed = n
	}
	prog.Stop()
	rep.Destinations = []DestinationReport{}
	for _, n := range names {
		st := dests[n]
		d := DestinationReport{
			Destination: n, Copied: int(st.copied.Load()), Tagged: int(st.tagged.Load()),
			Skipped: st.skipped, Lost: st.lost, Referred: int(st.referred.Load()), ManifestsPut: int(st.manifests.Load()),
			BlobsSent: int(st.blobsSent.Load()), BlobsMounted: int(st.blobsMounted.Load()),
			BytesSent: st.bytesSent.Load(), BytesMounted: st.bytesMounted.Load(), Requests: st.requests.Load(),
			DurationSeconds: st.finished.Sub(start).Seconds(), Errors: append([]string{}, st.errors...),
		}
		rep.Destinations = append(rep.Destinations, d)
		rep.Totals.add(d)
	}
	e.mu.Lock()
	rep.Warnings = slices.Clone(e.warnings)
	e.mu.Unlock()
	slices.Sort(rep.Warnings)
	rep.HTTPRequests = client.Transport().Requests() - reqs0
	rep.DurationSeconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		rep.Interrupted = true
		errs = append(errs, ctx.Err())
	}
	stats := inventory.RunStats{Requests: rep.HTTPRequests}
	for _, err := range errs {
		stats.Errors = append(stats.Errors, err.Error())
	}
	if err := db.FinishRun(context.WithoutCancel(ctx), runID, stats); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// row does one copy or tag row: the digest first (children before an
// index, blobs before an image, the manifest PUT by its digest), then each
// missing tag, each only after a HEAD shows it free (tag). Every request
// it sends counts for its destination's report.
func (e *engine) row(ctx context.Context, st *destStats, r inventory.PlanRow) error {
	ctx = registry.WithRequestCounter(ctx, &st.requests)
	if r.Action == inventory.ActionCopy {
		if err := e.copyManifest(ctx, st, r.SrcRepo, r.DstRepo, r.Digest); err != nil {
			return fmt.Errorf("copy %s@%s from %s: %w", r.DstRepo, r.Digest, r.SrcRepo, err)
		}
		st.copied.Add(1)
	}
	if len(r.Missing) == 0 {
		return nil
	}
	// A tag row's digest is in the destination already (and maybe no
	// longer in the source): fetch it from there when the inventory's
	// copy is found damaged.
	m, err := e.manifest(ctx, r.Digest, r.DstRepo, r.SrcRepo)
	if err != nil {
		return err
	}
	dst, err := e.client.ParseRepository(r.DstRepo)
	if err != nil {
		return err
	}
	// Tags one after another: they share one (repository, digest).
	var errs []error
	for _, tag := range r.Missing {
		if err := e.tag(ctx, dst, tag, m); err != nil {
			errs = append(errs, fmt.Errorf("tag %s:%s at %s: %w", r.DstRepo, tag, r.Digest, err))
			continue
		}
		e.rec.add(r.DstRepo, r.Digest, tag)
		st.tagged.Add(1)
	}
	return errors.Join(errs...)
}

// TagTakenError is a wanted tag that, when cip was about to put it, named
// another manifest in the destination than the plan saw: someone pushed it
// after the plan. cip never moves a tag; it leaves this one as it is.
type TagTakenError struct {
	Repository, Tag string
	Now, Wanted     string // digests
}

func (e *TagTakenError) Error() string {
	return fmt.Sprintf("%s:%s now points at %s, not %s (pushed after the plan): left as it is", e.Repository, e.Tag, e.Now, e.Wanted)
}

// tag puts m at dst:tag, once a HEAD right before shows the tag absent
// (or already at m): a tag someone pushed since the plan is refused with a
// *TagTakenError and left alone. The bytes are checked against their
// digest before they are sent.
func (e *engine) tag(ctx context.Context, dst name.Repository, tag string, m *inventory.Manifest) error {
	return e.retag(ctx, dst, tag, m, "")
}

// retag is tag for a tag cip may move: from is the digest it read there
// ("" for none), and the tag is put when a HEAD right before still shows
// it there (or absent); a tag at anything else was moved since, and is
// refused with a *TagTakenError and left alone.
func (e *engine) retag(ctx context.Context, dst name.Repository, tag string, m *inventory.Manifest, from string) error {
	release, err := e.slot(ctx)
	if err != nil {
		return err
	}
	d, err := e.client.Head(ctx, dst, tag)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		// Some registries answer HEAD badly; a GET tells the same (as a
		// crawl does).
		if got, gerr := e.client.GetManifest(ctx, dst, tag); gerr == nil || errors.Is(gerr, registry.ErrNotFound) {
			d.Digest, err = got.Digest, gerr
		}
	}
	release()
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		return err
	case d.Digest == m.Digest || digest.VerifyManifest(d.Digest, m.MediaType, m.Raw) == nil:
		return nil // already there: another run, or someone else, put it
	case from != "" && d.Digest == from:
	default:
		return &TagTakenError{Repository: dst.Name(), Tag: tag, Now: d.Digest, Wanted: m.Digest}
	}
	return e.putManifest(ctx, dst, tag, m)
}

// putTagged puts m by its digest, then at dst:tag (retag, from the digest
// the tag was read at, "" for none): the tag never names a manifest the
// registry has not confirmed by digest.
func (e *engine) putTagged(ctx context.Context, dst name.Repository, tag string, m *inventory.Manifest, from string) error {
	if err := e.putManifest(ctx, dst, m.Digest, m); err != nil {
		return err
	}
	return e.retag(ctx, dst, tag, m, from)
}

// collect puts the plan's copy and tag rows into work, by digest and
// destination, and notes for each the inventory's view of its destination
// (which repositories and registries it knows).
func (e *engine) collect(ctx context.Context, plan *Plan, work *spool[inventory.PlanRow]) error {
	keep := func(r inventory.PlanRow) error {
		if r.Action != inventory.ActionCopy && r.Action != inventory.ActionTag {
			return nil
		}
		if err := e.note(ctx, r); err != nil {
			return err
		}
		return work.add(r)
	}
	if plan.Streamed {
		var repos []string
		seen := map[string]bool{}
		err := e.db.EachPlanRow(ctx, plan.LoadID, inventory.ByDigest, func(r inventory.PlanRow) error {
			for _, repo := range []string{r.DstRepo, r.SrcRepo} {
				if repo != "" && !seen[repo] {
					seen[repo] = true
					repos = append(repos, repo)
				}
			}
			return keep(r)
		})
		if err != nil {
			return err
		}
		expectRepositories(e.client, repos, plan)
		return nil
	}
	rows := slices.Clone(plan.Rows)
	slices.SortStableFunc(rows, func(a, b inventory.PlanRow) int {
		return cmp.Or(strings.Compare(a.Digest, b.Digest), strings.Compare(a.Dst, b.Dst))
	})
	var repos []string
	for _, r := range rows {
		if err := keep(r); err != nil {
			return err
		}
		if r.Action == inventory.ActionCopy || r.Action == inventory.ActionTag {
			repos = append(repos, r.DstRepo, r.SrcRepo)
		}
	}
	expectRepositories(e.client, repos, plan)
	return nil
}

// note records, once per destination repository and host, what the
// inventory says about it: whether it knows the repository (one it does
// not is absent: nothing there but what this run puts, so its blobs need
// no HEAD), and whether it knows any repository of the host (mount
// sources). Called before the copies start.
func (e *engine) note(ctx context.Context, r inventory.PlanRow) error {
	host, _ := inventory.SplitRepository(r.DstRepo)
	if _, ok := e.knownHosts[host]; !ok {
		known, err := e.db.Repositories(ctx, host)
		if err != nil {
			return err
		}
		e.knownHosts[host] = len(known) > 0
	}
	if _, ok := e.absent[r.DstRepo]; !ok {
		has, err := e.db.HasRepository(ctx, r.DstRepo)
		if err != nil {
			return err
		}
		e.absent[r.DstRepo] = !has
	}
	return nil
}

// fanOut notes, for one digest's rows, the blobs that more than one
// destination registry needs (read once, fanned out).
func (e *engine) fanOut(ctx context.Context, rows []inventory.PlanRow) error {
	hosts := map[string]bool{}
	from := "" // a source repository of the digest
	for _, r := range rows {
		if r.Action == inventory.ActionCopy {
			host, _ := inventory.SplitRepository(r.DstRepo)
			hosts[host] = true
			from = r.SrcRepo
		}
	}
	if len(hosts) < 2 {
		return nil
	}
	blobs, err := e.blobsOf(ctx, rows[0].Digest, from)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		for h := range hosts {
			e.fan.need(b, h)
		}
	}
	return nil
}

// blobsOf lists the blobs of digest and of its children, however nested;
// from is where a damaged inventory copy is fetched again.
func (e *engine) blobsOf(ctx context.Context, digest, from string) ([]string, error) {
	m, err := e.manifest(ctx, digest, from)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range m.Blobs {
		out = append(out, b.Digest)
	}
	for _, c := range m.Children {
		bs, err := e.blobsOf(ctx, c.Digest, from)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

// manifest reads a manifest from the inventory once per run (the read
// re-hashes its bytes). A copy found damaged is fetched again from the
// first of repos that has it, verified, repaired in the inventory and
// reported as a warning; its damaged bytes are never used.
func (e *engine) manifest(ctx context.Context, digest string, repos ...string) (*inventory.Manifest, error) {
	e.mu.Lock()
	m, ok := e.read[digest]
	e.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := e.db.Manifest(ctx, digest)
	var ce *inventory.CorruptError
	if errors.As(err, &ce) {
		m, _, err = e.repairs.Do(ctx, digest, func() (*inventory.Manifest, error) { return e.repair(ctx, ce, repos) })
	}
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.read) >= manifestCache || e.readSize+len(m.Raw) > manifestCacheBytes {
		clear(e.read)
		e.readSize = 0
	}
	e.read[digest] = m
	e.readSize += len(m.Raw)
	e.mu.Unlock()
	return m, nil
}

// repair fetches the manifest of a corrupt row again from the first of
// repos that serves it (verified by registry.GetManifest), and replaces
// the row with it.
func (e *engine) repair(ctx context.Context, ce *inventory.CorruptError, repos []string) (*inventory.Manifest, error) {
	var errs []error
	for _, from := range repos {
		repo, err := e.client.ParseRepository(from)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		release, err := e.slot(ctx)
		if err != nil {
			return nil, err
		}
		raw, err := e.client.GetManifest(ctx, repo, ce.Digest)
		release()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := inventory.ParseManifest(ce.Digest, raw.MediaType, raw.Raw)
		if err == nil {
			err = e.db.RepairManifest(ctx, m)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.mu.Lock()
		e.warnings = append(e.warnings, fmt.Sprintf("%v: fetched again from %s and repaired", ce, from))
		e.mu.Unlock()
		return m, nil
	}
	return nil, fmt.Errorf("%w; fetching it again failed: %w", ce, errors.Join(errs...))
}

// manifestCache and manifestCacheBytes bound the manifests a run keeps
// read: enough for one digest's copies to every destination to share one
// read (manifests are a few KiB each), and at most 64 MiB of bytes however
// large they are (up to registry.MaxManifestSize, 4 MiB, each).
const (
	manifestCache      = 4096
	manifestCacheBytes = 64 << 20
)

// copyManifest puts digest into dstRepo, complete: an index's children
// first, an image's blobs first, then the manifest's exact bytes, by
// digest (tags follow in row, once the digest is there). Each (repository,
// digest) has one writer per run.
func (e *engine) copyManifest(ctx context.Context, st *destStats, srcRepo, dstRepo, digest string) error {
	_, _, err := e.manifests.Do(ctx, dstRepo+"@"+digest, func() (struct{}, error) {
		if !e.absent[dstRepo] {
			has, err := e.db.HasDigest(ctx, dstRepo, digest)
			if err != nil || has {
				return struct{}{}, err
			}
		}
		m, err := e.manifest(ctx, digest, srcRepo)
		if err != nil {
			return struct{}{}, err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(e.jobs)
		if m.IsIndex {
			for _, c := range m.Children {
				g.Go(func() error { return e.copyManifest(gctx, st, srcRepo, dstRepo, c.Digest) })
			}
		} else {
			for _, b := range m.Blobs {
				g.Go(func() error { return e.copyBlob(gctx, st, srcRepo, dstRepo, b) })
			}
		}
		if err := g.Wait(); err != nil {
			return struct{}{}, err
		}
		dst, err := e.client.ParseRepository(dstRepo)
		if err != nil {
			return struct{}{}, err
		}
		if err := e.putManifest(ctx, dst, digest, m); err != nil {
			return struct{}{}, err
		}
		st.manifests.Add(1)
		e.completed(dstRepo, digest)
		e.rec.add(dstRepo, digest, "")
		return struct{}{}, nil
	})
	return err
}

// copyBlob makes blob present in dstRepo: nothing when a HEAD finds it, a
// cross-repository mount when the destination host holds it elsewhere
// (landed earlier in this run, or known to the inventory), else a stream
// from the source. A repository the sync found absent gets no HEAD.
func (e *engine) copyBlob(ctx context.Context, st *destStats, srcRepo, dstRepo string, b inventory.Blob) error {
	_, _, err := e.blobs.Do(ctx, dstRepo+"@"+b.Digest, func() (struct{}, error) {
		dst, err := e.client.ParseRepository(dstRepo)
		if err != nil {
			return struct{}{}, err
		}
		host := dst.RegistryStr()
		if !e.absent[dstRepo] {
			if ok, err := e.client.BlobExists(ctx, dst, b.Digest); err != nil || ok {
				if ok {
					e.fan.placed(b.Digest, host)
				}
				return struct{}{}, err
			}
		}
		// The blob's first placement on this host, once; a placement that
		// failed is forgotten, so the next copy of the blob to this host
		// tries again as the first (with the inventory's mount source).
		landed, first, err := e.hosts.Do(ctx, host+" "+b.Digest, func() (string, error) {
			var from string
			var err error
			if e.knownHosts[host] {
				from, err = e.db.BlobRepository(ctx, host, st.name, b.Digest)
			}
			if err == nil {
				if from == dstRepo {
					from = ""
				}
				err = e.place(ctx, st, srcRepo, dst, b, from)
			}
			e.fan.placed(b.Digest, host)
			return dstRepo, err
		})
		if first {
			return struct{}{}, err
		}
		if ctx.Err() != nil {
			return struct{}{}, ctx.Err()
		}
		// Another copy placed it on this host: mount it from there (or,
		// when that failed, send it).
		from := ""
		if err == nil && landed != dstRepo {
			from = landed
		}
		return struct{}{}, e.place(ctx, st, srcRepo, dst, b, from)
	})
	return err
}

// confirmable returns the destination repositories this run wrote and
// verified without a failure, leaving out those the plan trusted (their
// other references were not seen live in this run).
func confirmable(plan *Plan, done, failed map[string]bool, mismatches []Mismatch) []string {
	skip := map[string]bool{}
	for _, t := range plan.Trusted {
		skip[t.Repository] = true
	}
	for _, m := range mismatches {
		skip[m.Destination+"/"+m.Image] = true
	}
	var out []string
	for r := range done {
		if !failed[r] && !skip[r] {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// rowsPerJob is how many plan rows of one destination host run per
// request slot: enough that every slot has a request ready when one
// finishes (a row waits on one request at a time for most of its life).
// maxRowsPerHost caps them, as sync caps its repositories per host.
const (
	rowsPerJob     = 4
	maxRowsPerHost = 64
)

// slot only checks ctx: it holds nothing, the registry Transport bounds the
// requests in flight, per host (a slot shared by all hosts would let one
// slow host hold the others' work). Its callers release what it returns.
func (e *engine) slot(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return func() {}, nil
}

// expectRepositories tells the client which repositories the copies will
// write (the plan's destination repositories among repos) and read (the
// others), so that token requests name several at once.
func expectRepositories(client *registry.Client, repos []string, plan *Plan) {
	var dsts, srcs []string
	for _, r := range repos {
		if r == "" {
			continue
		}
		if plan.isDestination(r) {
			dsts = append(dsts, r)
		} else {
			srcs = append(srcs, r)
		}
	}
	slices.Sort(dsts)
	slices.Sort(srcs)
	client.Expect(slices.Compact(dsts), true)
	client.Expect(slices.Compact(srcs), false)
}

// place mounts blob from repository from (a full name on dst's host) when
// from is set, and otherwise, or when the registry declines the mount,
// sends it: the bytes held for several destination registries when the
// fan-out holds them, else a stream from the source.
func (e *engine) place(ctx context.Context, st *destStats, srcRepo string, dst name.Repository, b inventory.Blob, from string) error {
	src, err := e.client.ParseRepository(srcRepo)
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := e.client.GetBlob(ctx, src, b.Digest)
		return rc, err
	}
	open := func() (io.ReadCloser, int64, error) {
		// Held for several destination registries: one verified read serves all.
		held, ok, err := e.fan.get(ctx, b.Digest, b.Size, fetch)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return io.NopCloser(bytes.NewReader(held)), int64(len(held)), nil
		}
		return e.client.GetBlob(ctx, src, b.Digest)
	}
	var opts registry.UploadOptions
	if from != "" {
		_, opts.MountFrom = inventory.SplitRepository(from)
	}
	up, err := e.client.UploadBlob(ctx, dst, b.Digest, open, opts)
	if err != nil {
		return err
	}
	if up.Mounted {
		st.blobsMounted.Add(1)
		st.bytesMounted.Add(b.Size)
		tally(ctx, 0, b.Size)
	} else {
		st.blobsSent.Add(1)
		st.bytesSent.Add(up.Sent)
		tally(ctx, up.Sent, 0)
	}
	return nil
}

// putManifest puts m at dst:ref (a digest or a tag), once its bytes are checked against the digest the inventory holds them
// for: damaged bytes are never sent, by digest or by tag.
func (e *engine) putManifest(ctx context.Context, dst name.Repository, ref string, m *inventory.Manifest) error {
	if err := digest.VerifyManifest(m.Digest, m.MediaType, m.Raw); err != nil {
		return fmt.Errorf("put manifest %s:%s: the inventory's bytes for %s: %w", dst.Name(), ref, m.Digest, err)
	}
	got, err := e.client.PutManifest(ctx, dst, ref, m.MediaType, m.Raw)
	if err != nil {
		return err
	}
	if got != m.Digest && digest.VerifyManifest(got, m.MediaType, m.Raw) != nil {
		return fmt.Errorf("put manifest %s:%s: the inventory's bytes for %s have digest %s", dst.Name(), ref, m.Digest, got)
	}
	if referrer.IsTag(ref) {
		e.mu.Lock()
		e.tagsPut[dst.Name()+":"+ref] = m
		e.mu.Unlock()
	}
	return nil
}
