package query

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/internal/table"
)

// Format is an output format.
type Format string

// Output formats.
const (
	Table Format = "table"
	Wide  Format = "wide" // a table with every cell in full, whatever the width
	CSV   Format = "csv"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// ParseFormat checks an --output value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Table, Wide, CSV, JSON, YAML:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: want table, wide, csv, json or yaml", s)
}

// Write renders the result with tables in full: Fit with no width limit.
func (r *Result) Write(w io.Writer, f Format) error { return r.Fit(w, f, 0) }

// MaxTableRows is how many rows a table (or wide) answer shows: a table
// sizes its columns from every row, so it holds them all, while CSV, JSON
// and YAML write each row as it is read and have no limit. 10,000 rows are
// more than anyone reads on a terminal.
const MaxTableRows = 10000

// TableCapError says a table answer stopped at MaxTableRows rows (those
// were written): the other formats give the rest.
type TableCapError struct{ Rows int }

func (e *TableCapError) Error() string {
	return fmt.Sprintf("the table stops after %d rows (a table needs every row to size its columns): use --output csv, json or yaml for the whole answer", e.Rows)
}

// Fit renders the result: a table (header and rows; fitted to width
// display columns, 0 for no limit, with Prose columns wrapped and the
// others cut), Wide (a table in full), CSV (a header line), JSON (an array
// of objects, keys in column order) or YAML (a sequence of mappings). A
// streamed answer is written as its rows are read: an error reading them
// (the query's deadline) ends the output where it is and is returned. A
// table stops at MaxTableRows rows with a *TableCapError.
func (r *Result) Fit(w io.Writer, f Format, width int) error {
	switch f {
	case CSV:
		cw := csv.NewWriter(w)
		cw.Write(r.Columns)
		err := r.each(func(row []any) error { return cw.Write(r.strings(row)) })
		cw.Flush()
		return errors.Join(err, cw.Error())
	case JSON:
		bw := bufio.NewWriter(w)
		bw.WriteString("[")
		n := 0
		err := r.each(func(row []any) error {
			if n > 0 {
				bw.WriteString(",")
			}
			n++
			bw.WriteString("\n  {")
			for j, c := range r.Columns {
				if j > 0 {
					bw.WriteString(", ")
				}
				k, _ := json.Marshal(c)
				v, err := json.Marshal(row[j])
				if err != nil {
					return fmt.Errorf("write json: %w", err)
				}
				bw.Write(k)
				bw.WriteString(": ")
				bw.Write(v)
			}
			bw.WriteString("}")
			return nil
		})
		if err != nil {
			// No closing bracket: a cut answer is not valid JSON.
			bw.WriteString("\n")
			return errors.Join(err, bw.Flush())
		}
		if n > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString("]\n")
		return bw.Flush()
	case YAML:
		// One sequence, written entry by entry: each row is encoded as a
		// sequence of one mapping, and those concatenate to the sequence.
		bw := bufio.NewWriter(w)
		n := 0
		err := r.each(func(row []any) error {
			m := &yaml.Node{Kind: yaml.MappingNode}
			for j, c := range r.Columns {
				v := &yaml.Node{}
				if err := v.Encode(row[j]); err != nil {
					return fmt.Errorf("write yaml: %w", err)
				}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: c}, v)
			}
			enc := yaml.NewEncoder(bw)
			enc.SetIndent(2)
			if err := enc.Encode(&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{m}}); err != nil {
				return fmt.Errorf("write yaml: %w", err)
			}
			n++
			return enc.Close()
		})
		if err == nil && n == 0 {
			bw.WriteString("[]\n")
		}
		return errors.Join(err, bw.Flush())
	}
	if f == Wide {
		width = 0
	}
	cols := table.Columns(r.Columns...)
	for i := range cols {
		if slices.Contains(r.Prose, cols[i].Name) {
			cols[i].Fit = table.Wrap
		}
	}
	var rows [][]string
	errCapped := errors.New("capped")
	err := r.each(func(row []any) error {
		if len(rows) == MaxTableRows {
			return errCapped
		}
		rows = append(rows, r.strings(row))
		return nil
	})
	if err != nil && err != errCapped {
		return err
	}
	if werr := table.Write(w, cols, rows, width); werr != nil {
		return fmt.Errorf("write table: %w", werr)
	}
	if err == errCapped {
		return &TableCapError{Rows: MaxTableRows}
	}
	return nil
}

// each calls f on every row still to write, in order, stopping at the
// first error (f's, or reading the rows').
func (r *Result) each(f func([]any) error) error {
	for i := 0; ; i++ {
		row, ok, err := r.next(i)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := f(row); err != nil {
			return err
		}
	}
}

func (r *Result) strings(row []any) []string {
	out := make([]string, len(row))
	for i, v := range row {
		out[i] = cell(v)
	}
	return out
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
