package inventory_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/migrations"
)

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// rawSQL opens path with database/sql directly: for tests that make an
// inventory no cip could (an older or a newer schema).
func rawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	ctx := context.Background()
	db, path := mustOpen(t)
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: "r.example/app", Tags: map[string]string{"v1": digest('a')},
		New: []*inventory.Manifest{image('a')}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := hashFile(t, path)
	ro, err := inventory.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, stmt := range []string{
		`INSERT INTO repositories(registry, path, name) VALUES ('a', 'b', 'a/b')`,
		`DELETE FROM tags`,
		`CREATE TEMP TABLE x(a)`,
		`INSERT INTO promotions VALUES ('a','b','c','d','e','f','g',1)`,
		`PRAGMA query_only = 0`,
		`ATTACH ':memory:' AS x`,
		`SELECT 1; DELETE FROM tags`,
	} {
		rows, err := ro.Query(ctx, stmt)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if !errors.Is(err, inventory.ErrDenied) || !strings.Contains(err.Error(), "is not allowed") {
			t.Errorf("Query(%q) = %v, want ErrDenied saying what is not allowed", stmt, err)
		}
	}
	// The reader still reads, and its own table can be loaded.
	if err := ro.LoadPromotions(ctx, []inventory.Promotion{{Src: "s.example", Dst: "d.example/p", Image: "app", Digest: digest('a'), Tags: []string{"v1", "v2"}, File: "f.yaml", Line: 3}}); err != nil {
		t.Fatal(err)
	}
	rows, err := ro.Query(ctx, `SELECT p.repository, p.tag, p.line, COUNT(t.tag) FROM promotions p LEFT JOIN tags t ON t.digest = p.digest AND t.tag = p.tag
		GROUP BY p.repository, p.tag ORDER BY p.tag`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"repository", "tag", "line", "COUNT(t.tag)"}, rows.Columns()); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	var got [][]any
	for rows.Next() {
		got = append(got, rows.Row())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	want := [][]any{{"d.example/p/app", "", int64(3), int64(0)}, {"d.example/p/app", "v1", int64(3), int64(1)}, {"d.example/p/app", "v2", int64(3), int64(0)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("promotions (-want +got):\n%s", diff)
	}
	if n, err := ro.CountSynced(ctx, "r.example"); err != nil || n != 1 {
		t.Errorf("CountSynced(r.example) = %d, %v; want 1", n, err)
	}
	if n, err := ro.CountSynced(ctx, "r.exam"); err != nil || n != 0 {
		t.Errorf("CountSynced(r.exam) = %d, %v; want 0 (whole path segments)", n, err)
	}
	if _, err := ro.Query(ctx, `SELECT nosuchcolumn FROM tags`); err == nil || errors.Is(err, inventory.ErrDenied) {
		t.Errorf("Query(unknown column) = %v, want SQLite's error", err)
	}
	ro.Close()
	if hashFile(t, path) != before {
		t.Errorf("the inventory changed")
	}
	if _, err := inventory.OpenReadOnly(ctx, filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Errorf("OpenReadOnly of a missing file succeeded")
	}
}

// Tables lists the schema the migrations made, the temporary promotions
// table, and each one's columns; OpenEmpty has the same schema.
func TestTablesAndOpenEmpty(t *testing.T) {
	ctx := context.Background()
	db, path := mustOpen(t)
	db.Close()
	ro, err := inventory.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	empty, err := inventory.OpenEmpty(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	fileTables, err := ro.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	emptyTables, err := empty.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fileTables, emptyTables); diff != "" {
		t.Errorf("OpenEmpty's tables differ from a migrated file's (-file +empty):\n%s", diff)
	}
	kinds := map[string]string{}
	for _, tb := range fileTables {
		kinds[tb.Name] = tb.Kind
		if tb.Name == "tags" {
			var cols []string
			for _, c := range tb.Columns {
				cols = append(cols, c.Name+" "+c.Type)
			}
			if !strings.Contains(strings.Join(cols, ","), "checked_at TEXT") {
				t.Errorf("tags columns = %v, want checked_at TEXT (migration 0005)", cols)
			}
		}
	}
	for name, kind := range map[string]string{"tags": "table", "plan": "view", "promotions": "temporary table", "schema_migrations": "table"} {
		if kinds[name] != kind {
			t.Errorf("Tables: %s is %q, want %q", name, kinds[name], kind)
		}
	}
	if _, err := empty.Query(ctx, `DELETE FROM tags`); !errors.Is(err, inventory.ErrDenied) {
		t.Errorf("OpenEmpty: DELETE = %v, want ErrDenied", err)
	}
}

// An inventory a newer cip wrote (a migration this cip does not know) is
// refused by Open and OpenReadOnly before anything is written.
func TestNewerInventoryRefused(t *testing.T) {
	ctx := context.Background()
	db, path := mustOpen(t)
	db.Close()
	raw := rawSQL(t, path)
	if _, err := raw.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (9999, '9999_future.sql', 'x')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	before := hashFile(t, path)
	names, _ := fs.Glob(migrations.FS, "*.sql")
	last, err := strconv.Atoi(names[len(names)-1][:4])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("open inventory %s: written by a newer cip (schema version 9999, this cip knows up to %d): upgrade cip or use another --db", path, last)
	if _, err := inventory.Open(ctx, path); err == nil || err.Error() != want {
		t.Errorf("Open = %v, want %q", err, want)
	}
	if _, err := inventory.OpenReadOnly(ctx, path); err == nil || err.Error() != want {
		t.Errorf("OpenReadOnly = %v, want %q", err, want)
	}
	if hashFile(t, path) != before {
		t.Errorf("the refused inventory changed")
	}
}

// An inventory that lacks this cip's latest migration is migrated by Open
// only; OpenReadOnly refuses it and says how to bring it up to date.
func TestOlderInventoryMigratedByOpenOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("migrations: %v, %v", names, err)
	}
	raw := rawSQL(t, path)
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	old := names[:len(names)-1] // what the previous cip had
	version := func(n string) int {
		v, err := strconv.Atoi(n[:4])
		if err != nil {
			t.Fatalf("migration %s: %v", n, err)
		}
		return v
	}
	for _, n := range old {
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 'x')`, version(n), n); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	before := hashFile(t, path)
	_, err = inventory.OpenReadOnly(ctx, path)
	prefix := fmt.Sprintf("open inventory %s: schema version %d is older than this cip's (%d)", path, version(old[len(old)-1]), version(names[len(names)-1]))
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "run cip sync") {
		t.Errorf("OpenReadOnly(older) = %v, want a refusal saying to run cip sync", err)
	}
	if hashFile(t, path) != before {
		t.Errorf("OpenReadOnly changed the older inventory")
	}
	db, err := inventory.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if n := queryInt(t, path, `SELECT COUNT(*) FROM schema_migrations`); n != int64(len(names)) {
		t.Errorf("after Open, %d migrations recorded, want %d", n, len(names))
	}
}

// A statement ends when its context does, wherever it is: before its
// first row, between rows, and inside a step that never yields the next
// row (modernc.org/sqlite interrupts only the first; the Reader the rest).
func TestQueryEndsWithItsContext(t *testing.T) {
	_, path := mustOpen(t)
	r, err := inventory.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const endless = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) `
	for name, stmt := range map[string]string{
		"no row ever":          endless + `SELECT count(*) FROM c`,
		"rows without end":     endless + `SELECT x FROM c`,
		"one row, then no end": endless + `SELECT x FROM c WHERE x = 1 OR x < 0`,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				rows, err := r.Query(ctx, stmt)
				if err != nil {
					done <- err
					return
				}
				defer rows.Close()
				for rows.Next() {
				}
				done <- rows.Err()
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Query ended with %v, want context.DeadlineExceeded", err)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("Query ended after %s, want about 200ms", took)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Query still running 20s after its deadline")
			}
		})
	}
	// The reader still answers afterwards.
	rows, err := r.Query(context.Background(), `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() || rows.Row()[0] != int64(1) {
		t.Errorf("SELECT 1 after the interrupts = %v (%v)", rows.Row(), rows.Err())
	}
}
