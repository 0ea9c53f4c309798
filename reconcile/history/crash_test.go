package history

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// crashWriter, when set, makes the test binary a writer that records
// reconciles into the store at its path until it is killed.
const crashWriter = "BERTH_HISTORY_CRASH_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashWriter); path != "" {
		os.Exit(writeUntilKilled(path))
	}
	os.Exit(m.Run())
}

// crashRuns are eight runs of 1-8 GPUs that all started at t0.
func crashRuns() []reconcile.RunState {
	var runs []reconcile.RunState
	for i := range 8 {
		r := run(reconcile.PhaseRunning, i+1, t0, time.Time{})
		r.Workload = berth.MakeWorkloadID(fmt.Sprintf("team%d", i%3), fmt.Sprintf("w%d", i))
		runs = append(runs, r)
	}
	return runs
}

// writeUntilKilled records a reconcile every few milliseconds of a clock
// that goes on from where the store stopped.
func writeUntilKilled(path string) int {
	st, err := Open(path, Options{BillEvery: time.Nanosecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	now := t0
	for _, m := range st.marks {
		now = maxTime(now, m.Billed)
	}
	runs := crashRuns()
	for i := 0; ; i++ {
		now = now.Add(7*time.Minute + 13*time.Millisecond) // crosses midnights
		if _, err := st.Record(report(runs...), now); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready") // one reconcile is written: the kill comes after
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// A writer SIGKILLed at random points of its writes leaves a store that
// opens, and whose GPU-hours are exactly what its marks say was billed:
// no bill without its mark, no mark without its bill.
func TestCrashMidWriteLeavesAReadableStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills writer processes")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	for i := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashWriter+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("writer %d did not start: %v", i, err)
		}
		time.Sleep(time.Duration(20+37*i) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		st, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		var billed int64
		for _, m := range st.marks {
			billed += m.Milli * m.Billed.Sub(m.Started).Milliseconds()
		}
		u, err := st.Usage("", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := total(u); got != billed || billed == 0 {
			t.Fatalf("after kill %d: usage %d, marks billed %d", i, got, billed)
		}
		evs, err := st.Events(Query{})
		if err != nil || len(evs) != len(crashRuns()) {
			t.Fatalf("after kill %d: %d events (%v), want one start per run", i, len(evs), err)
		}
		t.Logf("kill %d: %s GPU-hours billed over %d days", i, strconv.FormatFloat(GPUHours(billed), 'f', 3, 64), len(ByTeam(u)[0].Days))
		st.Close()
	}
}
