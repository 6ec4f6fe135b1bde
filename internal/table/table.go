// Package table prints cip's tables, one style for every command: plain
// columns aligned by two spaces, a header line, no borders (as kubectl
// prints), fitted to a width. When the natural table is wider, the widest
// columns give way first: prose columns (a check's message, a column's
// meaning) wrap over several lines, other cells (names, digests) are cut
// with an ellipsis. Width 0 prints every cell in full (-o wide, or a pipe).
//
// It renders through github.com/olekukonko/tablewriter, configured here
// once.
package table

import (
	"bytes"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/pkg/twwidth"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Fit is what a column does with a cell too long for it.
type Fit int

const (
	// Cut keeps the start and ends with an ellipsis (names, digests).
	Cut Fit = iota
	// CutStart keeps the end and starts with an ellipsis (file paths,
	// whose end names the file and line).
	CutStart
	// Wrap breaks the cell over several lines, at spaces where it can
	// (prose).
	Wrap
)

// Column is a table column: its header and how it fits.
type Column struct {
	Name string
	Fit  Fit
}

// Columns makes columns named names that all Cut.
func Columns(names ...string) []Column {
	out := make([]Column, len(names))
	for i, n := range names {
		out[i] = Column{Name: n}
	}
	return out
}

// gap is the space between two columns.
const gap = 2

// minWrap is the narrowest a prose column is made while other columns keep
// their full width: narrower, a message reads a few words a line.
const minWrap = 24

// ellipsis marks a cut cell.
const ellipsis = "…"

// Write prints the header and rows, fitted to width display columns (0:
// no limit). Rows shorter than the header are padded with empty cells.
// Lines carry no trailing blanks.
func Write(w io.Writer, cols []Column, rows [][]string, width int) error {
	n := len(cols)
	cells := make([][]string, 0, len(rows)+1)
	header := make([]string, n)
	for i, c := range cols {
		header[i] = c.Name
	}
	cells = append(cells, header)
	for _, r := range rows {
		row := make([]string, n)
		copy(row, r)
		cells = append(cells, row)
	}
	if width > 0 {
		widths := fitWidths(cols, natural(cells, n), width)
		for _, row := range cells {
			for i := range row {
				row[i] = fitCell(row[i], widths[i], cols[i].Fit)
			}
		}
	}
	return render(w, cells)
}

// natural is each column's width with every cell in full.
func natural(cells [][]string, n int) []int {
	out := make([]int, n)
	for _, row := range cells {
		for i, c := range row {
			for _, line := range strings.Split(c, "\n") {
				out[i] = max(out[i], twwidth.Width(line))
			}
		}
	}
	return out
}

// fitWidths chooses column widths summing, with the gaps, to at most
// width: the natural widths when they fit; else prose columns give way
// first (down to minWrap each); else every column shares the space, the
// narrow ones keeping their natural width and the wide ones an equal share
// of the rest. A column is at least one character wide, so a width too
// small for one character a column is exceeded.
func fitWidths(cols []Column, nat []int, width int) []int {
	n := len(cols)
	avail := width - gap*(n-1)
	total := 0
	for _, x := range nat {
		total += x
	}
	if total <= avail {
		return nat
	}
	out := append([]int(nil), nat...)
	var prose, other []int
	need := 0
	for i, c := range cols {
		if c.Fit == Wrap {
			prose = append(prose, i)
			need += min(nat[i], minWrap)
		} else {
			other = append(other, i)
			need += nat[i]
		}
	}
	if len(prose) > 0 && need <= avail {
		left := avail
		for _, i := range other {
			left -= nat[i]
		}
		share(out, nat, prose, left)
		return out
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	share(out, nat, all, avail)
	return out
}

// share gives the columns idx at most space between them: in order of
// natural width, a column narrower than an equal share of what is left
// keeps its natural width, the others get the equal share (the remainder
// going to the first of them).
func share(out, nat, idx []int, space int) {
	idx = append([]int(nil), idx...)
	// Narrowest first (insertion sort: tables have a few columns).
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && nat[idx[j]] < nat[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	for k, i := range idx {
		left := len(idx) - k
		fair := space / left
		if nat[i] <= fair {
			out[i] = nat[i]
			space -= nat[i]
			continue
		}
		// Every remaining column is at least as wide: share equally.
		rest := idx[k:]
		for j, c := range rest {
			out[c] = space / len(rest)
			if j < space%len(rest) {
				out[c]++
			}
			out[c] = max(out[c], 1)
		}
		return
	}
}

// fitCell makes every line of s at most width wide.
func fitCell(s string, width int, fit Fit) string {
	lines := strings.Split(s, "\n")
	var out []string
	for _, line := range lines {
		if twwidth.Width(line) <= width {
			out = append(out, line)
			continue
		}
		switch fit {
		case Wrap:
			out = append(out, wrap(line, width)...)
		case CutStart:
			out = append(out, cutStart(line, width))
		default:
			out = append(out, cutEnd(line, width))
		}
	}
	return strings.Join(out, "\n")
}

// cutEnd keeps what fits of the start of s, then an ellipsis, in width.
func cutEnd(s string, width int) string {
	rs := []rune(s)
	w := twwidth.Width(ellipsis)
	for i, r := range rs {
		rw := twwidth.Width(string(r))
		if w+rw > width {
			return string(rs[:i]) + ellipsis
		}
		w += rw
	}
	return s
}

// cutStart keeps an ellipsis, then what fits of the end of s, in width.
func cutStart(s string, width int) string {
	rs := []rune(s)
	w := twwidth.Width(ellipsis)
	for i := len(rs) - 1; i >= 0; i-- {
		rw := twwidth.Width(string(rs[i]))
		if w+rw > width {
			return ellipsis + string(rs[i+1:])
		}
		w += rw
	}
	return s
}

// wrap breaks s into lines at most width wide: at spaces, and inside a
// word longer than a line.
func wrap(s string, width int) []string {
	var lines []string
	var cur strings.Builder
	curW := 0
	flush := func() {
		lines = append(lines, cur.String())
		cur.Reset()
		curW = 0
	}
	for _, word := range strings.Fields(s) {
		ww := twwidth.Width(word)
		if curW > 0 && curW+1+ww <= width {
			cur.WriteByte(' ')
			cur.WriteString(word)
			curW += 1 + ww
			continue
		}
		if curW > 0 {
			flush()
		}
		// A word longer than a line is broken where the line ends.
		for ww > width {
			rs := []rune(word)
			n, w := 0, 0
			for n < len(rs) {
				rw := twwidth.Width(string(rs[n]))
				if w+rw > width && n > 0 {
					break
				}
				w += rw
				n++
			}
			lines = append(lines, string(rs[:n]))
			word = string(rs[n:])
			ww = twwidth.Width(word)
		}
		cur.WriteString(word)
		curW = ww
	}
	if curW > 0 || len(lines) == 0 {
		flush()
	}
	return lines
}

// render prints cells (the header first) as the plain table, trimming the
// trailing blanks tablewriter pads lines with.
func render(w io.Writer, cells [][]string) error {
	var buf bytes.Buffer
	pad := tw.Padding{Left: "", Right: strings.Repeat(" ", gap), Overwrite: true}
	t := tablewriter.NewTable(&buf,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenRows: tw.Off, BetweenColumns: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithConfig(tablewriter.NewConfigBuilder().
			WithHeaderGlobalPadding(pad).WithRowGlobalPadding(pad).
			WithHeaderAutoFormat(tw.Off).WithHeaderAlignment(tw.AlignLeft).WithRowAlignment(tw.AlignLeft).
			WithHeaderAutoWrap(tw.WrapNone).WithRowAutoWrap(tw.WrapNone).Build()),
	)
	t.Header(cells[0])
	if err := t.Bulk(cells[1:]); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// Widths measures columns for a Stream: the widest cell of each, the
// header included. Add every row (a first pass over rows too many to
// hold), then give it to NewStream.
type Widths []int

// NewWidths starts measuring the columns cols.
func NewWidths(cols []Column) Widths {
	w := make(Widths, len(cols))
	for i, c := range cols {
		w[i] = twwidth.Width(c.Name)
	}
	return w
}

// Add measures one row.
func (w Widths) Add(row []string) {
	for i := range w {
		if i < len(row) {
			w[i] = max(w[i], twwidth.Width(row[i]))
		}
	}
}

// Stream prints a table one row at a time, in Write's style, for tables
// too long to hold: its column widths are measured first (Widths) and
// fitted to a width as Write fits them. Cells are one line each (a
// streamed table does not wrap prose).
type Stream struct {
	w      io.Writer
	cols   []Column
	widths []int
	fit    bool
}

// NewStream prints the header and returns the stream; width 0 prints every
// cell in full.
func NewStream(w io.Writer, cols []Column, natural Widths, width int) (*Stream, error) {
	s := &Stream{w: w, cols: cols, widths: natural}
	if width > 0 {
		s.widths, s.fit = fitWidths(cols, natural, width), true
	}
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = c.Name
	}
	return s, s.Row(header)
}

// Row prints one row (shorter rows are padded with empty cells).
func (s *Stream) Row(row []string) error {
	var b strings.Builder
	for i, c := range s.cols {
		cell := ""
		if i < len(row) {
			cell = row[i]
		}
		if s.fit {
			fit := c.Fit
			if fit == Wrap {
				fit = Cut
			}
			cell = fitCell(cell, s.widths[i], fit)
		}
		b.WriteString(cell)
		if i < len(s.cols)-1 {
			b.WriteString(strings.Repeat(" ", max(0, s.widths[i]-twwidth.Width(cell))+gap))
		}
	}
	_, err := io.WriteString(s.w, strings.TrimRight(b.String(), " ")+"\n")
	return err
}
