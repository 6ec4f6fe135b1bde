package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// ErrDenied is returned by Reader.Query (or its Rows.Err) for a statement
// that would do more than read.
var ErrDenied = errors.New("the inventory is read-only")

// Reader is an inventory opened so that nothing can change it, for
// statements cip did not write itself: the SQL of cip query, typed by a
// user or translated from a question. Everything runs on one pinned
// SQLite connection opened read-only (mode=ro, query_only) with an
// authorizer that lets SELECT, reads, functions (not load_extension),
// recursive CTEs and read-only pragmas through and denies everything else,
// so that neither a write nor an ATTACH nor a VACUUM INTO can be slipped
// in, not even in a CTE or a second statement.
//
// The connection also holds a temporary table, promotions (see
// LoadPromotions), in its temp schema: the inventory file is never
// written.
//
// A Reader runs one statement at a time, from one goroutine.
type Reader struct {
	db   *sql.DB
	conn *sql.Conn
	path string
	// own is set while the Reader prepares its own statements (the
	// promotions table, the schema listing, lookups): the authorizer judges
	// every other statement.
	own bool
	// denied is the first operation the authorizer denied in the current
	// statement.
	denied string
}

// readerHeapLimit is the heap SQLite tries to stay under for a Reader (its
// soft_heap_limit, process-wide): past it SQLite gives page cache back
// before it allocates more. A Reader's statements stream their rows, and
// SQLite's default page cache for one connection is 2 MiB, so 256 MiB is
// reached only by a statement that sorts or groups far more than any
// question of cip's does.
const readerHeapLimit = 256 << 20

// existingURI returns the SQLite URI of the inventory file at path, which
// must exist and not be a directory: what the read-only opens (OpenReadOnly,
// openRaw) start from; Open creates the file instead.
func existingURI(path string) (string, error) {
	if err := refuseDirectory(path); err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("open inventory %s: %w", path, err)
	}
	uri, err := fileURI(path)
	if err != nil {
		return "", fmt.Errorf("open inventory %s: %w", path, err)
	}
	return uri, nil
}

// OpenReadOnly opens the existing inventory at path for reading only. It
// refuses an inventory written by a newer cip, and one that lacks
// migrations this cip has: migrations run only in Open, which writes, so
// the reader asks for a command that opens the inventory for writing
// first.
func OpenReadOnly(ctx context.Context, path string) (*Reader, error) {
	uri, err := existingURI(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	sdb, err := sql.Open("sqlite", uri+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	r, err := newReader(ctx, sdb, path, checkCurrent)
	if err != nil {
		sdb.Close()
		var de *DamagedError
		if errors.As(err, &de) {
			return nil, err
		}
		if IsDamaged(err) {
			return nil, &DamagedError{Path: path, Problems: []string{err.Error()}}
		}
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	return r, nil
}

// OpenEmpty opens an empty inventory in memory with the current schema,
// read-only like OpenReadOnly: for questions that need no inventory file
// (cip query before any sync answers from the manifests alone).
func OpenEmpty(ctx context.Context) (*Reader, error) {
	sdb, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		return nil, fmt.Errorf("open empty inventory: %w", err)
	}
	// Every connection to :memory: is a database of its own: keep one.
	sdb.SetMaxOpenConns(1)
	d := &DB{db: sdb, Now: func() time.Time { return time.Now().UTC() }}
	if err := d.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open empty inventory: %w", err)
	}
	r, err := newReader(ctx, sdb, "", nil)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open empty inventory: %w", err)
	}
	return r, nil
}

// checkCurrent refuses a schema other than this cip's: a newer one, or
// one that lacks migrations.
func checkCurrent(have map[int]bool, ms []migration) error {
	if err := checkNotNewer(have, ms); err != nil {
		return err
	}
	newest := 0
	for v := range have {
		newest = max(newest, v)
	}
	for _, m := range ms {
		if !have[m.version] {
			return fmt.Errorf("schema version %d is older than this cip's (%d), and reading never migrates it: run cip sync once to bring it up to date", newest, ms[len(ms)-1].version)
		}
	}
	return nil
}

// newReader pins one connection of sdb, checks the schema version with
// check (nil: none), creates the promotions table and installs the
// authorizer.
func newReader(ctx context.Context, sdb *sql.DB, path string, check func(map[int]bool, []migration) error) (*Reader, error) {
	conn, err := sdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	r := &Reader{db: sdb, conn: conn, path: path}
	if check != nil {
		ms, err := schema()
		if err != nil {
			conn.Close()
			return nil, err
		}
		have, err := applied(ctx, conn)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if err := check(have, ms); err != nil {
			conn.Close()
			return nil, err
		}
		// The cheap check at open; a reader cannot record that it passed.
		if _, err := checkOpen(ctx, conn, path, time.Now()); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := r.createPromotions(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA soft_heap_limit = %d`, readerHeapLimit)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set soft heap limit: %w", err)
	}
	if err := r.lockDown(); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// Close closes the reader.
func (r *Reader) Close() error {
	r.conn.Close()
	return r.db.Close()
}

// Path returns the file the inventory lives in ("" for OpenEmpty's).
func (r *Reader) Path() string { return r.path }

const promotionsDDL = `CREATE TEMP TABLE promotions (
    src        TEXT NOT NULL,
    dst        TEXT NOT NULL,
    image      TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    tag        TEXT NOT NULL,
    file       TEXT NOT NULL,
    line       INTEGER NOT NULL
);
CREATE INDEX temp.promotions_repository ON promotions(repository, digest)`

// writable lifts query_only for the duration of f, which writes the temp
// schema only: the file stays mode=ro (OpenEmpty's has nothing to
// protect).
func (r *Reader) writable(ctx context.Context, f func() error) (err error) {
	if _, err := r.conn.ExecContext(ctx, `PRAGMA query_only = 0`); err != nil {
		return err
	}
	defer func() {
		if _, rerr := r.conn.ExecContext(ctx, `PRAGMA query_only = 1`); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return f()
}

// createPromotions makes the temporary promotions table.
func (r *Reader) createPromotions(ctx context.Context) error {
	err := r.writable(ctx, func() error {
		_, err := r.conn.ExecContext(ctx, promotionsDDL)
		return err
	})
	if err != nil {
		return fmt.Errorf("prepare promotions table: %w", err)
	}
	return nil
}

// Promotion is what one manifest entry promotes: Digest into Dst/Image
// from Src, with Tags.
type Promotion struct {
	Src, Dst, Image, Digest string
	Tags                    []string
	File                    string // images file
	Line                    int    // line of the digest in File
}

// LoadPromotions adds ps to the temporary table
//
//	promotions(src, dst, image, repository, digest, tag, file, line)
//
// in one transaction: for each, one row with an empty tag that stands for
// the digest itself and one more per tag; repository is dst || '/' || image.
func (r *Reader) LoadPromotions(ctx context.Context, ps []Promotion) error {
	r.own = true
	defer func() { r.own = false }()
	return r.writable(ctx, func() error {
		tx, err := r.conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("load promotions: %w", err)
		}
		defer tx.Rollback()
		st, err := tx.PrepareContext(ctx, `INSERT INTO temp.promotions(src, dst, image, repository, digest, tag, file, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("load promotions: %w", err)
		}
		defer st.Close()
		for _, p := range ps {
			repo := p.Dst + "/" + p.Image
			for _, tag := range append([]string{""}, p.Tags...) {
				if _, err := st.ExecContext(ctx, p.Src, p.Dst, p.Image, repo, p.Digest, tag, p.File, p.Line); err != nil {
					return fmt.Errorf("load promotion %s@%s (%s:%d): %w", repo, p.Digest, p.File, p.Line, err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("load promotions: %w", err)
		}
		return nil
	})
}

// CountSynced counts the repositories equal to or below prefix that a
// crawl completed (synced_at set).
func (r *Reader) CountSynced(ctx context.Context, prefix string) (int, error) {
	r.own = true
	defer func() { r.own = false }()
	var n int
	err := r.conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM repositories r WHERE `+underSQL("r.name")+` AND r.synced_at IS NOT NULL`,
		underArgs(prefix)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("look up %s in the inventory: %w", prefix, err)
	}
	return n, nil
}

// Table is a table or view of the inventory, or a temporary table of the
// Reader, with its columns in order.
type Table struct {
	Name    string
	Kind    string // "table", "view" or "temporary table"
	Columns []Column
}

// Column is a column of a Table, with its declared type.
type Column struct{ Name, Type string }

// Tables lists the inventory's tables and views and the Reader's
// temporary tables (promotions), by name, without SQLite's own.
func (r *Reader) Tables(ctx context.Context) ([]Table, error) {
	r.own = true
	defer func() { r.own = false }()
	rows, err := r.conn.QueryContext(ctx, `SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'
		UNION ALL SELECT name, 'temporary table' FROM sqlite_temp_schema WHERE type = 'table'
		ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	var out []Table
	for rows.Next() {
		var t Table
		if err := rows.Scan(&t.Name, &t.Kind); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema: %w", err)
		}
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	for i := range out {
		cols, err := r.conn.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?)`, out[i].Name)
		if err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", out[i].Name, err)
		}
		for cols.Next() {
			var c Column
			if err := cols.Scan(&c.Name, &c.Type); err != nil {
				cols.Close()
				return nil, fmt.Errorf("read columns of %s: %w", out[i].Name, err)
			}
			out[i].Columns = append(out[i].Columns, c)
		}
		cols.Close()
		if err := cols.Err(); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", out[i].Name, err)
		}
	}
	return out, nil
}

// Rows is the result of Reader.Query, read one row at a time: nothing is
// buffered beyond the current row, so a huge result costs no memory.
type Rows struct {
	r       *Reader
	ctx     context.Context
	rows    *sql.Rows
	release func() // stops interrupting the statement
	cols    []string
	cur     []any
	err     error
}

// Query runs stmt, which may only read, with args (positional, or
// sql.Named for :name parameters). A statement that would do more is
// refused with ErrDenied, when it is prepared or while its rows are read.
// A statement SQLite cannot prepare (a syntax error, an unknown table or
// column) returns SQLite's own error as it is: it is addressed to whoever
// wrote the statement.
//
// The statement ends when ctx does, wherever it is (interrupted, see
// interrupt.go): a deadline bounds a query that never ends; Rows.Err then
// wraps ctx's error.
func (r *Reader) Query(ctx context.Context, stmt string, args ...any) (*Rows, error) {
	r.denied = ""
	release := watch(ctx, r.conn)
	rows, err := r.conn.QueryContext(ctx, stmt, args...)
	if err != nil {
		release()
		if r.denied != "" {
			return nil, r.deniedError()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run query: %w", ctx.Err())
		}
		return nil, err
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		release()
		return nil, fmt.Errorf("read columns: %w", err)
	}
	return &Rows{r: r, ctx: ctx, rows: rows, release: release, cols: cols}, nil
}

func (r *Reader) deniedError() error {
	return fmt.Errorf("%w: %s is not allowed", ErrDenied, r.denied)
}

// Columns returns the names of the result's columns.
func (rs *Rows) Columns() []string { return rs.cols }

// Next reads the next row; it returns false at the end or on an error
// (see Err).
func (rs *Rows) Next() bool {
	if rs.err != nil || !rs.rows.Next() {
		return false
	}
	vals := make([]any, len(rs.cols))
	ptrs := make([]any, len(rs.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rs.rows.Scan(ptrs...); err != nil {
		rs.err = fmt.Errorf("read result: %w", err)
		return false
	}
	for i, v := range vals {
		if b, ok := v.([]byte); ok {
			vals[i] = string(b)
		}
	}
	rs.cur = vals
	return true
}

// Row returns the row Next read, one value per column as SQLite gives it
// (nil, int64, float64, string; BLOBs as strings too). The slice is the
// caller's to keep.
func (rs *Rows) Row() []any { return rs.cur }

// Err returns the error that ended Next, if any: wrapping ctx's error
// when the query's context ended (its deadline, say) before its last row.
func (rs *Rows) Err() error {
	err := rs.err
	if err == nil {
		err = rs.rows.Err()
	}
	if err == nil {
		return nil
	}
	if rs.r.denied != "" {
		return rs.r.deniedError()
	}
	if cerr := rs.ctx.Err(); cerr != nil {
		return fmt.Errorf("run query: %w", cerr)
	}
	return err
}

// Close ends the statement.
func (rs *Rows) Close() error {
	err := rs.rows.Close()
	rs.release()
	return err
}

// schemaPragmas read the schema; their argument is a table or index name.
var schemaPragmas = map[string]bool{
	"table_info": true, "table_xinfo": true, "table_list": true, "index_list": true,
	"index_info": true, "index_xinfo": true, "foreign_key_list": true, "database_list": true,
	"collation_list": true, "function_list": true, "pragma_list": true, "compile_options": true,
	"integrity_check": true, "quick_check": true,
}

// readPragmas are allowed without an argument only (with one they set).
var readPragmas = map[string]bool{
	"user_version": true, "schema_version": true, "application_id": true, "page_count": true,
	"page_size": true, "freelist_count": true, "encoding": true, "journal_mode": true,
	"foreign_keys": true, "query_only": true, "data_version": true,
}

// lockDown installs the authorizer: from here on the connection runs only
// statements that read, and the Reader's own.
func (r *Reader) lockDown() error {
	return r.conn.Raw(func(dc any) error {
		ar, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("lock inventory read-only: the sqlite driver has no authorizer")
		}
		return ar.RegisterAuthorizer(r.authorize)
	})
}

func (r *Reader) authorize(a sqlite.AuthorizerActionCode, arg1, arg2, _, _ string) sqlite.AuthorizerReturnCode {
	if r.own {
		return sqlite.AuthorizerOK
	}
	switch a {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthRecursive:
		return sqlite.AuthorizerOK
	case sqlite.AuthFunction:
		if !strings.EqualFold(arg2, "load_extension") {
			return sqlite.AuthorizerOK
		}
	case sqlite.AuthPragma:
		if p := strings.ToLower(arg1); schemaPragmas[p] || readPragmas[p] && arg2 == "" {
			return sqlite.AuthorizerOK
		}
	}
	if r.denied == "" {
		r.denied = describeAction(a, arg1, arg2)
	}
	return sqlite.AuthorizerDeny
}

func describeAction(a sqlite.AuthorizerActionCode, arg1, arg2 string) string {
	switch a {
	case sqlite.AuthInsert:
		return "INSERT into " + arg1
	case sqlite.AuthUpdate:
		return "UPDATE of " + arg1
	case sqlite.AuthDelete:
		return "DELETE from " + arg1
	case sqlite.AuthAttach:
		return "ATTACH (or VACUUM INTO)"
	case sqlite.AuthDetach:
		return "DETACH"
	case sqlite.AuthPragma:
		if arg2 != "" {
			return fmt.Sprintf("PRAGMA %s = %s", arg1, arg2)
		}
		return "PRAGMA " + arg1
	case sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return "a transaction"
	case sqlite.AuthCreateTable, sqlite.AuthCreateTempTable, sqlite.AuthCreateIndex, sqlite.AuthCreateTempIndex,
		sqlite.AuthCreateView, sqlite.AuthCreateTempView, sqlite.AuthCreateTrigger, sqlite.AuthCreateTempTrigger, sqlite.AuthCreateVTable:
		return "CREATE " + arg1
	case sqlite.AuthDropTable, sqlite.AuthDropTempTable, sqlite.AuthDropIndex, sqlite.AuthDropTempIndex,
		sqlite.AuthDropView, sqlite.AuthDropTempView, sqlite.AuthDropTrigger, sqlite.AuthDropTempTrigger, sqlite.AuthDropVTable:
		return "DROP " + arg1
	case sqlite.AuthAlterTable:
		return "ALTER TABLE " + arg2
	case sqlite.AuthReindex:
		return "REINDEX"
	case sqlite.AuthAnalyze:
		return "ANALYZE"
	case sqlite.AuthFunction:
		return arg2 + "()"
	}
	return fmt.Sprintf("operation %d", a)
}
