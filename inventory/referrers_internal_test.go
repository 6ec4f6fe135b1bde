package inventory

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A repository's write derives its own referrers rows through the
// (repository_id, …) keys of tags and referrers: a plan that scans either
// table costs every write the whole inventory, which made a fresh crawl of
// 22 mirrors quadratic (three quarters of its CPU).
func TestDeriveReferrersOneRepositorySearches(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stmts := strings.Split(strings.TrimSpace(deriveOne), ";\n")
	if len(stmts) != 2 {
		t.Fatalf("deriveOne has %d statements, want 2 (DELETE, INSERT)", len(stmts))
	}
	for _, stmt := range stmts {
		rows, err := d.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+stmt, int64(1))
		if err != nil {
			t.Fatalf("explain %.40q: %v", stmt, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if len(plan) == 0 {
			t.Fatalf("explain %.40q: no plan", stmt)
		}
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") {
				t.Errorf("%.40q: plan step %q scans a table, want every step a SEARCH by key; plan:\n%s", stmt, step, strings.Join(plan, "\n"))
			}
		}
	}
}

// referrerRows lists the referrers table, for comparing derivations.
func referrerRows(t *testing.T, d *DB) []string {
	t.Helper()
	rows, err := d.db.Query(`SELECT repository_id, subject_digest, referrer_digest, artifact_type, found_by FROM referrers ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var repo int64
		var subject, ref, at, by string
		if err := rows.Scan(&repo, &subject, &ref, &at, &by); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %s %s %s %s", repo, subject, ref, at, by))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The derivation of every repository at once (migration 0006's) gives the
// rows the writes of each repository gave.
func TestDeriveReferrersAllEqualsEachRepository(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, repo := range []string{"r.example/a", "r.example/b", "r.example/c"} {
		img, sig := bigImage(t, 2*i, 10), bigImage(t, 2*i+1, 10)
		tags := map[string]string{"v1": img.Digest, strings.Replace(img.Digest, ":", "-", 1) + ".sig": sig.Digest}
		if _, err := d.WriteRepository(ctx, 0, RepositoryState{Name: repo, Tags: tags, New: []*Manifest{img, sig}}); err != nil {
			t.Fatal(err)
		}
	}
	each := referrerRows(t, d)
	if len(each) != 3 {
		t.Fatalf("after the writes: %d referrers rows, want 3 (one signature per repository):\n%s", len(each), strings.Join(each, "\n"))
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM referrers`); err != nil {
		t.Fatal(err)
	}
	if err := deriveReferrersOf(ctx, tx, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if all := referrerRows(t, d); !slices.Equal(all, each) {
		t.Errorf("derived for all repositories:\n%s\nwant, as each repository's write derived:\n%s", strings.Join(all, "\n"), strings.Join(each, "\n"))
	}
}
