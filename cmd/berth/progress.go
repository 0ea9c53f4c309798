package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// progress is one line on standard error that says what long work is
// doing (validate of a large repository, simulate, snapshot), rewritten in
// place and cleared when the work ends. When standard error is not a
// terminal (piped, a file, a CI log) it writes nothing at all, so what a
// program reads is the same with or without it.
type progress struct {
	w io.Writer // nil: off

	mu    sync.Mutex
	shown bool
}

// newProgress is a progress line on cmd's standard error when that is a
// terminal.
func newProgress(cmd *cobra.Command) *progress {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{w: f}
}

// show replaces the line with a new message.
func (p *progress) show(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	p.shown = true
}

// done clears the line, leaving the terminal as it was.
func (p *progress) done() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
