package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Wanted is one row of intent: promote Digest of Image from source registry
// Src into destination registry Dst with Tags (the manifest package's
// Promotion, without depending on it).
type Wanted struct {
	Src, Dst, Image, Digest string
	Tags                    []string
	File                    string
	Line                    int
}

// keepLoads is how many manifest loads stay in the inventory: enough for
// `cip query` to look back at recent runs and for concurrent runs to keep
// their own, few enough that the tables stay small.
const keepLoads = 16

// LoadWanted records one load of manifests (the M tables) in one
// transaction and returns its id. Older loads beyond the most recent
// keepLoads are dropped. Two rows wanting one (dst, image, tag) at two
// digests are an error (validation normally rejects them first).
func (d *DB) LoadWanted(ctx context.Context, origin string, rows []Wanted) (int64, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO manifest_loads(loaded_at, origin) VALUES (?, ?)`, d.now(), origin)
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
	insD, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO wanted_digests(load_id, dst, image, digest, file, line) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer insD.Close()
	insS, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO wanted_sources(load_id, dst, image, digest, src) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer insS.Close()
	insT, err := tx.PrepareContext(ctx, `INSERT INTO wanted_tags(load_id, dst, image, tag, digest, file, line) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(load_id, dst, image, tag) DO NOTHING RETURNING digest`)
	if err != nil {
		return 0, err
	}
	defer insT.Close()
	// Rows in file and line order, so "first file naming it" is stable.
	sorted := append([]Wanted(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].File != sorted[j].File {
			return sorted[i].File < sorted[j].File
		}
		return sorted[i].Line < sorted[j].Line
	})
	tagAt := map[[3]string]string{}
	for _, w := range sorted {
		if _, err := insD.ExecContext(ctx, id, w.Dst, w.Image, w.Digest, w.File, w.Line); err != nil {
			return 0, fmt.Errorf("load %s:%d: %w", w.File, w.Line, err)
		}
		if _, err := insS.ExecContext(ctx, id, w.Dst, w.Image, w.Digest, w.Src); err != nil {
			return 0, fmt.Errorf("load %s:%d: %w", w.File, w.Line, err)
		}
		for _, t := range w.Tags {
			k := [3]string{w.Dst, w.Image, t}
			if was, ok := tagAt[k]; ok {
				if was != w.Digest {
					return 0, fmt.Errorf("load %s:%d: tag %s/%s:%s wanted at %s and at %s", w.File, w.Line, w.Dst, w.Image, t, was, w.Digest)
				}
				continue
			}
			tagAt[k] = w.Digest
			if _, err := insT.ExecContext(ctx, id, w.Dst, w.Image, t, w.Digest, w.File, w.Line); err != nil {
				return 0, fmt.Errorf("load %s:%d: %w", w.File, w.Line, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("load manifests: %w", err)
	}
	return id, nil
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

// Plan reads the plan of a load, ordered by destination, image and digest.
func (d *DB) Plan(ctx context.Context, loadID int64) ([]PlanRow, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT dst, image, digest, action, src, COALESCE(src_repo, ''), dst_repo, tags, tags_missing, file, line
		FROM plan WHERE load_id = ? ORDER BY dst, image, digest`, loadID)
	if err != nil {
		return nil, fmt.Errorf("read plan of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []PlanRow
	for rows.Next() {
		var p PlanRow
		var tags, missing string
		if err := rows.Scan(&p.Dst, &p.Image, &p.Digest, &p.Action, &p.Src, &p.SrcRepo, &p.DstRepo, &tags, &missing, &p.File, &p.Line); err != nil {
			return nil, fmt.Errorf("read plan of load %d: %w", loadID, err)
		}
		p.Tags, p.Missing = fields(tags), fields(missing)
		if p.Action != ActionCopy {
			p.SrcRepo = ""
		}
		out = append(out, p)
	}
	return out, rows.Err()
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

// TagMoves reads the tag moves of a load, ordered by destination, image and tag.
func (d *DB) TagMoves(ctx context.Context, loadID int64) ([]TagMove, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT dst, image, tag, digest_now, digest_wanted, file, line
		FROM plan_tag_moves WHERE load_id = ? ORDER BY dst, image, tag`, loadID)
	if err != nil {
		return nil, fmt.Errorf("read tag moves of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []TagMove
	for rows.Next() {
		var m TagMove
		if err := rows.Scan(&m.Dst, &m.Image, &m.Tag, &m.DigestNow, &m.DigestWanted, &m.File, &m.Line); err != nil {
			return nil, fmt.Errorf("read tag moves of load %d: %w", loadID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
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
		SELECT dst, image, '' AS tag, digest, file, line FROM wanted_digests WHERE load_id = ?1
		UNION ALL
		SELECT dst, image, tag, digest, file, line FROM wanted_tags WHERE load_id = ?1
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
