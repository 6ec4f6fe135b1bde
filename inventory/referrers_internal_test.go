package inventory

import (
	"context"
	"path/filepath"
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
