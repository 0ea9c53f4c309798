package cue_test

import (
	"os"
	"testing"

	"github.com/berth-gpu/berth/cue"
)

// TestMain lets the loader's tests start this test binary as the
// evaluation child process: `cue.test __eval` is what `berth __eval` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "__eval" {
		os.Exit(cue.ServeChild(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// isolated is opts with evaluation in a child process (this test binary),
// as berth's commands load.
func isolated(t testing.TB, opts cue.Options) cue.Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts.Child = []string{exe, "__eval"}
	return opts
}
