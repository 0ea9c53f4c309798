package cue_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/berth-gpu/berth/cue"
)

// TestMain lets the loader's tests start this test binary as the
// evaluation child process: `cue.test __eval` is what `berth __eval` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "__eval" {
		os.Exit(cue.ServeChild(os.Stdin, os.Stdout))
	}
	if len(os.Args) > 2 && os.Args[1] == "__eval-fault" {
		faultyChild(os.Args[2])
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

// faultyChild is a child process that dies the ways a real one can, to
// test what the parent makes of it; and that would say so if it had been
// given the parent's environment. It says it is evaluating
// workloads/vision first, as a real child does.
func faultyChild(mode string) {
	if os.Getenv("BERTH_TEST_SECRET") != "" {
		fmt.Fprintln(os.Stderr, "the parent's environment reached the child")
		os.Exit(3)
	}
	io.Copy(io.Discard, os.Stdin)
	msg := []byte(`{"start":["workloads/vision"]}`)
	os.Stdout.Write(binary.AppendUvarint(nil, uint64(len(msg))))
	os.Stdout.Write(msg)
	switch mode {
	case "oom":
		// What the Go runtime prints when the address-space limit refuses
		// it memory.
		fmt.Fprintln(os.Stderr, "fatal error: runtime: out of memory\n\ngoroutine 1 gp=0x1 m=0 [running]:")
		os.Exit(2)
	case "hang":
		time.Sleep(time.Hour)
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: boom")
		os.Exit(2)
	}
	os.Exit(3)
}
