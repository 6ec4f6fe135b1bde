package inventory

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// Goroutines reading through the cache at once share one statement per
// text, and each reads what an unprepared statement reads; a transaction
// on a pool of one connection borrows the cached statement instead of
// waiting for a second connection.
func TestStmtCacheSharedAndInTransaction(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.WriteRepository(ctx, 0, RepositoryState{Name: "r.example/a", Tags: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT COUNT(*) FROM repositories WHERE name = ?`
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				var n int
				if err := d.cached().QueryRowContext(ctx, q, "r.example/a").Scan(&n); err != nil || n != 1 {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("read through the cache: %v (or a wrong count)", err)
	}
	d.stmts.mu.Lock()
	n := len(d.stmts.m)
	d.stmts.mu.Unlock()
	if n != 1 {
		t.Fatalf("cache holds %d statements after one text, want 1", n)
	}

	d.db.SetMaxOpenConns(1)
	tx, err := d.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var got int
	if err := tx.QueryRowContext(ctx, q, "r.example/a").Scan(&got); err != nil || got != 1 {
		t.Fatalf("borrowed statement in a transaction = %d, %v", got, err)
	}
	// A text the cache does not hold is prepared on the transaction alone.
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM repositories`).Scan(&got); err != nil || got != 1 {
		t.Fatalf("transaction's own statement = %d, %v", got, err)
	}
}
