package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// CheckReport is what Check found; OK when it found nothing.
type CheckReport struct {
	Path string
	// Integrity holds PRAGMA integrity_check's complaints (at most 20),
	// and ForeignKeys the rows PRAGMA foreign_key_check names.
	Integrity   []string
	ForeignKeys []string
	// Manifests counts the manifests whose bytes were re-hashed; Corrupt
	// lists those that no longer verify, or whose rows disagree with
	// their bytes, by digest.
	Manifests int
	Corrupt   []*CorruptError
}

// OK reports whether the check found nothing wrong.
func (r *CheckReport) OK() bool {
	return len(r.Integrity) == 0 && len(r.ForeignKeys) == 0 && len(r.Corrupt) == 0
}

// openRaw opens path read-only without any check of ours: for Check and
// Salvage, which must read a damaged file.
func openRaw(path string) (*sql.DB, error) {
	uri, err := existingURI(path)
	if err != nil {
		return nil, err
	}
	sdb, err := sql.Open("sqlite", uri+fmt.Sprintf("?mode=ro&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	return sdb, nil
}

// Check checks the inventory at path in full, reading only: SQLite's
// integrity_check and foreign_key_check, then every manifest's bytes
// re-hashed and its rows compared with them (what Manifest does on each
// read). Damage is in the report, not an error; the error is for a check
// that could not run at all.
func Check(ctx context.Context, path string) (*CheckReport, error) {
	sdb, err := openRaw(path)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	rep := &CheckReport{Path: path}
	if rep.Integrity, err = sqliteCheck(ctx, sdb, "integrity_check"); err != nil {
		return nil, fmt.Errorf("check inventory %s: %w", path, err)
	}
	if rep.ForeignKeys, err = foreignKeyProblems(ctx, sdb); err != nil {
		rep.Integrity = append(rep.Integrity, err.Error())
	}
	rows, err := sdb.QueryContext(ctx, `SELECT digest FROM manifests ORDER BY digest`)
	if err != nil {
		rep.Integrity = append(rep.Integrity, fmt.Sprintf("list manifests: %v", err))
		return rep, nil
	}
	defer rows.Close()
	for rows.Next() {
		var dg string
		if err := rows.Scan(&dg); err != nil {
			rep.Integrity = append(rep.Integrity, fmt.Sprintf("list manifests: %v", err))
			break
		}
		rep.Manifests++
		if _, err := readManifest(ctx, sdb, dg); err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				ce = &CorruptError{Digest: dg, Reason: "unreadable: " + strings.TrimPrefix(err.Error(), "read manifest "+dg+": ")}
			}
			rep.Corrupt = append(rep.Corrupt, ce)
		}
	}
	if err := rows.Err(); err != nil {
		rep.Integrity = append(rep.Integrity, fmt.Sprintf("list manifests: %v", err))
	}
	return rep, nil
}

func foreignKeyProblems(ctx context.Context, q rowQuerier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return nil, fmt.Errorf("foreign_key_check: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return out, fmt.Errorf("foreign_key_check: %w", err)
		}
		if len(out) < maxProblems {
			out = append(out, fmt.Sprintf("a row of %s names a missing %s", table, parent))
		}
	}
	return out, rows.Err()
}

// Salvaged is what Salvage carried over from a damaged inventory.
type Salvaged struct {
	// Repositories names every repository the old inventory knew, as far
	// as it could be read, sorted.
	Repositories []string
	// Kept counts the manifests carried over (their bytes verified, their
	// rows read again from the bytes); Dropped those left behind.
	Kept, Dropped int
	// Problems says what could not be read.
	Problems []string
}

// Salvage reads what can still be trusted out of the (damaged) inventory
// at path into d, a fresh one: every manifest whose bytes still verify as
// its digest, recorded from its bytes (content-addressed, so a later crawl
// need not fetch it again), and the names of the repositories it knew (for
// a crawl to record their tags anew). Tag history, sync runs and loaded
// manifests are not carried over. It reads as far as the damage lets it;
// what it could not read is in Problems.
func Salvage(ctx context.Context, path string, d *DB) (*Salvaged, error) {
	sdb, err := openRaw(path)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	out := &Salvaged{}
	rows, err := sdb.QueryContext(ctx, `SELECT name FROM repositories ORDER BY name`)
	if err == nil {
		for rows.Next() {
			var n string
			if err = rows.Scan(&n); err != nil {
				break
			}
			out.Repositories = append(out.Repositories, n)
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
	}
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("read repositories: %v", err))
	}
	// Manifests in batches, each verified by the read that Manifest does.
	const batch = 256
	var ms []*Manifest
	flush := func() error {
		err := d.InsertManifests(ctx, ms)
		ms = ms[:0]
		return err
	}
	rows, err = sdb.QueryContext(ctx, `SELECT digest, media_type, raw FROM manifests ORDER BY digest`)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("read manifests: %v", err))
		return out, nil
	}
	defer rows.Close()
	for rows.Next() {
		var dg, mt string
		var raw []byte
		if err := rows.Scan(&dg, &mt, &raw); err != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("read manifests: %v", err))
			break
		}
		m, err := verified(dg, mt, raw)
		if err != nil {
			out.Dropped++
			continue
		}
		out.Kept++
		if ms = append(ms, m); len(ms) == batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("read manifests: %v", err))
	}
	if err := flush(); err != nil {
		return nil, err
	}
	// An index whose children did not all survive would let a crawl take
	// it as complete (a known manifest's children are never fetched): it
	// is dropped too, and so, level by level, every index above it.
	n, err := d.dropIncompleteIndexes(ctx)
	if err != nil {
		return nil, err
	}
	out.Kept -= n
	out.Dropped += n
	return out, nil
}

// dropIncompleteIndexes deletes the indexes that name a child the
// inventory does not hold, until none is left, and returns how many.
func (d *DB) dropIncompleteIndexes(ctx context.Context) (int, error) {
	total := 0
	for {
		res, err := d.db.ExecContext(ctx, `DELETE FROM manifests WHERE is_index = 1 AND digest IN (
			SELECT c.parent_digest FROM manifest_children c
			WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = c.child_digest))`)
		if err != nil {
			return total, fmt.Errorf("drop incomplete indexes: %w", err)
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return total, nil
		}
		total += int(n)
	}
}

// Replace puts the inventory at rebuilt (closed) in the place of the one
// at path, which is kept beside it as path.damaged-TIME, with its
// write-ahead log. It returns where the old file went. Nothing may have
// either open.
func Replace(path, rebuilt string, now time.Time) (string, error) {
	backup := fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			if err := os.Rename(path+suffix, backup+suffix); err != nil {
				return "", fmt.Errorf("replace inventory %s: %w", path, err)
			}
		}
	}
	if err := os.Rename(path, backup); err != nil {
		return "", fmt.Errorf("replace inventory %s: %w", path, err)
	}
	if err := os.Rename(rebuilt, path); err != nil {
		return "", fmt.Errorf("replace inventory %s: %w (the old one is %s)", path, err, backup)
	}
	return backup, nil
}
