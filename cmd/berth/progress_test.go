package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/spf13/cobra"
)

// TestProgressOnlyOnATerminal: piped or written to a file, standard error
// gets no progress at all; on a terminal each message replaces the last,
// and the line is cleared at the end.
func TestProgressOnlyOnATerminal(t *testing.T) {
	cmd := &cobra.Command{}
	var buf bytes.Buffer
	cmd.SetErr(&buf)
	p := newProgress(cmd)
	p.show("validate: %d files", 3)
	p.done()
	f, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.SetErr(f)
	newProgress(cmd).show("simulate")
	if fi, _ := f.Stat(); buf.Len() != 0 || fi.Size() != 0 {
		t.Errorf("progress written where no terminal is: %q, %d bytes to a file", buf.String(), fi.Size())
	}

	on := &progress{w: &buf}
	on.show("simulate: policy %s (%d of %d)", "firstFit", 1, 3)
	on.show("simulate: policy %s (%d of %d)", "berth", 3, 3)
	on.done()
	on.done()
	want := "\r\033[Ksimulate: policy firstFit (1 of 3)\r\033[Ksimulate: policy berth (3 of 3)\r\033[K"
	if buf.String() != want {
		t.Errorf("on a terminal: %q, want %q", buf.String(), want)
	}
}
