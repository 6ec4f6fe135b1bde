package query

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
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

// Fit renders the result: a table (header and rows; fitted to width
// display columns, 0 for no limit, with Prose columns wrapped and the
// others cut), Wide (a table in full), CSV (a header line), JSON (an array
// of objects, keys in column order) or YAML (a sequence of mappings).
func (r *Result) Fit(w io.Writer, f Format, width int) error {
	switch f {
	case CSV:
		cw := csv.NewWriter(w)
		cw.Write(r.Columns)
		for _, row := range r.Rows {
			cw.Write(r.strings(row))
		}
		cw.Flush()
		return cw.Error()
	case JSON:
		bw := bufio.NewWriter(w)
		bw.WriteString("[")
		for i, row := range r.Rows {
			if i > 0 {
				bw.WriteString(",")
			}
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
		}
		if len(r.Rows) > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString("]\n")
		return bw.Flush()
	case YAML:
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for _, row := range r.Rows {
			m := &yaml.Node{Kind: yaml.MappingNode}
			for j, c := range r.Columns {
				v := &yaml.Node{}
				if err := v.Encode(row[j]); err != nil {
					return fmt.Errorf("write yaml: %w", err)
				}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: c}, v)
			}
			seq.Content = append(seq.Content, m)
		}
		if len(seq.Content) == 0 {
			_, err := io.WriteString(w, "[]\n")
			return err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(seq); err != nil {
			return fmt.Errorf("write yaml: %w", err)
		}
		return enc.Close()
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
	rows := make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		rows[i] = r.strings(row)
	}
	if err := table.Write(w, cols, rows, width); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
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
