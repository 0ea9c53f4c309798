package status

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"text/tabwriter"
)

// TestTableIsTabwriter: a table writes what text/tabwriter writes for the
// same rows, byte for byte: random cells of ASCII, multi-byte runes and
// empty ones, and cells holding the characters tabwriter gives a meaning
// (which the table leaves to tabwriter).
func TestTableIsTabwriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "queue #12", "ml/train", "é", "✓ done", "8 GPUs", "  ", "short by 8 GPUs of h100", "日本"}
	special := []string{"tab\there", "two\nlines", "form\ffeed", "v\vtab", "esc\xffape", "é\tafter", "✓\nafter", "日本\xff"}
	for round := range 500 {
		cols := 1 + rng.IntN(6)
		rows := rng.IntN(40)
		withSpecial := round%5 == 0
		tab := newTable(cols, rows/2)
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		for range rows {
			cells := make([]string, cols)
			for k := range cells {
				cells[k] = pieces[rng.IntN(len(pieces))]
				if withSpecial && rng.IntN(20) == 0 {
					cells[k] = special[rng.IntN(len(special))]
				}
			}
			tab.row(cells...)
			tw.Write([]byte(strings.Join(cells, "\t") + "\n"))
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := tab.flush(&got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("round %d (%d columns, %d rows):\n got %q\nwant %q", round, cols, rows, got.String(), want.String())
		}
	}
}
