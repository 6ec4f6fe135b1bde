package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// checkEvery is how long a passing quick_check is trusted when the file
// is as cip left it: a day. quick_check reads every page (0.74 s for a
// file of 346 MB on a 2-core machine under load; integrity_check 1.9 s),
// so a daily check costs little even for an inventory of registry.k8s.io's
// size, and
// damage that leaves the size alone (a flipped bit) is found within a day
// of cip's next run; cip inventory check finds it at once.
const checkEvery = 24 * time.Hour

// maxProblems caps how many lines of integrity_check (or quick_check) an
// error or a report carries: the first few name the damage; a badly
// damaged file has thousands.
const maxProblems = 20

// DamagedError refuses an inventory whose file SQLite finds damaged.
type DamagedError struct {
	Path     string
	Problems []string // quick_check's or integrity_check's lines, at most maxProblems
}

func (e *DamagedError) Error() string {
	shown := e.Problems
	if len(shown) > 3 {
		shown = append(shown[:3:3], "…")
	}
	return fmt.Sprintf("inventory %s is damaged (%s): run cip inventory check to see what, and cip inventory rebuild to rebuild it from the registries", e.Path, strings.Join(shown, "; "))
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *DamagedError) Unwrap() error { return ErrCorrupt }

// IsDamaged reports whether err says the inventory is damaged: a
// *DamagedError, a *CorruptError, or SQLite finding the file malformed
// while it read it (SQLITE_CORRUPT, SQLITE_NOTADB).
func IsDamaged(err error) bool {
	if errors.Is(err, ErrCorrupt) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// health is the inventory_health row.
type health struct {
	closedSize sql.NullInt64
	checkedAt  sql.NullInt64
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func readHealth(ctx context.Context, q rowQuerier) (health, error) {
	var h health
	err := q.QueryRowContext(ctx, `SELECT closed_size, checked_at FROM inventory_health WHERE id = 1`).Scan(&h.closedSize, &h.checkedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil // as after a crash: check
	}
	return h, err
}

// checkDue says why the file at path needs a quick_check before it is
// trusted ("" when it does not): it was not closed cleanly (a crash, or
// another cip has it open), it is not the size cip closed it at, or the
// last passing check is older than checkEvery.
func checkDue(h health, path string, now time.Time) string {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return "cannot read its size"
	case !h.closedSize.Valid:
		return "not closed cleanly since it was last opened"
	case h.closedSize.Int64 != st.Size():
		return fmt.Sprintf("%d bytes, not the %d cip closed it at", st.Size(), h.closedSize.Int64)
	case !h.checkedAt.Valid || now.Sub(time.Unix(h.checkedAt.Int64, 0)) >= checkEvery:
		return "its last check is a day old"
	}
	return ""
}

// sqliteCheck runs PRAGMA quick_check or integrity_check and returns its
// complaints (none when it says ok), at most maxProblems. A check that
// cannot even run (the file is not a database) is a complaint too.
func sqliteCheck(ctx context.Context, q rowQuerier, pragma string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `PRAGMA `+pragma)
	if err != nil {
		if IsDamaged(err) {
			return []string{err.Error()}, nil
		}
		return nil, fmt.Errorf("%s: %w", pragma, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("%s: %w", pragma, err)
		}
		if s == "ok" {
			continue
		}
		// One row may hold several lines ("*** in database main ***", then
		// one per tree).
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "***") && len(out) < maxProblems {
				out = append(out, l)
			}
		}
	}
	if err := rows.Err(); err != nil {
		if IsDamaged(err) {
			return append(out, err.Error()), nil
		}
		return nil, fmt.Errorf("%s: %w", pragma, err)
	}
	return out, nil
}

// checkOpen is the cheap check at open: quick_check when checkDue says
// so, refusing a damaged file. It reports whether the check ran (and
// passed).
func checkOpen(ctx context.Context, q rowQuerier, path string, now time.Time) (bool, error) {
	h, err := readHealth(ctx, q)
	if err != nil {
		if IsDamaged(err) {
			return false, &DamagedError{Path: path, Problems: []string{err.Error()}}
		}
		return false, fmt.Errorf("read inventory health: %w", err)
	}
	if checkDue(h, path, now) == "" {
		return false, nil
	}
	problems, err := sqliteCheck(ctx, q, "quick_check")
	if err != nil {
		return false, err
	}
	if len(problems) > 0 {
		return false, &DamagedError{Path: path, Problems: problems}
	}
	return true, nil
}

// markOpen records, after the check at open, that the file is in use (no
// clean close yet) and, when the check ran, when it passed.
func (d *DB) markOpen(ctx context.Context, checked bool) error {
	var err error
	if checked {
		_, err = d.db.ExecContext(ctx, `UPDATE inventory_health SET closed_size = NULL, checked_at = ? WHERE id = 1`, d.Now().Unix())
	} else {
		_, err = d.db.ExecContext(ctx, `UPDATE inventory_health SET closed_size = NULL WHERE id = 1 AND closed_size IS NOT NULL`)
	}
	if err != nil {
		return fmt.Errorf("record inventory health: %w", err)
	}
	return nil
}

// markClosed records the file's size at a clean close: the write-ahead
// log is folded into the file first, and the row updated is one that
// exists, so the file keeps that size when the last connection closes.
// Best effort, and never waiting: the checkpoint is PASSIVE (a TRUNCATE
// one waits out every reader, a cip query of 30 s, say), so another cip
// using the file at the same time may keep the log from folding, and the
// next open then just checks.
func (d *DB) markClosed() {
	ctx := context.Background()
	if _, err := d.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		return
	}
	st, err := os.Stat(d.path)
	if err != nil {
		return
	}
	_, _ = d.db.ExecContext(ctx, `UPDATE inventory_health SET closed_size = ? WHERE id = 1`, st.Size())
}
