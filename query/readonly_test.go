package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritesRefused(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	dir := t.TempDir()
	into := filepath.Join(dir, "copy.db")
	attached := filepath.Join(dir, "attached.db")
	before := hashFile(t, path)
	set := fixtureManifest(t)
	for _, stmt := range []string{
		`INSERT INTO repositories(registry, path, name) VALUES ('a', 'b', 'a/b')`,
		`insert into tags select * from tags`,
		`UPDATE tags SET tag = 'x'`,
		`DELETE FROM tags`,
		`REPLACE INTO sync_runs(id, started_at, refs) VALUES (1, 'x', 'y')`,
		`DROP TABLE tags`,
		`DROP VIEW manifest_sizes`,
		`CREATE TABLE x(a)`,
		`CREATE TEMP TABLE x(a)`,
		`CREATE INDEX x ON tags(tag)`,
		`ALTER TABLE tags ADD COLUMN x`,
		`ATTACH '` + attached + `' AS x`,
		`ATTACH ':memory:' AS x`,
		`DETACH temp`,
		`PRAGMA query_only = 0`,
		`PRAGMA journal_mode = DELETE`,
		`PRAGMA user_version = 7`,
		`PRAGMA writable_schema = 1`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
		`VACUUM`,
		`VACUUM INTO '` + into + `'`,
		`REINDEX`,
		`ANALYZE`,
		`BEGIN`,
		`SAVEPOINT x`,
		`SELECT 1; DELETE FROM tags`,
		`SELECT 1; -- comment
		 DELETE FROM tags`,
		`SELECT ';' ; DELETE FROM tags`,
		`SELECT 1 /* ; */; INSERT INTO tags SELECT * FROM tags`,
		`WITH x AS (SELECT 1) DELETE FROM tags`,
		`WITH x AS (SELECT 1) INSERT INTO tags SELECT * FROM tags`,
		`WITH x AS (SELECT 1) UPDATE tags SET tag = 'x'`,
		`SELECT load_extension('/tmp/x.so')`,
		`INSERT INTO promotions VALUES ('a','b','c','d','e','f','g',1)`,
		`DELETE FROM promotions`,
		`-- a comment first
		DELETE FROM tags`,
		`/* hidden */ DROP TABLE tags`,
		`EXPLAIN DELETE FROM tags`,
	} {
		_, err := sqlAll(ctx, path, stmt, Options{Manifests: set})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("SQL(%q) = %v, want ErrRefused", stmt, err)
			continue
		}
		if !strings.Contains(err.Error(), "read-only") && !strings.Contains(err.Error(), "one statement") {
			t.Errorf("SQL(%q) error %q does not say why", stmt, err)
		}
	}
	if after := hashFile(t, path); after != before {
		t.Errorf("the inventory changed")
	}
	for _, p := range []string{into, attached} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
	// The fixture still answers.
	res, err := sqlAll(ctx, path, `SELECT COUNT(*) FROM tags`, Options{})
	if err != nil || res.Rows[0][0] != int64(13) {
		t.Errorf("tags after refused writes = %v, %v; want 13 (9 in registry.example, 4 in signed.example)", res, err)
	}
}

func TestReadsAllowed(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	set := fixtureManifest(t)
	for _, tc := range []struct {
		stmt string
		want any // first cell
	}{
		{`SELECT COUNT(*) FROM tags;`, int64(13)},
		{`select count(*) from tags -- trailing comment`, int64(13)},
		{`SELECT ';' AS semi`, ";"},
		{`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT MAX(i) FROM n`, int64(5)},
		{`VALUES (42)`, int64(42)},
		{`PRAGMA table_info(tags)`, int64(0)},
		{`SELECT name FROM pragma_table_info('tags') ORDER BY cid LIMIT 1`, "repository_id"},
		{`PRAGMA user_version`, int64(0)},
		{`SELECT COUNT(DISTINCT digest) FROM promotions`, int64(4)},
		{`SELECT total_size FROM manifest_sizes ORDER BY total_size DESC LIMIT 1`, int64(55321)},
	} {
		res, err := sqlAll(ctx, path, tc.stmt, Options{Manifests: set})
		if err != nil {
			t.Errorf("SQL(%q) = %v", tc.stmt, err)
			continue
		}
		if len(res.Rows) == 0 || res.Rows[0][0] != tc.want {
			t.Errorf("SQL(%q) = %v, want first cell %v", tc.stmt, res.Rows, tc.want)
		}
	}
	if _, err := sqlAll(ctx, path, `SELEC 1`, Options{}); !errors.Is(err, ErrRefused) {
		t.Errorf("SQL(SELEC 1) = %v, want ErrRefused", err)
	}
	if _, err := sqlAll(ctx, path, `SELECT nosuchcolumn FROM tags`, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SQL(bad column) = %v, want ErrInvalid", err)
	}
}

func TestIsSQL(t *testing.T) {
	for in, want := range map[string]bool{
		"SELECT 1": true, "  with x as (select 1) select * from x": true, "-- c\nselect 1": true,
		"delete from tags": true, "DROP TABLE tags": true,
		"how many digests in gcr.io/foo": false, "where is sha256:abcd": false, "": false,
	} {
		if got := IsSQL(in); got != want {
			t.Errorf("IsSQL(%q) = %v, want %v", in, got, want)
		}
	}
}

// The authorizer alone (without the statement checks of SQL) refuses
// writes, including a write in a second statement.
func TestAuthorizerDeniesWrites(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	into := filepath.Join(t.TempDir(), "copy.db")
	before := hashFile(t, path)
	for _, stmt := range []string{
		`DELETE FROM tags`,
		`INSERT INTO repositories(registry, path, name) VALUES ('a', 'b', 'a/b')`,
		`DROP TABLE tags`,
		`VACUUM INTO '` + into + `'`,
		`ATTACH ':memory:' AS x`,
		`PRAGMA query_only = 0`,
		`CREATE TEMP TABLE x(a)`,
		`DELETE FROM promotions`,
		`SELECT 1; DELETE FROM tags`,
	} {
		s, _, err := open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.run(ctx, stmt, nil)
		s.close()
		if !errors.Is(err, ErrRefused) {
			t.Errorf("run(%q) = %v, want ErrRefused", stmt, err)
		}
	}
	if hashFile(t, path) != before {
		t.Errorf("the inventory changed")
	}
	if _, err := os.Stat(into); err == nil {
		t.Errorf("VACUUM INTO created %s", into)
	}
}
