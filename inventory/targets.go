package inventory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Targets: change-scoped runs (migration 0008, docs/scale.md). A target is
// a destination repository of a manifest set; its wanted content is the
// digests (and their tags) the set wants there, hashed. A promotion that
// saw a target complete live (a crawl listing every wanted digest and tag,
// or its own verified writes) records the hash and when; a later run whose
// manifests want the same there, within its --confirm-ttl, plans the
// target from the inventory without a request.

// TrustedTarget is a target a run takes from the inventory: its wanted
// content is what it was when cip last confirmed it, at ConfirmedAt.
type TrustedTarget struct {
	Repository  string    `json:"repository"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// targetHashes hashes each target's wanted content: per (route, image),
// the entries in digest order ("digest tag,tag"); per target, the hashes
// of the (route, image) groups of the routes naming its destination (one,
// nearly always).
func targetHashes(routes []normalRoute, entries []normalEntry) map[string]string {
	type group struct {
		route int
		image string
	}
	groups := map[group]string{}
	var order []group
	for i := 0; i < len(entries); {
		g := group{entries[i].route, entries[i].image}
		h := sha256.New()
		for ; i < len(entries) && entries[i].route == g.route && entries[i].image == g.image; i++ {
			h.Write([]byte(entries[i].digest))
			h.Write([]byte{' '})
			h.Write([]byte(strings.Join(entries[i].tags, ",")))
			h.Write([]byte{'\n'})
		}
		groups[g] = hex.EncodeToString(h.Sum(nil))
		order = append(order, g)
	}
	parts := map[string][]string{}
	for _, g := range order {
		for _, dst := range routes[g.route].dsts {
			t := dst + "/" + g.image
			parts[t] = append(parts[t], groups[g])
		}
	}
	out := make(map[string]string, len(parts))
	for t, ps := range parts {
		if len(ps) == 1 {
			out[t] = ps[0]
			continue
		}
		sort.Strings(ps)
		sum := sha256.Sum256([]byte(strings.Join(ps, "\n")))
		out[t] = hex.EncodeToString(sum[:])
	}
	return out
}

// insertTargets stores a set's target hashes (a set stored before
// migration 0008 gets them at its next load).
func insertTargets(ctx context.Context, tx *sql.Tx, setID int64, hashes map[string]string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM wanted_targets WHERE set_id = ?`, setID).Scan(&n); err != nil {
		return fmt.Errorf("load manifests: targets: %w", err)
	}
	if n > 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO wanted_targets(set_id, dst_repo, hash) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("load manifests: targets: %w", err)
	}
	defer st.Close()
	names := make([]string, 0, len(hashes))
	for t := range hashes {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		if _, err := st.ExecContext(ctx, setID, t, hashes[t]); err != nil {
			return fmt.Errorf("load manifests: target %s: %w", t, err)
		}
	}
	return nil
}

// TrustedTargets returns the targets of a load whose wanted content is the
// content cip last confirmed there, at or after since: those a run may
// plan from the inventory, by repository.
func (d *DB) TrustedTargets(ctx context.Context, loadID int64, since time.Time) ([]TrustedTarget, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT wt.dst_repo, c.confirmed_at FROM manifest_loads l
		JOIN wanted_targets wt ON wt.set_id = l.set_id
		JOIN confirmed_targets c ON c.dst_repo = wt.dst_repo AND c.hash = wt.hash
		WHERE l.id = ? AND julianday(c.confirmed_at) >= julianday(?)
		ORDER BY wt.dst_repo`, loadID, since.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return nil, fmt.Errorf("read trusted targets of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []TrustedTarget
	for rows.Next() {
		var t TrustedTarget
		var at string
		if err := rows.Scan(&t.Repository, &at); err != nil {
			return nil, fmt.Errorf("read trusted targets of load %d: %w", loadID, err)
		}
		if t.ConfirmedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("read trusted targets of load %d: %s: confirmed_at %q: %w", loadID, t.Repository, at, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// ConfirmTargets records, for each of the given targets of a load that the
// inventory shows complete (every wanted tag at its digest, confirmed live
// at some time, and every wanted untagged digest held), that cip confirmed
// its wanted content: as of the oldest confirmation of its wanted tags, or
// asOf when that is older (when the caller's evidence was gathered). It
// returns how many it recorded. Callers pass the targets they saw live in
// this run (crawled, or written and verified), never ones they trusted.
func (d *DB) ConfirmTargets(ctx context.Context, loadID int64, targets []string, asOf time.Time) (int, error) {
	if len(targets) == 0 {
		return 0, nil
	}
	list, err := json.Marshal(targets)
	if err != nil {
		return 0, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("confirm targets of load %d: %w", loadID, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `
		SELECT t.dst_repo, wt.hash, t.repository_id IS NOT NULL,
			(SELECT COUNT(*) FROM wanted_tags w
			 WHERE w.set_id = t.set_id AND w.route = t.route AND w.image = t.image
			   AND NOT EXISTS (SELECT 1 FROM tags dt WHERE dt.repository_id = t.repository_id
			                   AND dt.tag = w.tag AND dt.digest = w.digest AND dt.checked_at IS NOT NULL)),
			(SELECT COUNT(*) FROM wanted_digests w
			 WHERE w.set_id = t.set_id AND w.route = t.route AND w.image = t.image AND w.tagged = 0
			   AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = t.repository_id AND rm.digest = w.digest)),
			(SELECT MIN(julianday(dt.checked_at)) FROM wanted_tags w
			 JOIN tags dt ON dt.repository_id = t.repository_id AND dt.tag = w.tag AND dt.digest = w.digest
			 WHERE w.set_id = t.set_id AND w.route = t.route AND w.image = t.image)
		FROM plan_targets t
		JOIN wanted_targets wt ON wt.set_id = t.set_id AND wt.dst_repo = t.dst_repo
		WHERE t.load_id = ?1 AND t.dst_repo IN (SELECT value FROM json_each(?2))
		ORDER BY t.dst_repo`, loadID, string(list))
	if err != nil {
		return 0, fmt.Errorf("confirm targets of load %d: %w", loadID, err)
	}
	type state struct {
		hash     string
		complete bool
		oldest   float64 // julian day; 0: no tag
	}
	seen := map[string]*state{}
	var order []string
	for rows.Next() {
		var repo, hash string
		var known bool
		var tagsMissing, digestsMissing int
		var oldest sql.NullFloat64
		if err := rows.Scan(&repo, &hash, &known, &tagsMissing, &digestsMissing, &oldest); err != nil {
			rows.Close()
			return 0, fmt.Errorf("confirm targets of load %d: %w", loadID, err)
		}
		st := seen[repo]
		if st == nil {
			st = &state{hash: hash, complete: true}
			seen[repo] = st
			order = append(order, repo)
		}
		if !known || tagsMissing > 0 || digestsMissing > 0 {
			st.complete = false
		}
		if oldest.Valid && (st.oldest == 0 || oldest.Float64 < st.oldest) {
			st.oldest = oldest.Float64
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, fmt.Errorf("confirm targets of load %d: %w", loadID, err)
	}
	rows.Close()
	n := 0
	for _, repo := range order {
		st := seen[repo]
		if !st.complete {
			continue
		}
		at := asOf.UTC()
		if st.oldest > 0 {
			if t := fromJulian(st.oldest); t.Before(at) {
				at = t
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO confirmed_targets(dst_repo, hash, confirmed_at) VALUES (?, ?, ?)
			ON CONFLICT(dst_repo) DO UPDATE SET hash = excluded.hash, confirmed_at = excluded.confirmed_at`,
			repo, st.hash, at.Format(time.RFC3339Nano)); err != nil {
			return 0, fmt.Errorf("confirm target %s: %w", repo, err)
		}
		n++
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("confirm targets of load %d: %w", loadID, err)
	}
	return n, nil
}

// fromJulian turns an SQLite julian day into a time, to the millisecond
// (julianday's float holds about that much), rounded down so that a
// confirmation is never later than it was.
func fromJulian(jd float64) time.Time {
	ms := math.Floor((jd - 2440587.5) * 86400e3)
	return time.UnixMilli(int64(ms)).UTC()
}
