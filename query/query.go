// Package query answers questions over the inventory, read-only: SQL
// statements as given, and plain-English questions translated to SQL
// deterministically (no network, no model).
//
// Every statement runs through inventory.Reader: one pinned SQLite
// connection to the inventory opened read-only (mode=ro, query_only) with
// an authorizer that lets SELECT, reads, functions, recursive CTEs and a
// few read-only pragmas through and denies everything else, so that
// neither a write nor an ATTACH nor a VACUUM INTO can be slipped in, not
// even in a second statement. This package translates and renders; the
// inventory runs the statements.
//
// Questions are read by a small grammar of forms (see Forms, or 'cip
// query --list'): tokens are typed (registry reference, IMAGE:TAG,
// IMAGE@DIGEST, digest prefix, date or time window, platform, size,
// number, word), words are lower-cased and normalised (plurals, synonyms,
// small typos in keywords, a closed list of fillers dropped), and a
// question is accepted only when one form's pattern uses every token
// (translate.go, parse.go, grammar.go). Values are bound as parameters;
// the SQL is always one of the forms' fixed statements.
//
// "In REG" answers come from the inventory when some repository at or
// below REG has been synced, else from the loaded promoter manifests,
// which are put into a temporary table, promotions, on the same
// connection (inventory.Reader.LoadPromotions):
//
//	promotions(src, dst, image, repository, digest, tag, file, line)
//
// with one row per (destination repository, digest) with an empty tag and one
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
	"strings"
	"time"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
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
	// Now is the clock questions with relative dates ("yesterday") are
	// read against; nil is time.Now.
	Now func() time.Time
}

// Result is an answer: columns and rows, the statement that produced them
// and where the data came from.
//
// The answers of SQL and Ask are streamed: their rows are read from the
// inventory as Fit writes them, so that a huge answer costs no memory, and
// the Result holds the inventory open until Close. Rows holds the rows of
// the answers that are small lists (Schema, List), and of a streamed one
// after ReadAll.
type Result struct {
	Columns []string
	Rows    [][]any
	stream  *stream // rows still to be read; nil when Rows holds them all
	SQL     string
	Args    []sql.NamedArg
	Form    string   // the question form, "" for SQL
	Reading string   // how the question was read, "" for SQL
	Notes   []string // for stderr: which source answered, caveats
	Prose   []string // columns of sentences, wrapped in a fitted table (others are cut)
}

// session is one read-only handle on the inventory.
type session struct {
	r *inventory.Reader
}

// open opens the inventory at path read-only, or an empty in-memory
// inventory with the same schema when path does not exist (so that
// questions about manifests need no inventory).
func open(ctx context.Context, path string) (*session, []string, error) {
	var notes []string
	var r *inventory.Reader
	var err error
	if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
		notes = append(notes, fmt.Sprintf("no inventory at %s: answering from an empty one", path))
		r, err = inventory.OpenEmpty(ctx)
	} else {
		r, err = inventory.OpenReadOnly(ctx, path)
	}
	if err != nil {
		return nil, nil, err
	}
	return &session{r: r}, notes, nil
}

func (s *session) close() { s.r.Close() }

// loadPromotions fills the promotions table with the set's promotions
// whose destination or source repository keep accepts, and returns how
// many.
func (s *session) loadPromotions(ctx context.Context, set *manifest.Set, keep func(repo string) bool) (int, error) {
	if set == nil {
		return 0, nil
	}
	var ps []inventory.Promotion
	for _, p := range set.Promotions() {
		if keep(p.Dst+"/"+p.Image) || keep(p.Src+"/"+p.Image) {
			ps = append(ps, inventory.Promotion(p))
		}
	}
	return len(ps), s.r.LoadPromotions(ctx, ps)
}

// stream is the rest of a streamed answer: its open statement, a change
// made to each row as it is read (sizes for people), and the session to
// close after.
type stream struct {
	rows  *inventory.Rows
	row   func([]any) []any
	close func()
}

// run executes one read-only statement and returns its answer, streamed:
// the session stays open until the Result is closed.
func (s *session) run(ctx context.Context, stmt string, args []sql.NamedArg) (*Result, error) {
	iargs := make([]any, len(args))
	for i, a := range args {
		iargs[i] = a
	}
	rows, err := s.r.Query(ctx, stmt, iargs...)
	if err != nil {
		switch {
		case errors.Is(err, inventory.ErrDenied):
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		case ctx.Err() != nil:
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Result{Columns: rows.Columns(), SQL: stmt, Args: args,
		stream: &stream{rows: rows, row: func(r []any) []any { return r }, close: s.close}}, nil
}

// next returns the next row to write: the stream's, or Rows[i] when the
// Result holds its rows. ok is false at the end (err says why it ended
// early).
func (r *Result) next(i int) (row []any, ok bool, err error) {
	if r.stream == nil {
		if i < len(r.Rows) {
			return r.Rows[i], true, nil
		}
		return nil, false, nil
	}
	if r.stream.rows.Next() {
		return r.stream.row(r.stream.rows.Row()), true, nil
	}
	if err := r.stream.rows.Err(); err != nil {
		if errors.Is(err, inventory.ErrDenied) {
			return nil, false, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return nil, false, err
	}
	return nil, false, nil
}

// ReadAll reads the rest of a streamed answer into Rows (and closes it),
// so that it can be looked at, or written more than once.
func (r *Result) ReadAll() error {
	if r.stream == nil {
		return nil
	}
	defer r.Close()
	return r.each(func(row []any) error { r.Rows = append(r.Rows, row); return nil })
}

// Close releases the inventory a streamed answer reads from; closing a
// Result that holds its rows does nothing.
func (r *Result) Close() error {
	if r.stream == nil {
		return nil
	}
	err := r.stream.rows.Close()
	r.stream.close()
	r.stream = nil
	return err
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

// SQL runs one read-only statement. Its answer is streamed: close it.
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
	if opts.Manifests != nil && mentionsPromotions(one) {
		if _, err := s.loadPromotions(ctx, opts.Manifests, func(string) bool { return true }); err != nil {
			s.close()
			return nil, err
		}
	}
	res, err := s.run(ctx, one, nil)
	if err != nil {
		s.close()
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
