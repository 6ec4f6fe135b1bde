// Package promote copies the digests promoter manifests name from their
// source registry into every destination registry, preserving digests byte
// for byte, and verifies the result.
//
// The plan is SQL: MakePlan loads the manifests into the inventory's M
// tables (inventory.LoadRoutes) and reads the plan view (see
// migrations/0003_plan_normalised.sql and docs/schema.md), one row per
// (destination registry, image, digest) with an action: skip, tag, copy or
// lost; skip rows are counted per destination and listed only when few. Tag
// moves (a wanted tag that a destination has at another digest) refuse the
// whole run before any write. Promote carries out the copy and tag rows;
// Verify checks every promised reference with a live HEAD.
//
// MakePlan syncs what the plan needs first, incrementally: every
// destination repository, then only the source repositories of digests no
// destination holds (a run with nothing to copy never reads the source).
package promote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	"github.com/cipdev/cip/sign"
	cipsync "github.com/cipdev/cip/sync"
)

// Options configures MakePlan, Promote and Verify.
type Options struct {
	// Jobs bounds the work in progress per destination host (4 rows per
	// job) and the parallel copies of one manifest's blobs or children;
	// requests in flight per host are the registry Transport's. 0 means
	// sync.DefaultJobs.
	Jobs int
	// Progress follows Promote's copies (a live status line); nil for none.
	Progress Progress
	// OnImage, when set, hears of each copy or tag row Promote finishes or
	// fails, as it happens (a CI log line each). It is called from the
	// copying goroutines, so it must be safe for concurrent use, and cheap.
	OnImage func(ImageRecord)
	// SyncProgress follows MakePlan's syncs; nil for none.
	SyncProgress cipsync.Progress
	// ConfirmTTL is how long a live confirmation is trusted. A destination
	// repository whose wanted content is what cip last confirmed there
	// (crawled complete, or written and verified), less than ConfirmTTL
	// ago, is planned from the inventory with no request; the syncs of the
	// others take tags confirmed less than ConfirmTTL ago from the
	// inventory (sync.Options.ConfirmTTL). 0 confirms everything live.
	ConfirmTTL time.Duration
	// Full confirms everything live whatever ConfirmTTL says (what
	// `cip verify` always does).
	Full bool
	// Offline plans from the inventory as it stands: MakePlan sends no
	// request (no sync, no probe), so a stale inventory gives a stale plan.
	// For dry runs after a `cip sync`, and for measuring the plan itself.
	Offline bool
	// Referrers chooses the referrers (signatures, attestations, SBOMs,
	// ...) that travel with each promoted digest. The zero value is none;
	// cip passes referrer.All unless told otherwise.
	Referrers referrer.Selection
	// Signatures, when set, is the --signature-policy: MakePlan checks
	// the signatures of every digest it would write against it and
	// refuses the plan (a *SignatureError) when any fails. Online only:
	// signature blobs are read from the sources.
	Signatures *sign.Policy
	// Signing, when set, is --sign-key: Promote signs what it promoted.
	Signing *Signing
}

func (o Options) jobs() int {
	if o.Jobs <= 0 {
		return cipsync.DefaultJobs
	}
	return o.Jobs
}

// Plan is one load of manifests and the plan rows read from it.
type Plan struct {
	LoadID int64
	// Rows are the copy, tag and lost rows, and the skip rows when there
	// are at most MaxSkipRows of them; by destination, image, digest. A
	// plan with more than MaxPlanRows rows that are not skip holds none
	// (Streamed): Each reads them from the inventory, and Promote streams
	// them to the copy engine.
	Rows     []inventory.PlanRow
	Streamed bool
	TagMoves []inventory.TagMove // by destination, image, tag
	// Counts holds every destination's action counts (skip rows included,
	// listed or not), by destination.
	Counts []Summary
	// Syncs are the syncs MakePlan ran, in order (destinations, then the
	// sources when anything was missing), for the caller to report.
	Syncs []*cipsync.Result
	// Refers are the referrers to copy (action refer), by destination,
	// image, wanted digest, depth, subject and referrer.
	Refers []inventory.ReferRow
	// Referrers is what the look-ups of referrers found (nil when none ran).
	Referrers []*cipsync.ReferrersFound
	// Signatures are the signature policy's checks, by image and digest
	// (nil without a policy).
	Signatures []SignatureCheck
	// Trusted are the destination repositories planned from the inventory
	// with no request (ConfirmTTL), by repository, with when cip last
	// confirmed each.
	Trusted []inventory.TrustedTarget
	// Confirmed counts the destination repositories this plan's syncs
	// found complete (recorded as confirmed, for later runs to trust).
	Confirmed int

	byDst map[string]int // destination -> index in Counts, made on first use
}

// MaxSkipRows is how many skip rows a plan lists in detail: a small plan
// shows everything; a steady-state plan of a large manifest set (hundreds
// of thousands of rows, nearly all skip) lists its pending rows and counts
// the rest per destination. The plan view in the inventory has them all.
const MaxSkipRows = 1000

// MaxPlanRows is how many rows that are not skip a plan holds: a few MB.
// A larger plan (a first promotion into empty mirrors: 718,938 rows at
// registry.k8s.io, over 400 MB held) is streamed from the inventory
// instead, to the output and to the copy engine.
const MaxPlanRows = 20000

// planRows and spoolRows are MaxPlanRows as the code uses it; tests lower
// them to exercise streamed plans and spools with a few rows.
var planRows, spoolRows = MaxPlanRows, MaxPlanRows

// Pending counts the rows that need writes (copy, tag and refer).
func (p *Plan) Pending() int {
	n := len(p.Refers)
	for _, c := range p.Counts {
		n += c.Copy + c.Tag
	}
	return n
}

// Lost counts the rows in neither source nor destination (Each lists them).
func (p *Plan) Lost() int {
	n := 0
	for _, c := range p.Counts {
		n += c.Lost
	}
	return n
}

// Each calls fn with each row of the plan (those that are not skip, and
// the skip rows it lists) by destination, image and digest: the rows it
// holds, or for a Streamed plan the rows read again from db, holding
// none. It stops at fn's first error.
func (p *Plan) Each(ctx context.Context, db *inventory.DB, fn func(inventory.PlanRow) error) error {
	if p.Streamed {
		return db.EachPlanRow(ctx, p.LoadID, inventory.ByDestination, fn)
	}
	for _, r := range p.Rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Summary counts a plan's actions for one destination.
type Summary struct {
	Destination string `json:"destination"`
	Copy        int    `json:"copy"`
	Tag         int    `json:"tag"`
	Skip        int    `json:"skip"`
	Lost        int    `json:"lost"`
	Refer       int    `json:"refer"` // referrers to copy
	// Trusted counts the destination's repositories planned from the
	// inventory with no request; TrustedSince is the oldest of their
	// confirmations (nil when none is trusted).
	Trusted      int        `json:"trusted"`
	TrustedSince *time.Time `json:"trusted_since,omitempty"`
}

// Summaries counts actions per destination (every row, listed or not),
// sorted by destination: a copy of Counts.
func (p *Plan) Summaries() []Summary {
	return append([]Summary(nil), p.Counts...)
}

// TagMoveError refuses a plan in which wanted tags exist in a destination
// at another digest: cip never moves a tag.
type TagMoveError struct {
	Moves []inventory.TagMove
}

func (e *TagMoveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tag move(s) refused (a promoted tag never moves):", len(e.Moves))
	for _, m := range e.Moves {
		fmt.Fprintf(&b, "\n  %s:%d: %s/%s:%s is at %s, manifest wants %s", m.File, m.Line, m.Dst, m.Image, m.Tag, m.DigestNow, m.DigestWanted)
	}
	return b.String()
}

// LostError reports rows in neither their source nor their destination: a
// promotion that ends with one has not delivered what the manifests
// promise, so `cip promote` fails with it after doing the rest (unless
// --allow-lost).
type LostError struct {
	Rows []inventory.PlanRow
}

func (e *LostError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d digest(s) lost: in neither the source nor the destination (--allow-lost to only warn):", len(e.Rows))
	for _, r := range e.Rows {
		fmt.Fprintf(&b, "\n  %s:%d: %s/%s@%s is not in %s/%s", r.File, r.Line, r.Dst, r.Image, r.Digest, r.Src, r.Image)
	}
	return b.String()
}

// Routes turns a manifest set into the inventory's M routes: one per
// manifest, unflattened.
func Routes(set *manifest.Set) []inventory.Route {
	out := make([]inventory.Route, 0, len(set.Manifests))
	for i := range set.Manifests {
		m := &set.Manifests[i]
		r := inventory.Route{Src: m.Source().Name, File: m.ImagesFile, Images: make([]inventory.WantedImage, len(m.Images))}
		for _, d := range m.Destinations() {
			r.Dsts = append(r.Dsts, d.Name)
		}
		for j, img := range m.Images {
			wi := inventory.WantedImage{Name: img.Name, Digests: make([]inventory.WantedDigest, len(img.Digests))}
			for k, d := range img.Digests {
				wi.Digests[k] = inventory.WantedDigest{Digest: d.Digest, Tags: d.Tags, Line: d.Line}
			}
			r.Images[j] = wi
		}
		out = append(out, r)
	}
	return out
}

// MakePlan loads set into the inventory (origin names it: a file or
// directory), syncs the destination repositories it names (but those it
// trusts, see Options.ConfirmTTL), reads the plan,
// syncs the source repositories of its copy and lost rows and reads it
// again, settles digests a tag listing cannot show, and returns the
// plan. When any wanted tag would move it returns the plan and a
// *TagMoveError.
//
// A registry's tag listing (outside GCR's extension) does not show untagged
// manifests, so a tagless promotion (or a copy cut off before its tags)
// would look absent after a sync. For each copy or lost row whose
// destination repository exists (or that wants no tag), MakePlan looks the
// digest up there, and for each lost row in the source (sync.Digests: a
// HEAD when the inventory has the manifest, else a GET, with its missing
// children); it records what it finds: a few reads that let tagless
// entries be copied and keep a rerun from writing again.
//
// With opts.Offline it only loads and reads the plan (and the tag moves)
// from the inventory as it stands.
//
// When it fails after a sync ran, MakePlan returns a Plan holding only the
// Syncs, with the error.
func MakePlan(ctx context.Context, db *inventory.DB, client *registry.Client, set *manifest.Set, origin string, opts Options) (*Plan, error) {
	start := db.Now()
	var syncs []*cipsync.Result
	synced := func(res *cipsync.Result, err error) error {
		if res != nil {
			syncs = append(syncs, res)
		}
		return err
	}
	fail := func(err error) (*Plan, error) {
		if len(syncs) > 0 {
			return &Plan{Syncs: syncs}, err
		}
		return nil, err
	}
	loadID, err := db.LoadRoutes(ctx, origin, Routes(set))
	if err != nil {
		return fail(err)
	}
	// The sources' referrers API is asked about the wanted digests while
	// the destinations are crawled (the look-ups below then use the
	// answers).
	answers, err := prefetchReferrers(ctx, db, client, loadID, opts)
	if err != nil {
		return fail(err)
	}
	defer answers.Stop()
	var trusted []inventory.TrustedTarget
	var live []string // destination repositories synced now
	if !opts.Offline {
		if ttl := opts.confirmTTL(); ttl > 0 {
			if trusted, err = db.TrustedTargets(ctx, loadID, start.Add(-ttl)); err != nil {
				return fail(err)
			}
		}
		live = untrusted(cipsync.Repositories(set, cipsync.Destinations), trusted)
		if len(live) > 0 {
			if err := synced(syncRepositories(ctx, db, client, live, opts, !opts.Referrers.None())); err != nil {
				return fail(err)
			}
		}
	}
	answers.CrawlDone()
	pending := map[string]bool{} // destination repositories with a row that is not skip
	read := func() (*inventory.PlanRead, error) {
		clear(pending)
		return db.Plan(ctx, loadID, inventory.PlanOptions{MaxSkipRows: MaxSkipRows, MaxRows: planRows,
			Each: func(r inventory.PlanRow) { pending[r.DstRepo] = true }})
	}
	pr, err := read()
	if err != nil {
		return fail(err)
	}
	p := &Plan{LoadID: loadID, Syncs: syncs, Trusted: trusted}
	p.set(pr)
	// Digests the destinations hold untagged, then the sources of what is
	// still missing, then digests those sources hold untagged: each step
	// reads the plan again when it found something. Offline: none.
	var steps []func() (bool, error)
	crawled := map[string]bool{} // source repositories this run crawled
	if !opts.Offline {
		steps = []func() (bool, error){
			func() (bool, error) { n, err := probe(ctx, db, client, p, opts, false); return n > 0, err },
			func() (bool, error) {
				res, err := syncSources(ctx, db, client, p, opts, crawled)
				return res != nil, synced(res, err)
			},
			func() (bool, error) { n, err := probe(ctx, db, client, p, opts, true); return n > 0, err },
		}
	}
	for _, step := range steps {
		changed, err := step()
		if err != nil {
			return fail(err)
		}
		if changed {
			if pr, err = read(); err != nil {
				return fail(err)
			}
			p.set(pr)
		}
	}
	p.Syncs = syncs
	if err := planReferrers(ctx, db, client, p, opts, crawled, answers.Wait()); err != nil {
		return fail(err)
	}
	p.countTrusted()
	if err := checkSignatures(ctx, db, client, p, opts); err != nil {
		var se *SignatureError
		if !errors.As(err, &se) {
			return fail(err)
		}
		return p, errors.Join(se, tagMoves(p.TagMoves))
	}
	if len(p.TagMoves) > 0 {
		return p, &TagMoveError{Moves: p.TagMoves}
	}
	// What the syncs saw complete is confirmed as of now (the tags' own
	// confirmations when older): later runs may trust it.
	if p.Confirmed, err = db.ConfirmTargets(ctx, loadID, complete(live, pending), start); err != nil {
		return p, err
	}
	return p, nil
}

// tagMoves is the error of moves: nil when there are none.
func tagMoves(moves []inventory.TagMove) error {
	if len(moves) == 0 {
		return nil
	}
	return &TagMoveError{Moves: moves}
}

func (o Options) confirmTTL() time.Duration {
	if o.Full {
		return 0
	}
	return o.ConfirmTTL
}

// untrusted returns repos without the trusted ones.
func untrusted(repos []string, trusted []inventory.TrustedTarget) []string {
	if len(trusted) == 0 {
		return repos
	}
	skip := make(map[string]bool, len(trusted))
	for _, t := range trusted {
		skip[t.Repository] = true
	}
	out := repos[:0:0]
	for _, r := range repos {
		if !skip[r] {
			out = append(out, r)
		}
	}
	return out
}

// complete returns the repositories of live that no pending or lost row
// names: those the plan found holding everything wanted.
func complete(live []string, pending map[string]bool) []string {
	var out []string
	for _, r := range live {
		if !pending[r] {
			out = append(out, r)
		}
	}
	return out
}

// isDestination says whether repo is under one of the plan's destinations.
func (p *Plan) isDestination(repo string) bool {
	return p.destinationOf(repo) != nil
}

// destinationOf returns the summary of the longest destination repo is
// under, or nil: the repository's path prefixes looked up, longest first
// (a plan of the Kubernetes manifests has 1,606 destinations).
func (p *Plan) destinationOf(repo string) *Summary {
	if p.byDst == nil {
		p.byDst = make(map[string]int, len(p.Counts))
		for i, c := range p.Counts {
			p.byDst[c.Destination] = i
		}
	}
	for i := len(repo) - 1; i > 0; i-- {
		if repo[i] != '/' {
			continue
		}
		if k, ok := p.byDst[repo[:i]]; ok {
			return &p.Counts[k]
		}
	}
	return nil
}

// set takes a reading of the plan.
func (p *Plan) set(pr *inventory.PlanRead) {
	p.Rows, p.Streamed, p.TagMoves = pr.Rows, pr.Streamed, pr.Moves
	p.byDst = nil
	p.Counts = make([]Summary, len(pr.Counts))
	for i, c := range pr.Counts {
		p.Counts[i] = Summary{Destination: c.Dst, Copy: c.Copy, Tag: c.Tag, Skip: c.Skip, Lost: c.Lost}
	}
}

// countTrusted adds the trusted repositories to each destination's summary.
func (p *Plan) countTrusted() {
	for _, t := range p.Trusted {
		s := p.destinationOf(t.Repository)
		if s == nil {
			continue
		}
		s.Trusted++
		if s.TrustedSince == nil || t.ConfirmedAt.Before(*s.TrustedSince) {
			since := t.ConfirmedAt
			s.TrustedSince = &since
		}
	}
}

// probe looks up, in existing destination repositories, the digests the
// plan thinks absent, or (sources) in source repositories the digests it
// thinks lost, and records those that are there (sync.Digests). It
// returns how many it recorded.
func probe(ctx context.Context, db *inventory.DB, client *registry.Client, p *Plan, opts Options, sources bool) (int, error) {
	var todo []cipsync.Ref
	seen := map[cipsync.Ref]bool{}
	exists := map[string]bool{}
	err := p.Each(ctx, db, func(r inventory.PlanRow) error {
		if r.Action != inventory.ActionCopy && r.Action != inventory.ActionLost {
			return nil
		}
		// The source too, for lost rows: a source outside GCR lists no
		// untagged digests either.
		if sources {
			if k := (cipsync.Ref{Repository: r.Src + "/" + r.Image, Digest: r.Digest}); r.Action == inventory.ActionLost && !seen[k] {
				seen[k] = true
				todo = append(todo, k)
			}
			return nil
		}
		k := cipsync.Ref{Repository: r.DstRepo, Digest: r.Digest}
		if seen[k] {
			return nil
		}
		seen[k] = true
		ok, known := exists[r.DstRepo]
		if !known {
			var err error
			if ok, err = db.HasRepository(ctx, r.DstRepo); err != nil {
				return err
			}
			exists[r.DstRepo] = ok
		}
		// A repository holding only untagged manifests is not found by a
		// tag listing at all (docker-registry answers NAME_UNKNOWN).
		if ok || len(r.Tags) == 0 {
			todo = append(todo, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(todo) == 0 {
		return 0, nil
	}
	found, err := cipsync.Digests(ctx, db, client, todo, cipsync.Options{Jobs: opts.jobs()})
	if err != nil {
		return 0, err
	}
	return len(found.Present), nil
}
