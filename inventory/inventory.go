// Package inventory is cip's local SQLite database of what registries hold:
// repositories, manifests (with their exact bytes), index children with
// platforms, config and layer blobs, tags, tag history and sync runs. The
// schema lives in the migrations package and is documented in
// docs/schema.md.
//
// Every exported write is one transaction; none is held across network I/O.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cipdev/cip/migrations"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeout is how long a writer waits for another process's write lock:
// long enough for a concurrent sync's per-repository transaction (tens of
// milliseconds) to finish many times over.
const busyTimeout = 30 * time.Second

// maxIdleConns is how many idle connections an inventory keeps open
// (database/sql's default is 2). At 16 a warm --confirm into 22 mirrors
// (the WAN bench at 1/16) still closes about 150 connections in a run, but
// no longer spends CPU reopening them; each one kept costs a file handle
// and up to its page cache (512 KiB, below), so 16 bounds that to 8 MB.
const maxIdleConns = 16

// DB is an open inventory.
type DB struct {
	db    *sql.DB
	stmts *stmtCache
	path  string
	// Now is the clock used for timestamps; tests replace it.
	Now func() time.Time
}

// DefaultPath is the inventory path used when neither --db nor $CIP_DB is
// given: cip/inventory.db under the user cache directory.
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find user cache dir: %w", err)
	}
	return filepath.Join(dir, "cip", "inventory.db"), nil
}

// Open opens (creating if needed, mode 0600) the inventory at path, sets WAL,
// foreign keys and a busy timeout, and applies pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := refuseDirectory(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	uri, err := fileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// A page cache of 512 KiB per connection, not SQLite's 2 MB: a crawl
	// of 22 mirrors holds 38 connections at once (1/4 of registry.k8s.io
	// in the WAN bench), and the file's pages are in the OS's cache anyway.
	// The fresh plan there peaked at 189 MiB instead of 231-261, as fast;
	// planning at full scale offline (BenchmarkPlanK8s) took 1.73 s instead
	// of 1.56 (one run each).
	q.Add("_pragma", "cache_size(-512)")
	// BEGIN IMMEDIATE: take the write lock at the start of a write
	// transaction, so two writers queue on busy_timeout instead of failing
	// with SQLITE_BUSY on lock upgrade.
	q.Add("_txlock", "immediate")
	sdb, err := sql.Open("sqlite", uri+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	// Connections kept open between statements: with database/sql's 2, a
	// crawl's goroutines (jobs per host, hosts side by side) opened
	// connections again and again, each one parsing its pragmas and
	// preparing its statements anew (13% of a warm --confirm's CPU).
	sdb.SetMaxIdleConns(maxIdleConns)
	d := &DB{db: sdb, stmts: newStmtCache(sdb), path: path, Now: func() time.Time { return time.Now().UTC() }}
	if err := d.migrate(ctx); err != nil {
		sdb.Close()
		if IsDamaged(err) {
			return nil, &DamagedError{Path: path, Problems: []string{err.Error()}}
		}
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	checked, err := checkOpen(ctx, sdb, path, d.Now())
	if err == nil {
		err = d.markOpen(ctx, checked)
	}
	if err != nil {
		sdb.Close()
		var de *DamagedError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	return d, nil
}

// fileURI turns a file path into the SQLite URI that names exactly that
// file: absolute, and escaped, so that a ?, # or % in it is part of the
// name, not the start of URI parameters (a path "inv?x.db" opened as
// "file:inv?x.db" was the file "inv" with a parameter x.db, and
// ":memory:" style names stay files).
func fileURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	return u.String(), nil
}

// refuseDirectory refuses an inventory path that is a directory, saying
// what --db wants.
func refuseDirectory(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("open inventory %s: is a directory: --db (and $CIP_DB) name the inventory file, e.g. %s", path, filepath.Join(path, "inventory.db"))
	}
	return nil
}

// Close records a clean close (the file's size, for the check at the
// next open) and closes the database.
func (d *DB) Close() error {
	d.markClosed()
	d.stmts.close()
	return d.db.Close()
}

// Path returns the file the inventory lives in.
func (d *DB) Path() string { return d.path }

func (d *DB) now() string { return d.Now().UTC().Format(time.RFC3339Nano) }

// migration is one schema file of the migrations package.
type migration struct {
	version    int
	name, body string
}

// schema returns the embedded migrations in version order.
func schema() ([]migration, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	for _, n := range names {
		var version int
		if _, err := fmt.Sscanf(n, "%04d_", &version); err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a 4-digit version", n)
		}
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: n, body: string(body)})
	}
	return out, nil
}

// applied reads the versions recorded in schema_migrations: none when the
// table does not exist yet (a new file, or one whose first migration never
// committed).
func applied(ctx context.Context, q querier) (map[int]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	exists := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	out := map[int]bool{}
	if !exists {
		return out, nil
	}
	if rows, err = q.QueryContext(ctx, `SELECT version FROM schema_migrations`); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		out[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	return out, nil
}

// checkNotNewer refuses an inventory that records a migration this cip
// does not have: a newer cip wrote it, and this one would misread (or, by
// writing, break) a schema it does not know.
func checkNotNewer(have map[int]bool, ms []migration) error {
	known := map[int]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	newest := 0
	for v := range have {
		if !known[v] && v > newest {
			newest = v
		}
	}
	if newest > 0 {
		return fmt.Errorf("written by a newer cip (schema version %d, this cip knows up to %d): upgrade cip or use another --db", newest, ms[len(ms)-1].version)
	}
	return nil
}

// migrate applies the migrations the inventory lacks, each in its own
// transaction, after refusing an inventory a newer cip wrote.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := schema()
	if err != nil {
		return err
	}
	have, err := applied(ctx, d.db)
	if err != nil {
		return err
	}
	if err := checkNotNewer(have, ms); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if have[m.version] {
			continue
		}
		if err := d.applyMigration(ctx, m.version, m.name, m.body); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

func (d *DB) applyMigration(ctx context.Context, version int, name, body string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if after := afterMigration[version]; after != nil {
		if err := after(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, version, name, d.now()); err != nil {
		return err
	}
	return tx.Commit()
}

// SplitRepository splits a full repository name into host and path.
func SplitRepository(full string) (registry, path string) {
	i := strings.IndexByte(full, '/')
	if i < 0 {
		return full, ""
	}
	return full[:i], full[i+1:]
}

// Under reports whether name is prefix or lies below it by whole path
// segments (gcr.io/foo covers gcr.io/foo/bar, not gcr.io/foobar).
func Under(name, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return name == prefix || strings.HasPrefix(name, prefix+"/")
}

// underSQL is the SQL form of Under for column col, taking the prefix twice
// as parameters: (prefix, prefix). It uses substr rather than LIKE so that
// '_' and '%' in names are not wildcards.
func underSQL(col string) string {
	return fmt.Sprintf("(%[1]s = ? OR substr(%[1]s, 1, length(?) + 1) = ? || '/')", col)
}

// underArgs returns the parameters for underSQL.
func underArgs(prefix string) []any {
	prefix = strings.TrimSuffix(prefix, "/")
	return []any{prefix, prefix, prefix}
}

// ErrNotFound is returned by lookups that find nothing.
var ErrNotFound = errors.New("not found")
