package inventory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cipdev/cip/migrations"
)

// Route is one manifest's intent, unflattened: every digest of Images goes
// from Src into each of Dsts. LoadRoutes stores it as it is, so that M ×
// destinations stays a join.
type Route struct {
	Src    string
	Dsts   []string
	File   string // images file
	Images []WantedImage
}

// WantedImage is an image of a Route and its digests.
type WantedImage struct {
	Name    string
	Digests []WantedDigest
}

// WantedDigest is a digest of a WantedImage, with the tags it carries in
// every destination and its line in the route's file.
type WantedDigest struct {
	Digest string
	Tags   []string
	Line   int
}

// keepLoads is how many manifest loads stay in the inventory: enough for
// `cip query` to look back at recent runs and for concurrent runs to keep
// their own, few enough that the tables stay small.
const keepLoads = 16

// LoadRoutes records one load of manifests (the M tables) and returns its
// id. The manifests are normalised (one route per distinct source, file and
// destinations; a digest that several manifests promote into one
// destination gets a merged route of its own) and stored once per distinct
// content: a load of unchanged manifests reuses the stored set and inserts
// only its manifest_loads row. Older loads beyond the most recent keepLoads
// are dropped, with the sets no load uses. Two manifests wanting one
// (destination, image, tag) at two digests are an error (validation
// normally rejects them first).
func (d *DB) LoadRoutes(ctx context.Context, origin string, routes []Route) (int64, error) {
	var cs []contribution
	for _, r := range routes {
		dsts := append([]string(nil), r.Dsts...)
		sort.Strings(dsts)
		dsts = slices.Compact(dsts)
		for _, img := range r.Images {
			for _, dg := range img.Digests {
				cs = append(cs, contribution{src: r.Src, dsts: dsts, file: r.File, image: img.Name, digest: dg.Digest, tags: dg.Tags, line: dg.Line})
			}
		}
	}
	return d.load(ctx, origin, cs)
}

// contribution is one manifest's entry for an (image, digest).
type contribution struct {
	src    string
	dsts   []string // sorted, unique
	file   string
	image  string
	digest string
	tags   []string
	line   int
}

// normalRoute is a route of the normal form: srcs sorted, dsts sorted.
type normalRoute struct {
	key  string
	srcs []string
	file string
	dsts []string
}

// normalEntry is a wanted (route, image, digest) of the normal form.
type normalEntry struct {
	route         int
	image, digest string
	tags          []string // sorted, unique
	line          int
}

func before(a, b *contribution) bool {
	if a.file != b.file {
		return a.file < b.file
	}
	return a.line < b.line
}

// normalise turns contributions into routes and entries such that each
// (destination, image, digest) belongs to one entry, routes sorted by key
// and entries by (route, image, digest).
func normalise(cs []contribution) ([]normalRoute, []normalEntry, error) {
	type idKey struct{ image, digest string }
	byKey := map[idKey][]*contribution{}
	var keys []idKey
	for i := range cs {
		c := &cs[i]
		k := idKey{c.image, c.digest}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	routeIdx := map[string]int{}
	var routes []normalRoute
	routeOf := func(srcs []string, file string, dsts []string) int {
		key := strings.Join(srcs, "\x00") + "\x01" + file + "\x01" + strings.Join(dsts, "\x00")
		if i, ok := routeIdx[key]; ok {
			return i
		}
		routeIdx[key] = len(routes)
		routes = append(routes, normalRoute{key: key, srcs: srcs, file: file, dsts: dsts})
		return len(routes) - 1
	}
	var entries []normalEntry
	for _, k := range keys {
		group := byKey[k]
		if len(group) == 1 {
			c := group[0]
			entries = append(entries, normalEntry{route: routeOf([]string{c.src}, c.file, c.dsts), image: k.image, digest: k.digest, tags: sortedUnique(c.tags), line: c.line})
			continue
		}
		// Several manifests name this digest: merge per destination, then
		// group destinations with the same merged intent into one route.
		type merged struct {
			srcs  []string
			first *contribution
			tags  []string
		}
		per := map[string]*merged{}
		var dsts []string
		for _, c := range group {
			for _, dst := range c.dsts {
				m, ok := per[dst]
				if !ok {
					m = &merged{first: c}
					per[dst] = m
					dsts = append(dsts, dst)
				}
				m.srcs = append(m.srcs, c.src)
				m.tags = append(m.tags, c.tags...)
				if before(c, m.first) {
					m.first = c
				}
			}
		}
		sort.Strings(dsts)
		type sig struct {
			srcs, file, tags string
			line             int
		}
		bySig := map[sig][]string{}
		var sigs []sig
		tagsOf := map[sig][]string{}
		srcsOf := map[sig][]string{}
		for _, dst := range dsts {
			m := per[dst]
			srcs, tags := sortedUnique(m.srcs), sortedUnique(m.tags)
			s := sig{strings.Join(srcs, " "), m.first.file, strings.Join(tags, " "), m.first.line}
			if _, ok := bySig[s]; !ok {
				sigs = append(sigs, s)
				tagsOf[s], srcsOf[s] = tags, srcs
			}
			bySig[s] = append(bySig[s], dst)
		}
		for _, s := range sigs {
			entries = append(entries, normalEntry{route: routeOf(srcsOf[s], s.file, bySig[s]), image: k.image, digest: k.digest, tags: tagsOf[s], line: s.line})
		}
	}
	// Number routes in key order, so that the same manifests give the same
	// normal form.
	order := make([]int, len(routes))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return routes[order[i]].key < routes[order[j]].key })
	renum := make([]int, len(routes))
	sorted := make([]normalRoute, len(routes))
	for n, i := range order {
		renum[i] = n
		sorted[n] = routes[i]
	}
	for i := range entries {
		entries[i].route = renum[entries[i].route]
	}
	slices.SortFunc(entries, func(a, b normalEntry) int {
		return cmp.Or(cmp.Compare(a.route, b.route), strings.Compare(a.image, b.image), strings.Compare(a.digest, b.digest))
	})
	if err := checkTags(sorted, entries); err != nil {
		return nil, nil, err
	}
	return sorted, entries, nil
}

// checkTags refuses one (destination, image, tag) wanted at two digests.
func checkTags(routes []normalRoute, entries []normalEntry) error {
	type it struct{ image, tag string }
	at := map[it][]int{} // entry indexes
	for i, e := range entries {
		for _, t := range e.tags {
			at[it{e.image, t}] = append(at[it{e.image, t}], i)
		}
	}
	var errs []string
	for k, es := range at {
		if len(es) < 2 {
			continue
		}
		for x := 0; x < len(es); x++ {
			for y := x + 1; y < len(es); y++ {
				a, b := entries[es[x]], entries[es[y]]
				if a.digest == b.digest {
					continue
				}
				if dst, ok := commonDst(routes[a.route].dsts, routes[b.route].dsts); ok {
					if routes[b.route].file < routes[a.route].file || (routes[b.route].file == routes[a.route].file && b.line < a.line) {
						a, b = b, a
					}
					errs = append(errs, fmt.Sprintf("load %s:%d: tag %s/%s:%s wanted at %s and at %s", routes[b.route].file, b.line, dst, k.image, k.tag, a.digest, b.digest))
				}
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// commonDst returns the first destination two sorted lists share.
func commonDst(a, b []string) (string, bool) {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			return a[i], true
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return "", false
}

func sortedUnique(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return slices.Compact(out)
}

// hashNormal is the content hash of a normal form.
func hashNormal(routes []normalRoute, entries []normalEntry) string {
	h := sha256.New()
	for i, r := range routes {
		fmt.Fprintf(h, "route %d %q %q %q\n", i, r.srcs, r.file, r.dsts)
	}
	for _, e := range entries {
		fmt.Fprintf(h, "entry %d %q %q %d %q\n", e.route, e.image, e.digest, e.line, e.tags)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (d *DB) load(ctx context.Context, origin string, cs []contribution) (int64, error) {
	routes, entries, err := normalise(cs)
	if err != nil {
		return 0, err
	}
	hash := hashNormal(routes, entries)
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	defer tx.Rollback()
	var setID int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM wanted_sets WHERE hash = ?`, hash).Scan(&setID)
	if err == sql.ErrNoRows {
		if setID, err = insertSet(ctx, tx, hash, d.now(), routes, entries); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	if err := insertTargets(ctx, tx, setID, targetHashes(routes, entries)); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO manifest_loads(loaded_at, origin, set_id) VALUES (?, ?, ?)`, d.now(), origin, setID)
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM manifest_loads WHERE id NOT IN (SELECT id FROM manifest_loads ORDER BY id DESC LIMIT ?)`, keepLoads); err != nil {
		return 0, fmt.Errorf("load manifests: prune old loads: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM wanted_sets WHERE id NOT IN (SELECT set_id FROM manifest_loads)`); err != nil {
		return 0, fmt.Errorf("load manifests: prune old sets: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	return id, nil
}

// insertSet stores a normal form under a new wanted_sets row.
func insertSet(ctx context.Context, tx *sql.Tx, hash, now string, routes []normalRoute, entries []normalEntry) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO wanted_sets(hash, created_at) VALUES (?, ?)`, hash, now)
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	setID, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	stmts := map[string]string{
		"route":  `INSERT INTO wanted_routes(set_id, route, src, file) VALUES (?, ?, ?, ?)`,
		"source": `INSERT INTO wanted_route_sources(set_id, route, src) VALUES (?, ?, ?)`,
		"dst":    `INSERT INTO wanted_destinations(set_id, route, dst) VALUES (?, ?, ?)`,
		"image":  `INSERT OR IGNORE INTO wanted_images(set_id, route, image) VALUES (?, ?, ?)`,
		"digest": `INSERT INTO wanted_digests(set_id, route, image, digest, line, tagged) VALUES (?, ?, ?, ?, ?, ?)`,
		"tag":    `INSERT INTO wanted_tags(set_id, route, image, digest, tag, line) VALUES (?, ?, ?, ?, ?, ?)`,
	}
	st := map[string]*sql.Stmt{}
	for k, q := range stmts {
		s, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("load manifests: %w", err)
		}
		defer s.Close()
		st[k] = s
	}
	exec := func(k string, args ...any) error {
		if _, err := st[k].ExecContext(ctx, append([]any{setID}, args...)...); err != nil {
			return fmt.Errorf("load manifests: %s %v: %w", k, args, err)
		}
		return nil
	}
	for i, r := range routes {
		if err := exec("route", i, r.srcs[0], r.file); err != nil {
			return 0, err
		}
		for _, s := range r.srcs {
			if err := exec("source", i, s); err != nil {
				return 0, err
			}
		}
		for _, dst := range r.dsts {
			if err := exec("dst", i, dst); err != nil {
				return 0, err
			}
		}
	}
	for i, e := range entries {
		if i == 0 || e.route != entries[i-1].route || e.image != entries[i-1].image {
			if err := exec("image", e.route, e.image); err != nil {
				return 0, err
			}
		}
		if err := exec("digest", e.route, e.image, e.digest, e.line, len(e.tags) > 0); err != nil {
			return 0, err
		}
		for _, t := range e.tags {
			if err := exec("tag", e.route, e.image, e.digest, t, e.line); err != nil {
				return 0, err
			}
		}
	}
	return setID, nil
}

// Plan actions.
const (
	ActionSkip = "skip"
	ActionTag  = "tag"
	ActionCopy = "copy"
	ActionLost = "lost"
)

// PlanRow is one row of the plan view: what to do about one wanted
// (destination registry, image, digest).
type PlanRow struct {
	Dst     string   `json:"destination"`
	Image   string   `json:"image"`
	Digest  string   `json:"digest"`
	Action  string   `json:"action"`
	Src     string   `json:"source"`            // source registry
	SrcRepo string   `json:"source_repository"` // repository to copy from; empty unless copy
	DstRepo string   `json:"destination_repository"`
	Tags    []string `json:"tags"`         // every wanted tag, sorted
	Missing []string `json:"tags_missing"` // wanted tags the destination lacks, sorted
	File    string   `json:"file"`
	Line    int      `json:"line"`
}

// PlanCount counts one destination's plan rows by action.
type PlanCount struct {
	Dst                   string
	Copy, Tag, Skip, Lost int
}

// planColumns are the plan view's columns as PlanRow reads them.
const planColumns = `dst, image, digest, action, src, COALESCE(src_repo, ''), dst_repo, tags, tags_missing, file, line`

// PlanOptions bounds what Plan holds.
type PlanOptions struct {
	// MaxSkipRows: skip rows are listed too when there are at most this
	// many (0: never).
	MaxSkipRows int
	// MaxRows: a plan with more rows than this that are not skip holds
	// none of them (Streamed; read them with EachPlanRow); 0: no bound.
	MaxRows int
	// Each, when set, is called with every row that is not skip as it is
	// read, held or not (for what a caller gathers from the rows: the
	// repositories they name, say).
	Each func(PlanRow)
}

// PlanRead is one reading of a load's plan.
type PlanRead struct {
	// Rows are the copy, tag and lost rows, and the skip rows when there
	// are at most MaxSkipRows of them, ordered by destination, image and
	// digest; nil when Streamed.
	Rows []PlanRow
	// Counts holds each destination's actions (skip rows included), by
	// destination.
	Counts []PlanCount
	// Moves are the tag moves, by destination, image and tag.
	Moves []TagMove
	// Streamed says the plan had more than MaxRows rows that are not
	// skip: Rows holds none, and EachPlanRow reads them from the
	// inventory (a first plan into empty mirrors is every wanted row,
	// 718,938 at registry.k8s.io).
	Streamed bool
}

// Plan reads the plan of a load: every copy, tag and lost row, ordered by
// destination, image and digest (none when there are more than
// opts.MaxRows: Streamed); the count of each action per destination
// (sorted); and the tag moves, ordered by destination, image and tag. Skip
// rows, the bulk of a steady-state plan, are counted, and listed too only
// when there are at most opts.MaxSkipRows of them. The rows that are not
// skip and the moves come from one evaluation of pendingQuery; the
// per-destination totals from M alone.
func (d *DB) Plan(ctx context.Context, loadID int64, opts PlanOptions) (*PlanRead, error) {
	counts, err := d.planTotals(ctx, loadID)
	if err != nil {
		return nil, fmt.Errorf("read plan of load %d: %w", loadID, err)
	}
	at := make(map[string]*PlanCount, len(counts))
	for i := range counts {
		at[counts[i].Dst] = &counts[i]
	}
	var outside string
	count := func(r PlanRow) {
		c := at[r.Dst]
		if c == nil {
			outside = r.Dst
			return
		}
		switch r.Action {
		case ActionCopy:
			c.Copy++
		case ActionTag:
			c.Tag++
		case ActionLost:
			c.Lost++
		}
		c.Skip--
		if opts.Each != nil {
			opts.Each(r)
		}
	}
	rows, moves, streamed, err := d.pending(ctx, loadID, opts.MaxRows, count)
	if err != nil {
		return nil, fmt.Errorf("read plan of load %d: %w", loadID, err)
	}
	if outside != "" {
		return nil, fmt.Errorf("read plan of load %d: row for %s outside the load's destinations", loadID, outside)
	}
	skips := 0
	for _, c := range counts {
		skips += c.Skip
	}
	if !streamed && skips > 0 && skips <= opts.MaxSkipRows {
		skipRows, err := d.planRows(ctx, `SELECT `+planColumns+` FROM plan WHERE load_id = ? AND action = 'skip' ORDER BY dst, image, digest`, loadID)
		if err != nil {
			return nil, fmt.Errorf("read plan of load %d: %w", loadID, err)
		}
		rows = append(rows, skipRows...)
		sortPlanRows(rows)
	}
	return &PlanRead{Rows: rows, Counts: counts, Moves: moves, Streamed: streamed}, nil
}

// pendingQuery is the plan view's rows that are not skip, and the
// plan_tag_moves view, for load ?1, computed as set differences (see
// migrations/plan_pending.sql, beside the views it must agree with).
var pendingQuery = migrations.PlanPending

// pending reads pendingQuery: the plan's rows that are not skip (each
// also given to count), and the tag moves. Beyond maxRows rows (maxRows >
// 0) it stops holding rows and returns none, streamed.
func (d *DB) pending(ctx context.Context, loadID int64, maxRows int, count func(PlanRow)) ([]PlanRow, []TagMove, bool, error) {
	rs, err := d.db.QueryContext(ctx, pendingQuery, loadID)
	if err != nil {
		return nil, nil, false, err
	}
	defer rs.Close()
	var rows []PlanRow
	var moves []TagMove
	streamed := false
	// A first plan into empty destinations lists every wanted row (718,938
	// at registry.k8s.io); its strings repeat across destinations, so each
	// distinct one is kept once (the scan reads into RawBytes, which the
	// lookups do not copy).
	in := interner{strs: map[string]string{}, lists: map[string][]string{}}
	var sc planScanner
	for rs.Next() {
		kind, err := sc.scan(rs)
		if err != nil {
			return nil, nil, false, err
		}
		if kind == "move" {
			moves = append(moves, sc.move(in))
			continue
		}
		r := sc.row(in)
		count(r)
		if streamed {
			continue
		}
		if maxRows > 0 && len(rows) >= maxRows {
			rows, streamed = nil, true
			// The interned strings are held by no row now: let them go.
			in = interner{strs: map[string]string{}, lists: map[string][]string{}}
			continue
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, nil, false, err
	}
	// Sorted here, not by the statement: a first plan into empty
	// destinations is every wanted row, and SQLite's sorter spills
	// hundreds of thousands of wide rows to temporary files.
	sortPlanRows(rows)
	slices.SortFunc(moves, func(a, b TagMove) int {
		return cmp.Or(strings.Compare(a.Dst, b.Dst), strings.Compare(a.Image, b.Image), strings.Compare(a.Tag, b.Tag))
	})
	return rows, moves, streamed, nil
}

// planScanner reads the pending statement's rows.
type planScanner struct {
	cols [11]sql.RawBytes
	line int
}

func (s *planScanner) scan(rs *sql.Rows) (string, error) {
	c := &s.cols
	if err := rs.Scan(&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7], &c[8], &c[9], &c[10], &s.line); err != nil {
		return "", err
	}
	return string(c[0]), nil
}

func (s *planScanner) move(in interner) TagMove {
	c := &s.cols
	return TagMove{Dst: in.str(c[1]), Image: in.str(c[2]), Tag: in.str(c[3]),
		DigestNow: in.str(c[6]), DigestWanted: in.str(c[7]), File: in.str(c[10]), Line: s.line}
}

// row is the scanned row; the statement gives a source repository to copy
// rows only.
func (s *planScanner) row(in interner) PlanRow {
	c := &s.cols
	return PlanRow{Dst: in.str(c[1]), Image: in.str(c[2]), Digest: in.str(c[3]), Action: in.str(c[4]),
		Src: in.str(c[5]), SrcRepo: in.str(c[6]), DstRepo: in.str(c[7]),
		Tags: in.fields(c[8]), Missing: in.fields(c[9]), File: in.str(c[10]), Line: s.line}
}

// PlanOrder is the order EachPlanRow gives rows in.
type PlanOrder int

// Plan orders.
const (
	// ByDestination: destination, image, digest (the plan as printed).
	ByDestination PlanOrder = iota
	// ByDigest: digest, destination, image (one digest's copies to every
	// destination together, so that a source blob is read once for all).
	ByDigest
)

// EachPlanRow calls fn with each row of a load's plan that is not skip
// (copy, tag, lost), in order, holding none: for plans too large to hold
// (PlanRead.Streamed). SQLite sorts them (spilling to temporary files when
// large). It stops at fn's first error and returns it. fn must not write
// the inventory's database while it holds the statement's read (an
// SQLite reader pins the write-ahead log): a caller that writes as it goes
// copies the rows aside first.
func (d *DB) EachPlanRow(ctx context.Context, loadID int64, order PlanOrder, fn func(PlanRow) error) error {
	by := "dst, image, digest"
	if order == ByDigest {
		by = "digest, dst, image"
	}
	rs, err := d.db.QueryContext(ctx, `SELECT * FROM (`+strings.TrimRight(strings.TrimSpace(pendingQuery), ";")+`) WHERE kind = 'row' ORDER BY `+by, loadID)
	if err != nil {
		return fmt.Errorf("read plan of load %d: %w", loadID, err)
	}
	defer rs.Close()
	var sc planScanner
	for rs.Next() {
		if _, err := sc.scan(rs); err != nil {
			return fmt.Errorf("read plan of load %d: %w", loadID, err)
		}
		if err := fn(sc.row(interner{})); err != nil {
			return err
		}
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("read plan of load %d: %w", loadID, err)
	}
	return nil
}

// sortPlanRows orders plan rows by destination, image and digest.
func sortPlanRows(rows []PlanRow) {
	slices.SortFunc(rows, func(a, b PlanRow) int {
		return cmp.Or(strings.Compare(a.Dst, b.Dst), strings.Compare(a.Image, b.Image), strings.Compare(a.Digest, b.Digest))
	})
}

// planTotals counts a load's wanted (destination, image, digest) rows per
// destination into Skip, from the M tables alone (no D lookups).
func (d *DB) planTotals(ctx context.Context, loadID int64) ([]PlanCount, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT wd.dst, SUM(c.n) FROM manifest_loads l
		JOIN wanted_destinations wd ON wd.set_id = l.set_id
		JOIN (SELECT set_id, route, COUNT(*) AS n FROM wanted_digests GROUP BY set_id, route) c
			ON c.set_id = wd.set_id AND c.route = wd.route
		WHERE l.id = ?
		GROUP BY wd.dst ORDER BY wd.dst`, loadID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PlanCount
	for rows.Next() {
		var c PlanCount
		if err := rows.Scan(&c.Dst, &c.Skip); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (d *DB) planRows(ctx context.Context, q string, loadID int64) ([]PlanRow, error) {
	rows, err := d.db.QueryContext(ctx, q, loadID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PlanRow
	for rows.Next() {
		var p PlanRow
		var tags, missing string
		if err := rows.Scan(&p.Dst, &p.Image, &p.Digest, &p.Action, &p.Src, &p.SrcRepo, &p.DstRepo, &tags, &missing, &p.File, &p.Line); err != nil {
			return nil, err
		}
		p.Tags, p.Missing = fields(tags), fields(missing)
		if p.Action != ActionCopy {
			p.SrcRepo = ""
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// interner keeps one copy of each distinct string (and of each distinct
// tag list) read from a large result; the zero interner copies each.
type interner struct {
	strs  map[string]string
	lists map[string][]string
}

func (in interner) str(b []byte) string {
	if in.strs == nil {
		return string(b)
	}
	if v, ok := in.strs[string(b)]; ok {
		return v
	}
	s := string(b)
	in.strs[s] = s
	return s
}

// fields is fields() of b, one list shared by every row with the same
// text; the lists are read-only.
func (in interner) fields(b []byte) []string {
	if in.lists == nil {
		return fields(string(b))
	}
	if v, ok := in.lists[string(b)]; ok {
		return v
	}
	f := fields(string(b))
	in.lists[string(b)] = f
	return f
}

func fields(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		return []string{}
	}
	return f
}

// TagMove is a wanted tag that the destination already has at another digest.
type TagMove struct {
	Dst          string `json:"destination"`
	Image        string `json:"image"`
	Tag          string `json:"tag"`
	DigestNow    string `json:"digest_now"`
	DigestWanted string `json:"digest_wanted"`
	File         string `json:"file"`
	Line         int    `json:"line"`
}

// WantedRef is one reference a load promises in a destination: a digest
// (Tag empty) or a tag, with the digest it must resolve to.
type WantedRef struct {
	Dst, Image, Tag, Digest string
	File                    string
	Line                    int
}

// WantedRefs lists every (destination, image, digest) and (destination,
// image, tag) of a load, ordered by destination, image, digest, tag.
func (d *DB) WantedRefs(ctx context.Context, loadID int64) ([]WantedRef, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT d.dst, w.image, '' AS tag, w.digest, g.file, w.line
		FROM manifest_loads l
		JOIN wanted_destinations d ON d.set_id = l.set_id
		JOIN wanted_digests w ON w.set_id = d.set_id AND w.route = d.route
		JOIN wanted_routes g ON g.set_id = w.set_id AND g.route = w.route
		WHERE l.id = ?1
		UNION ALL
		SELECT d.dst, t.image, t.tag, t.digest, g.file, t.line
		FROM manifest_loads l
		JOIN wanted_destinations d ON d.set_id = l.set_id
		JOIN wanted_tags t ON t.set_id = d.set_id AND t.route = d.route
		JOIN wanted_routes g ON g.set_id = t.set_id AND g.route = t.route
		WHERE l.id = ?1
		ORDER BY 1, 2, 4, 3`, loadID)
	if err != nil {
		return nil, fmt.Errorf("read wanted references of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []WantedRef
	for rows.Next() {
		var w WantedRef
		if err := rows.Scan(&w.Dst, &w.Image, &w.Tag, &w.Digest, &w.File, &w.Line); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}
