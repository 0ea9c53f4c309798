package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// berthRun runs the berth binary to its end and returns its exit status
// and output.
func (e *e2e) berthRun(args ...string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), string(out)
	}
	e.t.Fatalf("berth %v: %v\n%s", args, err, out)
	return 0, ""
}

func TestServeOnADamagedLedgerAndRebuildRunNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and real processes")
	}
	e := newE2E(t)
	e.write("jobs/a.cue", "package jobs\n"+e.job("a", 0))
	e.write("jobs/b.cue", "package jobs\n"+e.job("b", 0))
	e.write("jobs/svc.cue", fmt.Sprintf(`package jobs
workloads: t: svc: {
	kind: "service", image: "x"
	command: ["sh", "-c", "echo start >> %s/svc; exec sleep 600"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
}
`, e.out))
	e.commit("two jobs and a service")
	e.start()
	e.waitState("t/a@1", "succeeded")
	e.waitState("t/b@1", "succeeded")
	e.waitState("t/svc@1", "running")
	time.Sleep(500 * time.Millisecond) // a few resyncs: the ends are in the ledger
	e.kill()

	// A garbled disk: every page of the ledger past its two meta pages.
	path := filepath.Join(e.state, "clusters", "box", "berth.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[2*4096:], strings.Repeat("garbled!", len(b)/8))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// serve refuses to start, in one line that says what to do.
	code, out := e.berthRun("serve", "--repo", e.repo, "--state-dir", e.state, "--listen", "127.0.0.1:0", "--once")
	want := fmt.Sprintf("berth: ledger %s is damaged (", path)
	last := out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:]
	if code != exitError || !strings.HasPrefix(last, want) || strings.Contains(out, "goroutine") ||
		!strings.Contains(last, "run 'berth ledger check --state-dir "+e.state+"' and 'berth ledger rebuild --state-dir "+e.state+" --cluster box'") {
		t.Fatalf("serve on a damaged ledger: exit %d, last line %q, want exit %d and %q... naming both commands\n%s", code, last, exitError, want, out)
	}

	code, out = e.berthRun("ledger", "check", "--state-dir", e.state)
	if code != exitInvalid || !strings.Contains(out, "cluster box: ledger "+path+" is damaged (") {
		t.Fatalf("ledger check: exit %d, want %d and the ledger named damaged\n%s", code, exitInvalid, out)
	}
	code, out = e.berthRun("ledger", "rebuild", "--state-dir", e.state)
	if code != 0 || !strings.Contains(out, "cluster box: rebuilt ledger "+path+" from 3 run records and 0 waiting runs; the old file is kept as "+path+".damaged-") {
		t.Fatalf("ledger rebuild: exit %d, want 0 and 3 runs rebuilt\n%s", code, out)
	}
	if code, out = e.berthRun("ledger", "check", "--state-dir", e.state); code != 0 || !strings.Contains(out, "is sound (3 runs)") {
		t.Fatalf("ledger check after the rebuild: exit %d, want 0\n%s", code, out)
	}

	// serve again: the finished jobs stay finished, the service is adopted.
	e.start()
	e.waitState("t/a@1", "succeeded")
	e.waitState("t/b@1", "succeeded")
	e.waitState("t/svc@1", "running")
	time.Sleep(time.Second) // several resyncs
	for _, n := range []string{"a", "b", "svc"} {
		if got := e.runs(n); got != 1 {
			t.Errorf("%s ran %d times, want once", n, got)
		}
	}
}
