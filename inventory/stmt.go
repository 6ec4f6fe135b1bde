package inventory

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the prepared form of the statements cip runs many times
// in one process (once per manifest, per repository, per row), keyed by
// their text. SQLite parses and plans a statement on every prepare, and
// database/sql's DB.QueryContext and Tx.ExecContext prepare afresh on each
// call: a warm plan spent about a quarter of its CPU in the parser. A
// cached *sql.Stmt is prepared once on each connection it runs on, and a
// transaction borrows it for its own connection (Tx.StmtContext). Only
// single statements whose text is a constant go through it: a script is
// prepared piece by piece, which a cache cannot keep, and a text built per
// call (a list of placeholders) would grow the cache without bound.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns q prepared, preparing it on first use. The prepare runs
// outside the lock (it takes a connection from the pool, which may wait);
// when two goroutines prepare q at once, one keeps its statement and the
// other's is closed. A failed prepare is not kept: the next call tries
// again (and reports the same error).
func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := c.peek(q); ok {
		return s, nil
	}
	s, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kept, ok := c.m[q]; ok {
		s.Close()
		return kept, nil
	}
	c.m[q] = s
	return s, nil
}

// peek returns q's statement when the cache holds it.
func (c *stmtCache) peek(q string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[q]
	return s, ok
}

// close finalizes every cached statement (before the database closes:
// SQLite keeps a connection with unfinalized statements open).
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
}

// cachedDB runs statements on the database through its cache; it is a
// querier, and what readManifest reads through.
type cachedDB struct{ c *stmtCache }

func (d *DB) cached() cachedDB { return cachedDB{d.stmts} }

func (q cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := q.c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext is sql.DB's: a statement that does not prepare is run
// unprepared, so that the *sql.Row carries its error.
func (q cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := q.c.get(ctx, query)
	if err != nil {
		return q.c.db.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (q cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := q.c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// txn is what the write helpers shared by several transactions run their
// statements on: a *sql.Tx, or a *cachedTx.
type txn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// cachedTx is a transaction whose QueryContext, QueryRowContext and
// ExecContext prepare each statement once per transaction (borrowing the
// cache's when it holds it); everything else is the *sql.Tx's.
// Not for concurrent use (a transaction is one goroutine's).
type cachedTx struct {
	*sql.Tx
	c     *stmtCache
	local map[string]*sql.Stmt
}

// begin starts a write transaction with a statement cache.
func (d *DB) begin(ctx context.Context) (*cachedTx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &cachedTx{Tx: tx, c: d.stmts, local: map[string]*sql.Stmt{}}, nil
}

func (t *cachedTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := t.local[q]; ok {
		return s, nil
	}
	// A statement the cache holds is borrowed for the transaction's
	// connection (prepared there once). Any other is prepared on the
	// transaction alone: preparing it in the cache would take a second
	// connection while this one holds the write lock, and wait forever on
	// a pool of one.
	var s *sql.Stmt
	if parent, ok := t.c.peek(q); ok {
		s = t.Tx.StmtContext(ctx, parent)
	} else {
		var err error
		if s, err = t.Tx.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
	}
	// Either is closed with the transaction.
	t.local[q] = s
	return s, nil
}

func (t *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext is sql.Tx's: a statement that does not prepare is run
// unprepared, so that the *sql.Row carries its error.
func (t *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return t.Tx.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (t *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}
