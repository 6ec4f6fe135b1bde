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
	"io"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
)

// DefaultJobs bounds requests in flight, as sync's default does.
const DefaultJobs = 8

// Options configures MakePlan, Promote and Verify.
type Options struct {
	// Jobs bounds registry requests in flight (copies of different images
	// and destinations run in parallel within it); 0 means DefaultJobs.
	Jobs int
	// Progress receives one summary line per destination (stderr); nil
	// means none.
	Progress io.Writer
	// Live redraws a status line while copying (for a terminal).
	Live bool
	// TagTTL is the syncs' sync.Options.TagTTL: destination and source
	// tags cip confirmed less than TagTTL ago are not HEADed again.
	TagTTL time.Duration
	// Offline plans from the inventory as it stands: MakePlan sends no
	// request (no sync, no probe), so a stale inventory gives a stale plan.
	// For dry runs after a `cip sync`, and for measuring the plan itself.
	Offline bool
}

func (o Options) jobs() int {
	if o.Jobs <= 0 {
		return DefaultJobs
	}
	return o.Jobs
}

// Plan is one load of manifests and the plan rows read from it.
type Plan struct {
	LoadID int64
	// Rows are the copy, tag and lost rows, and the skip rows when there
	// are at most MaxSkipRows of them; by destination, image, digest.
	Rows     []inventory.PlanRow
	TagMoves []inventory.TagMove // by destination, image, tag
	// Counts holds every destination's action counts (skip rows included,
	// listed or not), by destination.
	Counts []Summary
}

// MaxSkipRows is how many skip rows a plan lists in detail: a small plan
// shows everything; a steady-state plan of a large manifest set (hundreds
// of thousands of rows, nearly all skip) lists its pending rows and counts
// the rest per destination. The plan view in the inventory has them all.
const MaxSkipRows = 1000

// Pending counts the rows that need writes (copy and tag).
func (p *Plan) Pending() int {
	n := 0
	for _, r := range p.Rows {
		if r.Action == inventory.ActionCopy || r.Action == inventory.ActionTag {
			n++
		}
	}
	return n
}

// Lost returns the rows in neither source nor destination.
func (p *Plan) Lost() []inventory.PlanRow {
	var out []inventory.PlanRow
	for _, r := range p.Rows {
		if r.Action == inventory.ActionLost {
			out = append(out, r)
		}
	}
	return out
}

// Summary counts a plan's actions for one destination.
type Summary struct {
	Destination string `json:"destination"`
	Copy        int    `json:"copy"`
	Tag         int    `json:"tag"`
	Skip        int    `json:"skip"`
	Lost        int    `json:"lost"`
}

// Summaries counts actions per destination, sorted by destination.
func (p *Plan) Summaries() []Summary {
	if p.Counts != nil {
		return append([]Summary(nil), p.Counts...)
	}
	by := map[string]*Summary{}
	for _, r := range p.Rows {
		s, ok := by[r.Dst]
		if !ok {
			s = &Summary{Destination: r.Dst}
			by[r.Dst] = s
		}
		switch r.Action {
		case inventory.ActionCopy:
			s.Copy++
		case inventory.ActionTag:
			s.Tag++
		case inventory.ActionSkip:
			s.Skip++
		case inventory.ActionLost:
			s.Lost++
		}
	}
	out := make([]Summary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
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

// MakePlan syncs the destination repositories set names, loads set into
// the inventory (origin names it: a file or directory), reads the plan,
// syncs the source repositories of its copy and lost rows and reads it
// again, settles digests a tag listing cannot show, and returns the
// plan. When any wanted tag would move it returns the plan and a
// *TagMoveError.
//
// A registry's tag listing (outside GCR's extension) does not show untagged
// manifests, so a tagless promotion (or a copy cut off before its tags)
// would look absent after a sync. For each copy or lost row whose
// destination repository exists (or that wants no tag), MakePlan HEADs the
// digest there, and for each lost row it HEADs the source; it records what
// it finds (fetching manifests the inventory lacks): a few reads that let
// tagless entries be copied and keep a rerun from writing again.
//
// With opts.Offline it only loads and reads the plan (and the tag moves)
// from the inventory as it stands.
func MakePlan(ctx context.Context, db *inventory.DB, client *registry.Client, set *manifest.Set, origin string, opts Options) (*Plan, error) {
	if !opts.Offline {
		if err := syncDestinations(ctx, db, client, set, opts); err != nil {
			return nil, err
		}
	}
	loadID, err := db.LoadRoutes(ctx, origin, Routes(set))
	if err != nil {
		return nil, err
	}
	rows, counts, moves, err := db.Plan(ctx, loadID, MaxSkipRows)
	if err != nil {
		return nil, err
	}
	// Digests the destinations hold untagged, then the sources of what is
	// still missing, then digests those sources hold untagged: each step
	// reads the plan again when it found something. Offline: none.
	var steps []func() (bool, error)
	if !opts.Offline {
		steps = []func() (bool, error){
			func() (bool, error) { n, err := probe(ctx, db, client, rows, opts, false); return n > 0, err },
			func() (bool, error) { return syncSources(ctx, db, client, rows, opts) },
			func() (bool, error) { n, err := probe(ctx, db, client, rows, opts, true); return n > 0, err },
		}
	}
	for _, step := range steps {
		changed, err := step()
		if err != nil {
			return nil, err
		}
		if changed {
			if rows, counts, moves, err = db.Plan(ctx, loadID, MaxSkipRows); err != nil {
				return nil, err
			}
		}
	}
	p := &Plan{LoadID: loadID, Rows: rows, TagMoves: moves, Counts: make([]Summary, len(counts))}
	for i, c := range counts {
		p.Counts[i] = Summary{Destination: c.Dst, Copy: c.Copy, Tag: c.Tag, Skip: c.Skip, Lost: c.Lost}
	}
	if len(moves) > 0 {
		return p, &TagMoveError{Moves: moves}
	}
	return p, nil
}

// probe HEADs, in existing destination repositories, the digests the plan
// thinks absent, or (sources) in source repositories the digests it thinks
// lost, and records those that are there. It returns how many it recorded.
func probe(ctx context.Context, db *inventory.DB, client *registry.Client, rows []inventory.PlanRow, opts Options, sources bool) (int, error) {
	type key struct{ repo, digest string }
	var todo []key
	seen := map[key]bool{}
	exists := map[string]bool{}
	for _, r := range rows {
		if r.Action != inventory.ActionCopy && r.Action != inventory.ActionLost {
			continue
		}
		// The source too, for lost rows: a source outside GCR lists no
		// untagged digests either.
		if sources {
			if k := (key{r.Src + "/" + r.Image, r.Digest}); r.Action == inventory.ActionLost && !seen[k] {
				seen[k] = true
				todo = append(todo, k)
			}
			continue
		}
		k := key{r.DstRepo, r.Digest}
		if seen[k] {
			continue
		}
		seen[k] = true
		ok, known := exists[r.DstRepo]
		if !known {
			var err error
			if ok, err = db.HasRepository(ctx, r.DstRepo); err != nil {
				return 0, err
			}
			exists[r.DstRepo] = ok
		}
		// A repository holding only untagged manifests is not found by a
		// tag listing at all (docker-registry answers NAME_UNKNOWN).
		if ok || len(r.Tags) == 0 {
			todo = append(todo, k)
		}
	}
	var found int
	var mu gosync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.jobs())
	for _, k := range todo {
		g.Go(func() error {
			repo, err := client.ParseRepository(k.repo)
			if err != nil {
				return err
			}
			if _, err := client.Head(gctx, repo, k.digest); errors.Is(err, registry.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if err := learn(gctx, db, client, repo, k.digest); err != nil {
				return err
			}
			if err := db.RecordDigest(gctx, k.repo, k.digest); err != nil {
				return err
			}
			mu.Lock()
			found++
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return found, err
}

// learn makes sure the inventory knows the manifest digest (and its
// children), fetching unknown ones from repo.
func learn(ctx context.Context, db *inventory.DB, client *registry.Client, r name.Repository, digest string) error {
	level := []string{digest}
	for len(level) > 0 {
		known, err := db.KnownDigests(ctx, level)
		if err != nil {
			return err
		}
		var fresh []*inventory.Manifest
		var next []string
		for _, dg := range level {
			if known[dg] {
				continue
			}
			raw, err := client.GetManifest(ctx, r, dg)
			if err != nil {
				return err
			}
			m, err := inventory.ParseManifest(dg, raw.MediaType, raw.Raw)
			if err != nil {
				return fmt.Errorf("%s@%s: %w", r.Name(), dg, err)
			}
			fresh = append(fresh, m)
			for _, c := range m.Children {
				next = append(next, c.Digest)
			}
		}
		if err := db.InsertManifests(ctx, fresh); err != nil {
			return err
		}
		level = next
	}
	return nil
}
