package local

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Applying the same changes twice: the second time every change is
// unchanged and nothing is written, not to the ledger (its transaction id
// stays) and not to the state directory.
func TestApplyTwiceWritesNothing(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t, dir)
	queued := batch("queued", "true").Obj()
	forgotten := batch("forgotten", "true").Obj()
	running := batch("running", "exec sleep 600").Resources(berth.Resources{GPU: 1}).Obj()
	gang := batch("gang", "exec sleep 600").Kind(berth.KindTraining).Workers(2).Resources(berth.Resources{MIG: "1g.10gb"}).Obj()
	stopped := batch("stopped", "exec sleep 600").Obj()
	svc := batch("svc", "exec sleep 600").Kind(berth.KindService).Obj()
	apply(t, c,
		change(reconcile.OpQueue, forgotten),
		change(reconcile.OpStart, stopped, cpuOnly()),
	)
	waitPhase(t, c, stopped.ID(), "1", reconcile.PhaseRunning)
	changes := []reconcile.Change{
		stopChange(stopped, reconcile.PhaseStopped, "removed from Git"),
		change(reconcile.OpForget, forgotten),
		change(reconcile.OpRestart, svc, cpuOnly()),
		change(reconcile.OpStart, running, gpus(2)),
		change(reconcile.OpStart, gang, migSlice(7, "1g.10gb"), migSlice(7, "1g.10gb")),
		change(reconcile.OpQueue, queued),
	}
	first := apply(t, c, changes...)
	want := []reconcile.Outcome{reconcile.OutcomeDeleted, reconcile.OutcomeDeleted, reconcile.OutcomeCreated,
		reconcile.OutcomeCreated, reconcile.OutcomeCreated, reconcile.OutcomeCreated}
	for i := range want {
		if first[i] != want[i] {
			t.Errorf("first apply, %s %s: %s, want %s", changes[i].Op, changes[i].Workload.Name, first[i], want[i])
		}
	}
	waitPhase(t, c, gang.ID(), "1", reconcile.PhaseRunning)
	waitPhase(t, c, svc.ID(), "1", reconcile.PhaseRunning)
	obs1 := observe(t, c)

	tx, writes, files := c.ledger.txID(), c.ledger.writes, dirCount(t, dir)
	second := apply(t, c, changes...)
	for i, o := range second {
		if o != reconcile.OutcomeUnchanged {
			t.Errorf("second apply, %s %s: %s, want unchanged", changes[i].Op, changes[i].Workload.Name, o)
		}
	}
	if got := c.ledger.txID(); got != tx || c.ledger.writes != writes {
		t.Errorf("second apply wrote to the ledger: tx %d -> %d, writes %d -> %d", tx, got, writes, c.ledger.writes)
	}
	if got := dirCount(t, dir); got != files {
		t.Errorf("second apply created files: %d -> %d", files, got)
	}
	obs2 := observe(t, c)
	if len(obs1.Runs) != len(obs2.Runs) || len(obs2.Snapshot.Running) != 3 || len(obs2.Snapshot.Queue) != 1 {
		t.Errorf("observed: running %v queue %v", obs2.Snapshot.Running, obs2.Snapshot.Queue)
	}
	for _, w := range []berth.Workload{running, gang, svc} {
		apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over"))
	}
}

// Observe writes nothing, even with runs that ended since Apply last
// looked.
func TestObserveWritesNothing(t *testing.T) {
	c := newCluster(t, t.TempDir())
	// It must outlive the start's Apply, whose own settling would
	// otherwise record the end already.
	w := batch("quick", "sleep 0.5").Obj()
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	tx := c.ledger.txID()
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	observe(t, c)
	if got := c.ledger.txID(); got != tx {
		t.Errorf("observe wrote: tx %d -> %d", tx, got)
	}
	// The next Apply records the end once; the one after writes nothing.
	apply(t, c)
	if got := c.ledger.txID(); got != tx+1 {
		t.Errorf("apply after an end: tx %d -> %d, want one write", tx, got)
	}
	apply(t, c)
	if got := c.ledger.txID(); got != tx+1 {
		t.Errorf("apply with nothing new: tx %d -> %d, want none", tx+1, got)
	}
	if r, _ := observe(t, c).Run(berth.RunKey{Workload: w.ID(), RunID: "1"}); r.Phase != reconcile.PhaseSucceeded {
		t.Errorf("after settling: %s", r.Phase)
	}
}
