package status

import (
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// table lays out rows of cells as text/tabwriter does with minwidth 0,
// padding 2, padchar ' ' and no flags (tabwriter.NewWriter(w, 0, 4, 2,
// ' ', 0)), for rows that all have the same number of cells: every cell
// but the last is padded with spaces to its column's widest cell, in
// runes, plus two; the last is written as it is.
//
// The plan of 50,000 workloads is a table of 63,690 rows, which tabwriter
// keeps in one buffer grown by appending, copied at every doubling: 0.12 s
// of CPU of the plan. A table keeps the cells and their widths, and writes
// each row once.
type table struct {
	cols  int
	cells []string // the rows, one after another
	width []int    // the widest cell of each column but the last, in runes
	// plain is false once a cell holds a character tabwriter gives a
	// meaning (a tab, a line break, a form feed, tabwriter.Escape): flush
	// then writes through tabwriter, so the output is tabwriter's always.
	plain bool
}

// newTable is a table of cols cells a row, with room for rows rows.
func newTable(cols, rows int) *table {
	return &table{cols: cols, cells: make([]string, 0, cols*rows), width: make([]int, cols-1), plain: true}
}

// row adds a row of exactly t.cols cells.
func (t *table) row(cells ...string) {
	if len(cells) != t.cols {
		panic("status: a table row of the wrong number of cells")
	}
	for i, c := range cells {
		n, plain := cellWidth(c)
		t.plain = t.plain && plain
		if i < t.cols-1 {
			t.width[i] = max(t.width[i], n)
		}
	}
	t.cells = append(t.cells, cells...)
}

// cellWidth is the width of c in runes, as tabwriter counts it, and
// whether c holds no character tabwriter gives a meaning.
func cellWidth(c string) (int, bool) {
	for i := 0; i < len(c); i++ {
		switch b := c[i]; {
		case b == '\t' || b == '\n' || b == '\v' || b == '\f':
			return 0, false
		case b >= utf8.RuneSelf: // not ASCII: count runes, look for Escape
			return utf8.RuneCountInString(c), strings.IndexByte(c[i:], tabwriter.Escape) < 0 && !strings.ContainsAny(c[i:], "\t\n\v\f")
		}
	}
	return len(c), true
}

// flush writes the table to w.
func (t *table) flush(w io.Writer) error {
	if !t.plain {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for i := 0; i < len(t.cells); i += t.cols {
			io.WriteString(tw, strings.Join(t.cells[i:i+t.cols], "\t")+"\n")
		}
		return tw.Flush()
	}
	const padding = 2
	widest := 0
	for _, n := range t.width {
		widest = max(widest, n+padding)
	}
	spaces := strings.Repeat(" ", widest)
	var line []byte
	for i := 0; i < len(t.cells); i += t.cols {
		line = line[:0]
		for k, c := range t.cells[i : i+t.cols] {
			line = append(line, c...)
			if k < t.cols-1 {
				n, _ := cellWidth(c)
				line = append(line, spaces[:t.width[k]+padding-n]...)
			}
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}
