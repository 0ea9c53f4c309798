package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

func TestBatchRunsToSuccess(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("prep", `echo "hello from $BERTH_WORKLOAD run $BERTH_RUN_ID attempt $BERTH_ATTEMPT"; echo oops >&2; pwd`).Obj()
	if got := apply(t, c, change(reconcile.OpStart, w, cpuOnly())); got[0] != reconcile.OutcomeCreated {
		t.Fatalf("start: %s, want created", got[0])
	}
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	if r.Attempts != 1 || r.StartedAt.IsZero() || r.FinishedAt.IsZero() || r.Digest != berth.SpecDigest(w) || r.Note == "" {
		t.Errorf("run state: %+v", r)
	}
	obs := observe(t, c)
	want := []berth.FinishedRun{{Workload: w.ID(), RunID: "1", Succeeded: true, At: r.FinishedAt}}
	if diff := cmp.Diff(want, obs.Snapshot.Finished); diff != "" {
		t.Errorf("finished (-want +got):\n%s", diff)
	}
	if len(obs.Snapshot.Running) != 0 || len(obs.Snapshot.Queue) != 0 {
		t.Errorf("running %v, queue %v: want none", obs.Snapshot.Running, obs.Snapshot.Queue)
	}
	logs, err := LatestLogs(c.StateDir(), w.ID())
	if err != nil {
		t.Fatal(err)
	}
	if logs.RunID != "1" || logs.Attempt != 1 || len(logs.Pods) != 1 || logs.Pods[0].Exit == nil || logs.Pods[0].Exit.ExitCode != 0 {
		t.Fatalf("logs: %+v", logs)
	}
	out := stdout(t, c, w.ID(), "1", 0)
	if !strings.Contains(out, "hello from vision/prep run 1 attempt 1") || !strings.Contains(out, filepath.Join(logs.Pods[0].Dir, "work")) {
		t.Errorf("stdout: %q", out)
	}
	errOut, _ := os.ReadFile(logs.Pods[0].Stderr[0])
	if string(errOut) != "oops\n" {
		t.Errorf("stderr: %q", errOut)
	}
	shimLog, _ := os.ReadFile(logs.Pods[0].Shim)
	if !strings.Contains(string(shimLog), "image busybox:1.36 not used") {
		t.Errorf("shim.log does not note the image:\n%s", shimLog)
	}
}

func TestDevicesInEnvironment(t *testing.T) {
	c := newCluster(t, t.TempDir())
	script := `echo "$CUDA_VISIBLE_DEVICES|$NVIDIA_VISIBLE_DEVICES"; sleep 30`
	whole := batch("whole", script).Resources(berth.Resources{GPU: 2}).Obj()
	mig1 := batch("mig-a", script).Resources(berth.Resources{MIG: "1g.10gb"}).Obj()
	mig2 := batch("mig-b", script).Resources(berth.Resources{MIG: "1g.10gb"}).Obj()
	frac := batch("frac", script).Resources(berth.Resources{GPUFraction: 0.5}).Obj()
	cpu := batch("cpu", script).Obj()
	apply(t, c,
		change(reconcile.OpStart, whole, gpus(0, 3)),
		change(reconcile.OpStart, mig1, migSlice(7, "1g.10gb")),
		change(reconcile.OpStart, mig2, migSlice(7, "1g.10gb")),
		change(reconcile.OpStart, frac, fraction(5, 0.5)),
		change(reconcile.OpStart, cpu, cpuOnly()),
	)
	for _, tc := range []struct {
		w    berth.Workload
		want string
	}{
		{whole, SimulatedUUID(0) + "," + SimulatedUUID(3)},
		{mig1, SimulatedMIGUUID(7, 0)},
		{mig2, SimulatedMIGUUID(7, 1)},
		{frac, SimulatedUUID(5)},
		{cpu, ""},
	} {
		dir := filepath.Join(c.StateDir(), podDir(tc.w.ID(), "1", 1, 0))
		got := waitFile(t, filepath.Join(dir, fileStdout), "\n")
		if got != tc.want+"|"+tc.want+"\n" {
			t.Errorf("%s: CUDA|NVIDIA_VISIBLE_DEVICES = %q, want %q twice", tc.w.Name, got, tc.want)
		}
	}
	obs := observe(t, c)
	if len(obs.Snapshot.Running) != 5 {
		t.Errorf("running: %d runs, want 5", len(obs.Snapshot.Running))
	}
	for _, w := range []berth.Workload{whole, mig1, mig2, frac, cpu} {
		apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over"))
	}
}

func TestGangGetsRanks(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("train", `echo "$BERTH_RANK/$BERTH_WORLD_SIZE $BERTH_MASTER_ADDR:$BERTH_MASTER_PORT $BERTH_CHECKPOINT_DIR"`).
		Kind(berth.KindTraining).Workers(2).Resources(berth.Resources{GPU: 1}).Checkpoint().Obj()
	w.Checkpoint.Keep = true // so the directory is still there to look at
	apply(t, c, change(reconcile.OpStart, w, gpus(0), gpus(1)))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	out0, out1 := stdout(t, c, w.ID(), "1", 0), stdout(t, c, w.ID(), "1", 1)
	f0, f1 := strings.Fields(out0), strings.Fields(out1)
	if len(f0) != 3 || len(f1) != 3 || f0[0] != "0/2" || f1[0] != "1/2" {
		t.Fatalf("ranks: pod 0 %q, pod 1 %q", out0, out1)
	}
	if f0[1] != f1[1] || !strings.HasPrefix(f0[1], "127.0.0.1:") {
		t.Errorf("master: pod 0 %s, pod 1 %s", f0[1], f1[1])
	}
	ckpt := filepath.Join(c.StateDir(), "checkpoints", "vision", "train", "1")
	if f0[2] != ckpt {
		t.Errorf("BERTH_CHECKPOINT_DIR = %s, want %s", f0[2], ckpt)
	}
	if st, err := os.Stat(ckpt); err != nil || !st.IsDir() {
		t.Errorf("checkpoint directory: %v", err)
	}
}

func TestCrashIsRecorded(t *testing.T) {
	c := newCluster(t, t.TempDir())
	final := batch("crash", "echo dying; exit 3").Obj()
	retried := batch("crash-retry", "exit 3").Retries(1).Obj()
	apply(t, c, change(reconcile.OpStart, final, cpuOnly()), change(reconcile.OpStart, retried, cpuOnly()))
	r := waitPhase(t, c, final.ID(), "1", reconcile.PhaseFailed)
	if r.Reason != "exit code 3" || r.Attempts != 1 {
		t.Errorf("crash: reason %q attempts %d, want exit code 3 after 1", r.Reason, r.Attempts)
	}
	waitPhase(t, c, retried.ID(), "1", reconcile.PhaseFailed)
	obs := observe(t, c)
	// With no retry left the failure is final; with one left, the run waits
	// to be started again.
	wantFinished := []berth.FinishedRun{{Workload: final.ID(), RunID: "1", Reason: "exit code 3", At: r.FinishedAt}}
	if diff := cmp.Diff(wantFinished, obs.Snapshot.Finished); diff != "" {
		t.Errorf("finished (-want +got):\n%s", diff)
	}
	if len(obs.Snapshot.Queue) != 1 || obs.Snapshot.Queue[0].Workload != retried.ID() {
		t.Errorf("queue: %+v, want %s", obs.Snapshot.Queue, retried.ID())
	}
	// The retry is a second attempt; it fails too, and that is final.
	if got := apply(t, c, change(reconcile.OpStart, retried, cpuOnly())); got[0] != reconcile.OutcomeCreated {
		t.Fatalf("retry: %s", got[0])
	}
	deadline := time.Now().Add(timeout)
	for {
		r, _ := observe(t, c).Run(berth.RunKey{Workload: retried.ID(), RunID: "1"})
		if r.Attempts == 2 && r.Phase == reconcile.PhaseFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(observe(t, c).Snapshot.Finished); n != 2 {
		t.Errorf("finished: %d runs, want 2", n)
	}
}

func TestMaxDurationKills(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("hang", "sleep 600").MaxDuration(time.Second).Obj()
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseFailed)
	if r.Reason != "killed: maxDuration 1s exceeded" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("stubborn", `trap '' TERM; echo ready; while :; do sleep 1; done`).Obj()
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	waitFile(t, filepath.Join(c.StateDir(), podDir(w.ID(), "1", 1, 0), fileStdout), "ready")
	got := apply(t, c, stopChange(w, reconcile.PhasePreempted, "preempted by vision/urgent"))
	if got[0] != reconcile.OutcomeDeleted {
		t.Errorf("stop: %s, want deleted", got[0])
	}
	// Apply waited for the end: the run no longer holds anything.
	r, _ := observe(t, c).Run(berth.RunKey{Workload: w.ID(), RunID: "1"})
	if r.Phase != reconcile.PhasePreempted || r.Reason != "preempted by vision/urgent" {
		t.Errorf("after stop: %s (%s)", r.Phase, r.Reason)
	}
	logs, _ := Logs(c.StateDir(), w.ID(), "1", 1)
	if e := logs.Pods[0].Exit; e == nil || e.Signal != "SIGKILL" || e.Reason != "terminated" {
		t.Errorf("exit: %+v, want SIGKILL after SIGTERM", e)
	}
	// A preempted run waits again, and its next start is attempt 2.
	obs := observe(t, c)
	if len(obs.Snapshot.Queue) != 1 || len(obs.Snapshot.Running) != 0 {
		t.Errorf("queue %v running %v", obs.Snapshot.Queue, obs.Snapshot.Running)
	}
	if got := apply(t, c, stopChange(w, reconcile.PhasePreempted, "preempted by vision/urgent")); got[0] != reconcile.OutcomeUnchanged {
		t.Errorf("second stop: %s, want unchanged", got[0])
	}
	w2 := batch("stubborn", `echo "attempt $BERTH_ATTEMPT"`).Obj()
	apply(t, c, change(reconcile.OpStart, w2, cpuOnly()))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	if out := stdout(t, c, w.ID(), "1", 0); out != "attempt 2\n" {
		t.Errorf("second start: %q", out)
	}
}

func TestLogFloodIsCapped(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir, testLogger(t))
	opts.LogMaxBytes = 64 << 10
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := batch("flood", `yes "a line that floods the log of this pod over and over"`).MaxDuration(2 * time.Second).Obj()
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseFailed)
	if !strings.HasPrefix(r.Reason, "killed: maxDuration") {
		t.Errorf("reason %q", r.Reason)
	}
	logs, _ := Logs(dir, w.ID(), "1", 0)
	var total int64
	for _, f := range logs.Pods[0].Stdout {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if len(logs.Pods[0].Stdout) != 2 || total > 2*opts.LogMaxBytes || total < opts.LogMaxBytes {
		t.Errorf("stdout files %v: %d bytes, want rotated and at most %d", logs.Pods[0].Stdout, total, 2*opts.LogMaxBytes)
	}
}

func TestQueueAndForget(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("later", "true").Obj()
	if got := apply(t, c, change(reconcile.OpQueue, w)); got[0] != reconcile.OutcomeCreated {
		t.Fatalf("queue: %s", got[0])
	}
	obs := observe(t, c)
	if len(obs.Snapshot.Queue) != 1 || obs.Snapshot.Queue[0].Since.IsZero() {
		t.Fatalf("queue: %+v", obs.Snapshot.Queue)
	}
	since := obs.Snapshot.Queue[0].Since
	if got := apply(t, c, change(reconcile.OpQueue, w)); got[0] != reconcile.OutcomeUnchanged {
		t.Errorf("queue again: %s", got[0])
	}
	if s := observe(t, c).Snapshot.Queue[0].Since; !s.Equal(since) {
		t.Errorf("queued since moved: %s -> %s", since, s)
	}
	if got := apply(t, c, change(reconcile.OpForget, w)); got[0] != reconcile.OutcomeDeleted {
		t.Errorf("forget: %s", got[0])
	}
	if got := apply(t, c, change(reconcile.OpForget, w)); got[0] != reconcile.OutcomeUnchanged {
		t.Errorf("forget again: %s", got[0])
	}
	if obs := observe(t, c); len(obs.Runs) != 0 {
		t.Errorf("runs after forget: %+v", obs.Runs)
	}
}

func TestServiceRestart(t *testing.T) {
	c := newCluster(t, t.TempDir())
	svc := batch("api", `echo "v1 $BERTH_ATTEMPT"; exec sleep 600`).Kind(berth.KindService).Obj()
	apply(t, c, change(reconcile.OpStart, svc, cpuOnly()))
	waitPhase(t, c, svc.ID(), "1", reconcile.PhaseRunning)
	if got := apply(t, c, change(reconcile.OpRestart, svc, cpuOnly())); got[0] != reconcile.OutcomeUnchanged {
		t.Errorf("restart with the same digest: %s", got[0])
	}
	v2 := batch("api", `echo "v2 $BERTH_ATTEMPT"; exec sleep 600`).Kind(berth.KindService).Obj()
	if got := apply(t, c, change(reconcile.OpRestart, v2, cpuOnly())); got[0] != reconcile.OutcomeConfigured {
		t.Errorf("restart with a new digest: %s", got[0])
	}
	r := waitPhase(t, c, svc.ID(), "1", reconcile.PhaseRunning)
	if r.Attempts != 2 || r.Digest != berth.SpecDigest(v2) {
		t.Errorf("after restart: attempts %d digest %s", r.Attempts, r.Digest)
	}
	waitFile(t, filepath.Join(c.StateDir(), podDir(svc.ID(), "1", 2, 0), fileStdout), "v2 2")
	apply(t, c, stopChange(svc, reconcile.PhaseStopped, "left Git"))
	obs := observe(t, c)
	if r, _ := obs.Run(berth.RunKey{Workload: svc.ID(), RunID: "1"}); r.Phase != reconcile.PhaseStopped || len(obs.Snapshot.Finished) != 0 || len(obs.Snapshot.Queue) != 0 {
		t.Errorf("stopped service: %s; finished %v queue %v", r.Phase, obs.Snapshot.Finished, obs.Snapshot.Queue)
	}
}

func TestFailingChangeDoesNotStopOthers(t *testing.T) {
	c := newCluster(t, t.TempDir())
	elsewhere := batch("elsewhere", "true").Resources(berth.Resources{GPU: 1}).Obj()
	p := gpus(0)
	p.Node = "other-node"
	noCommand := batch("no-command", "").Obj()
	noCommand.Command = nil
	good := batch("good", "true").Obj()
	res, err := c.Apply(context.Background(), nil, []reconcile.Change{
		change(reconcile.OpStart, elsewhere, p),
		change(reconcile.OpStart, noCommand, cpuOnly()),
		change(reconcile.OpStart, good, cpuOnly()),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`workload vision/elsewhere run 1: start: pod 0 is placed on node "other-node"`, "workload vision/no-command run 1: start: no command", ""} {
		r := res[i]
		switch {
		case want == "" && (r.Err != nil || r.Outcome != reconcile.OutcomeCreated):
			t.Errorf("%s: %s %v, want created", r.Change.Workload.Name, r.Outcome, r.Err)
		case want != "" && (r.Err == nil || r.Outcome != reconcile.OutcomeFailed || !strings.HasPrefix(r.Err.Error(), want)):
			t.Errorf("%s: %s %v, want failed with %q", r.Change.Workload.Name, r.Outcome, r.Err, want)
		}
	}
	waitPhase(t, c, good.ID(), "1", reconcile.PhaseSucceeded)
}

func TestMissingExecutableFails(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("typo", "").Obj()
	w.Command = []string{"no-such-program-berth"}
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseFailed)
	if !strings.HasPrefix(r.Reason, "start failed: no-such-program-berth: not found in PATH") {
		t.Errorf("reason %q", r.Reason)
	}
}
