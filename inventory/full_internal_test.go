package inventory

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/digest"
)

// fullAfter opens an inventory whose file cannot grow past pages pages
// (SQLite's max_page_count: SQLITE_FULL, as a full disk gives), on one
// connection so that the limit holds for every statement.
func fullAfter(t *testing.T, pages int) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.db.SetMaxOpenConns(1)
	var n int
	if err := d.db.QueryRow(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return d
}

func bigImage(t *testing.T, n, size int) *Manifest {
	t.Helper()
	raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:%064x","size":1},"layers":[],"annotations":{"pad":%q}}`, n, strings.Repeat("x", size))
	m, err := ParseManifest(digest.SHA256(raw), "application/vnd.oci.image.manifest.v1+json", raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A write that fills the disk reports the disk full, not the savepoint it
// could no longer roll back to, and leaves the inventory as it was.
func TestWriteRepositoriesDiskFull(t *testing.T) {
	ctx := context.Background()
	d := fullAfter(t, 0)
	var pages int
	if err := d.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// Room for the first repository (a few pages), not for the second's
	// manifest of 64 pages.
	if _, err := d.db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+8)); err != nil {
		t.Fatal(err)
	}
	small := bigImage(t, 1, 100)
	if _, err := d.WriteRepository(ctx, 0, RepositoryState{Name: "r.example/small", Tags: map[string]string{"v1": small.Digest}, New: []*Manifest{small}}); err != nil {
		t.Fatal(err)
	}
	big := bigImage(t, 2, 64*4096)
	other := bigImage(t, 3, 100)
	res, err := d.WriteRepositories(ctx, 0, []RepositoryState{
		{Name: "r.example/other", Tags: map[string]string{"v1": other.Digest}, New: []*Manifest{other}},
		{Name: "r.example/big", Tags: map[string]string{"v1": big.Digest}, New: []*Manifest{big}},
	})
	if err == nil {
		for _, r := range res {
			err = r.Err
			if err != nil {
				break
			}
		}
	}
	if err == nil || !strings.Contains(err.Error(), "full") || strings.Contains(err.Error(), "savepoint") || !strings.Contains(err.Error(), "r.example/big") {
		t.Fatalf("write = %v, want the disk full error, naming r.example/big", err)
	}
	var ok string
	if err := d.db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
	repos, err := d.Repositories(ctx, "r.example")
	if err != nil || len(repos) == 0 || repos[0] != "r.example/small" {
		t.Errorf("repositories after the failed write = %v, %v; want r.example/small kept", repos, err)
	}
	for _, r := range repos {
		if r == "r.example/big" {
			t.Error("r.example/big was recorded")
		}
	}
	if m, err := d.Manifest(ctx, small.Digest); err != nil || string(m.Raw) != string(small.Raw) {
		t.Errorf("the manifest written before = %v", err)
	}
}
