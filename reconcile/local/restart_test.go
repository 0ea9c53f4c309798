package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

func TestNewClusterAdoptsRunsAndSeesExits(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	gate := filepath.Join(tmp, "go")
	long := batch("long", `echo up; exec sleep 600`).Kind(berth.KindService).Obj()
	short := batch("short", `while [ ! -e "$GATE" ]; do sleep 0.05; done; echo done`).Env("GATE", gate).Obj()

	c1, err := New(testOptions(dir, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, c1, change(reconcile.OpStart, long, cpuOnly()), change(reconcile.OpStart, short, cpuOnly()))
	waitPhase(t, c1, long.ID(), "1", reconcile.PhaseRunning)
	c1.Close()

	// With no Cluster at all, one run ends.
	mustWrite(t, gate, "")
	waitFile(t, filepath.Join(dir, podDir(short.ID(), "1", 1, 0), fileExit), "exitCode")

	c2 := newCluster(t, dir)
	obs := observe(t, c2)
	if r, _ := obs.Run(berth.RunKey{Workload: long.ID(), RunID: "1"}); r.Phase != reconcile.PhaseRunning || r.Attempts != 1 {
		t.Errorf("long after restart: %s attempts %d, want running 1", r.Phase, r.Attempts)
	}
	if r, _ := obs.Run(berth.RunKey{Workload: short.ID(), RunID: "1"}); r.Phase != reconcile.PhaseSucceeded {
		t.Errorf("short after restart: %s (%s), want succeeded", r.Phase, r.Reason)
	}
	// Starting again what runs is a no-op; stopping it works from the new
	// Cluster.
	if got := apply(t, c2, change(reconcile.OpStart, long, cpuOnly())); got[0] != reconcile.OutcomeUnchanged {
		t.Errorf("start of an adopted run: %s", got[0])
	}
	apply(t, c2, stopChange(long, reconcile.PhaseStopped, "test over"))
	if r, _ := observe(t, c2).Run(berth.RunKey{Workload: long.ID(), RunID: "1"}); r.Phase != reconcile.PhaseStopped {
		t.Errorf("long after stop: %s", r.Phase)
	}
}

func TestLostShimFailsTheRun(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t, dir)
	w := batch("rebooted", `echo $$ > "$PIDFILE"; exec sleep 600`).Env("PIDFILE", filepath.Join(t.TempDir(), "pid")).Obj()
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	b := waitFile(t, w.Env["PIDFILE"].Value, "\n")
	// A machine restart kills the shim and its process at once: SIGKILL
	// them both, so no exit.json is written.
	pd := filepath.Join(dir, podDir(w.ID(), "1", 1, 0))
	pid, err := readPID(pd)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-pid, syscall.SIGKILL) // the shim's session's group: the shim
	syscall.Kill(pid, syscall.SIGKILL)
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseFailed)
	if r.Reason != reasonLost {
		t.Errorf("reason %q, want %q", r.Reason, reasonLost)
	}
	// Its process is gone with a real reboot; here, end it.
	var proc int
	fmt.Sscan(b, &proc)
	if proc > 0 {
		syscall.Kill(-proc, syscall.SIGKILL)
	}
}

// The crash test: a helper process (this test binary) hosts a Cluster and
// is SIGKILLed at a point of OpStart; a new Cluster on the same state
// directory must run every pod exactly once.
const (
	helperEnv     = "BERTH_LOCAL_TEST_HELPER"
	helperKillEnv = "BERTH_LOCAL_TEST_KILL_AT"
)

func crashWorkload(out string) berth.Workload {
	return batch("gang", `echo "$BERTH_RANK" >> "$OUT"`).Kind(berth.KindTraining).Workers(2).
		Resources(berth.Resources{GPU: 1}).Env("OUT", out).Obj()
}

// helperMain runs in the helper process: start the gang, and at the kill
// point say so and wait to be killed.
func helperMain(dir, killAt string) int {
	killed := filepath.Join(dir, "..", "at-kill-point")
	testHook = func(point string, pod int) {
		at := point
		if pod >= 0 {
			at += ":" + string(rune('0'+pod))
		}
		if at == killAt {
			os.WriteFile(killed, []byte(at), 0o644)
			select {}
		}
	}
	c, err := New(testOptions(filepath.Join(dir, "state"), nil))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	w := crashWorkload(filepath.Join(dir, "ran"))
	res, err := c.Apply(context.Background(), nil, []reconcile.Change{change(reconcile.OpStart, w, gpus(0), gpus(1))})
	if err != nil || res[0].Err != nil {
		os.Stderr.WriteString("apply failed\n")
		return 1
	}
	return 0
}

func TestSIGKILLDuringStartRunsOnce(t *testing.T) {
	for _, at := range []string{"recorded", "spawned:0", "spawned:1"} {
		t.Run(at, func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "helper")
			os.MkdirAll(dir, 0o755)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+dir, helperKillEnv+"="+at)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFile(t, filepath.Join(tmp, "at-kill-point"), at)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()

			c := newCluster(t, filepath.Join(dir, "state"))
			w := crashWorkload(filepath.Join(dir, "ran"))
			r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
			if r.Attempts != 1 {
				t.Errorf("attempts %d, want 1", r.Attempts)
			}
			// The engine, not knowing, may ask for the start again: the run is
			// over, so it is a new attempt only if asked; here it has ended
			// and an identical start of a live run would be unchanged.
			b, _ := os.ReadFile(filepath.Join(dir, "ran"))
			ranks := strings.Fields(string(b))
			slices.Sort(ranks)
			if strings.Join(ranks, ",") != "0,1" {
				t.Errorf("pods ran %q, want ranks 0 and 1 once each", b)
			}
		})
	}
}

// A preemption does not use up a retry: a run with one retry that is
// preempted, resumed, and then fails still has that retry.
func TestPreemptionDoesNotUseARetry(t *testing.T) {
	c := newCluster(t, t.TempDir())
	// The first attempt sleeps (and is preempted); the second fails.
	job := batch("job", `if [ "$BERTH_ATTEMPT" = 1 ]; then exec sleep 600; fi; exit 2`).Retries(1).Obj()
	apply(t, c, change(reconcile.OpStart, job, cpuOnly()))
	waitPhase(t, c, job.ID(), "1", reconcile.PhaseRunning)
	apply(t, c, stopChange(job, reconcile.PhasePreempted, "preempted by t/urgent"))
	r := waitPhase(t, c, job.ID(), "1", reconcile.PhasePreempted)
	if r.Preemptions != 1 || r.Failures() != 0 {
		t.Fatalf("preempted: attempts %d, preemptions %d, failures %d; want 1 preemption and no failure", r.Attempts, r.Preemptions, r.Failures())
	}
	apply(t, c, change(reconcile.OpStart, job, cpuOnly()))
	r = waitPhase(t, c, job.ID(), "1", reconcile.PhaseFailed)
	if r.Attempts != 2 || r.Preemptions != 1 || r.Failures() != 1 {
		t.Fatalf("failed: attempts %d, preemptions %d, failures %d; want 2, 1, 1", r.Attempts, r.Preemptions, r.Failures())
	}
	// The engine's view: it waits to be retried, not finished.
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{job.ID(): job}}
	snap := reconcile.Normalize(cfg, observe(t, c))
	if len(snap.Finished) != 0 || len(snap.Queue) != 1 || snap.Queue[0].Failures != 1 {
		t.Fatalf("a run with its retry left: queue %+v, finished %+v; want it waiting after 1 failure", snap.Queue, snap.Finished)
	}
}
