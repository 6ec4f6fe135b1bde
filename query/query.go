// Package query answers questions over the inventory, read-only: SQL
// statements as given, and plain-English questions translated to SQL
// deterministically (no network, no model).
//
// Every statement runs on one pinned SQLite connection to the inventory
// opened read-only (mode=ro, query_only) with an authorizer that lets
// SELECT, reads, functions, recursive CTEs and a few read-only pragmas
// through and denies everything else, so that neither a write nor an
// ATTACH nor a VACUUM INTO can be slipped in, not even in a second
// statement.
//
// Questions match a small grammar of forms (see Forms, or 'cip query
// --list'), with slots REG, REG2, PATTERN, DIGEST, IMAGE:TAG, DATE and N.
// Matching lower-cases, normalises plurals and synonyms, and tolerates
// typos and filler words by a weighted edit distance over words. Slot
// values are bound as parameters; the SQL is always one of the forms'
// fixed statements.
//
// "In REG" answers come from the inventory when some repository at or
// below REG has been synced, else from the loaded promoter manifests,
// which are put into a temporary table, promotions, on the same
// connection:
//
//	promotions(src, dst, image, repository, digest, tag, file, line)
//
// with one row per (destination repository, digest) with tag ” and one
// more per tag.
//
// Example:
//
//	res, err := query.Ask(ctx, "inventory.db", "how many unique digests in gcr.io/foo", query.Options{})
//	...
//	res.Write(os.Stdout, query.Table)
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"

	"modernc.org/sqlite"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/migrations"
)

// ErrRefused is returned for a statement that is not read-only or is not a
// single statement.
var ErrRefused = errors.New("refused")

// ErrInvalid is returned for SQL that does not compile, or a question that
// cannot be answered with what was given (e.g. no manifests loaded).
var ErrInvalid = errors.New("invalid query")

// Options configures a query.
type Options struct {
	// Manifests are the loaded promoter manifests, if any.
	Manifests *manifest.Set
}

// Result is an answer: columns and rows, the statement that produced them
// and where the data came from.
type Result struct {
	Columns []string
	Rows    [][]any
	SQL     string
	Args    []sql.NamedArg
	Form    string   // the question form, "" for SQL
	Notes   []string // for stderr: which source answered, caveats
}

// session is one pinned connection to the inventory.
type session struct {
	db     *sql.DB
	conn   *sql.Conn
	path   string
	locked bool
	denied string // the first operation the authorizer denied
}

// open opens the inventory at path read-only, or an empty in-memory
// inventory with the same schema when path does not exist (so that
// questions about manifests need no inventory).
func open(ctx context.Context, path string) (*session, []string, error) {
	var notes []string
	var db *sql.DB
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		notes = append(notes, fmt.Sprintf("no inventory at %s: answering from an empty one", path))
		db, err = sql.Open("sqlite", "file::memory:")
		if err != nil {
			return nil, nil, fmt.Errorf("open empty inventory: %w", err)
		}
		db.SetMaxOpenConns(1)
		if err := applySchema(ctx, db); err != nil {
			db.Close()
			return nil, nil, err
		}
	} else {
		inv, err := inventory.OpenReadOnly(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		db = inv.SQL()
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	s := &session{db: db, conn: conn, path: path}
	if err := s.createPromotions(ctx); err != nil {
		s.close()
		return nil, nil, err
	}
	return s, notes, nil
}

func applySchema(ctx context.Context, db *sql.DB) error {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("apply migration %s to empty inventory: %w", n, err)
		}
	}
	return nil
}

func (s *session) close() {
	s.conn.Close()
	s.db.Close()
}

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

// createPromotions makes the temporary promotions table: query_only is
// lifted for the temp schema only while the file stays mode=ro.
func (s *session) createPromotions(ctx context.Context) error {
	if _, err := s.conn.ExecContext(ctx, `PRAGMA query_only = 0`); err != nil {
		return fmt.Errorf("prepare promotions table: %w", err)
	}
	if _, err := s.conn.ExecContext(ctx, promotionsDDL); err != nil {
		return fmt.Errorf("prepare promotions table: %w", err)
	}
	return nil
}

// loadPromotions fills the promotions table with the set's promotions
// whose destination repository keep accepts, in one transaction.
func (s *session) loadPromotions(ctx context.Context, set *manifest.Set, keep func(repo string) bool) (int, error) {
	if set == nil {
		return 0, nil
	}
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("load promotions: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO temp.promotions(src, dst, image, repository, digest, tag, file, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("load promotions: %w", err)
	}
	defer st.Close()
	n := 0
	for _, p := range set.Promotions() {
		repo := p.Dst + "/" + p.Image
		if !keep(repo) {
			continue
		}
		n++
		for _, tag := range append([]string{""}, p.Tags...) {
			if _, err := st.ExecContext(ctx, p.Src, p.Dst, p.Image, repo, p.Digest, tag, p.File, p.Line); err != nil {
				return 0, fmt.Errorf("load promotion %s@%s (%s:%d): %w", repo, p.Digest, p.File, p.Line, err)
			}
		}
	}
	return n, tx.Commit()
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

// lockDown restores query_only and installs the authorizer: from here on
// the connection only reads.
func (s *session) lockDown(ctx context.Context) error {
	if s.locked {
		return nil
	}
	s.locked = true
	if _, err := s.conn.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
		return fmt.Errorf("lock inventory read-only: %w", err)
	}
	return s.conn.Raw(func(dc any) error {
		ar, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("lock inventory read-only: the sqlite driver has no authorizer")
		}
		return ar.RegisterAuthorizer(func(a sqlite.AuthorizerActionCode, arg1, arg2, dbName, _ string) sqlite.AuthorizerReturnCode {
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
			if s.denied == "" {
				s.denied = describeAction(a, arg1, arg2)
			}
			return sqlite.AuthorizerDeny
		})
	})
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

// run executes one read-only statement and collects its rows.
func (s *session) run(ctx context.Context, stmt string, args []sql.NamedArg) (*Result, error) {
	if err := s.lockDown(ctx); err != nil {
		return nil, err
	}
	iargs := make([]any, len(args))
	for i, a := range args {
		iargs[i] = a
	}
	rows, err := s.conn.QueryContext(ctx, stmt, iargs...)
	if err != nil {
		if s.denied != "" {
			return nil, fmt.Errorf("%w: the inventory is read-only: %s is not allowed", ErrRefused, s.denied)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: cols, SQL: stmt, Args: args}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read result: %w", err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		if s.denied != "" {
			return nil, fmt.Errorf("%w: the inventory is read-only: %s is not allowed", ErrRefused, s.denied)
		}
		return nil, fmt.Errorf("run query: %w", err)
	}
	return res, nil
}

// IsSQL reports whether input reads as a SQL statement rather than a
// question: it starts with an SQL keyword. Statements that would write
// count as SQL too, so that they are refused rather than misread.
func IsSQL(input string) bool {
	w := strings.ToLower(firstWord(stripSQLComments(input)))
	switch w {
	case "select", "with", "values", "explain", "pragma",
		"insert", "update", "delete", "replace", "drop", "create", "alter", "attach", "detach",
		"vacuum", "reindex", "analyze", "begin", "commit", "end", "rollback", "savepoint", "release":
		return true
	}
	return false
}

var firstWordRE = regexp.MustCompile(`^\s*([A-Za-z]+)`)

func firstWord(s string) string {
	m := firstWordRE.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// SQL runs one read-only statement.
func SQL(ctx context.Context, path, stmt string, opts Options) (*Result, error) {
	one, err := singleStatement(stmt)
	if err != nil {
		return nil, err
	}
	if w := strings.ToLower(firstWord(stripSQLComments(one))); w != "select" && w != "with" && w != "values" && w != "explain" && w != "pragma" {
		return nil, fmt.Errorf("%w: the inventory is read-only: %s statements are not allowed", ErrRefused, strings.ToUpper(w))
	}
	s, notes, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if opts.Manifests != nil && mentionsPromotions(one) {
		if _, err := s.loadPromotions(ctx, opts.Manifests, func(string) bool { return true }); err != nil {
			return nil, err
		}
	}
	res, err := s.run(ctx, one, nil)
	if err != nil {
		return nil, err
	}
	res.Notes = notes
	return res, nil
}

func mentionsPromotions(stmt string) bool {
	return strings.Contains(strings.ToLower(stmt), "promotions")
}

// singleStatement returns stmt without a trailing semicolon, refusing more
// than one statement. It knows SQLite's quoting: '…' strings, "…", `…` and
// […] identifiers, -- and /* */ comments. (The authorizer would deny a
// write in a second statement anyway; this makes the refusal clear.)
func singleStatement(stmt string) (string, error) {
	end := -1 // the first top-level ';'
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		if c == '-' && i+1 < len(stmt) && stmt[i+1] == '-' {
			j := strings.IndexByte(stmt[i:], '\n')
			if j < 0 {
				break
			}
			i += j
			continue
		}
		if c == '/' && i+1 < len(stmt) && stmt[i+1] == '*' {
			j := strings.Index(stmt[i+2:], "*/")
			if j < 0 {
				break
			}
			i += j + 3
			continue
		}
		if end >= 0 {
			if c == ';' || isSpace(c) {
				continue
			}
			return "", fmt.Errorf("%w: give one statement", ErrRefused)
		}
		switch c {
		case '\'', '"', '`', '[':
			closing := c
			if c == '[' {
				closing = ']'
			}
			j := strings.IndexByte(stmt[i+1:], closing)
			if j < 0 {
				return "", fmt.Errorf("%w: unterminated %c", ErrInvalid, c)
			}
			i += j + 1
		case ';':
			end = i
		}
	}
	if end >= 0 {
		stmt = stmt[:end]
	}
	if strings.TrimSpace(stripSQLComments(stmt)) == "" {
		return "", fmt.Errorf("%w: empty statement", ErrInvalid)
	}
	return stmt, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// stripSQLComments removes -- and /* */ comments outside quotes.
func stripSQLComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(s[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return b.String()
			}
			i += j - 1
			b.WriteByte(' ')
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return b.String()
			}
			i += j + 3
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
