package reconcile_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile"
)

// observed is a cluster's report of two running runs, in the order given,
// each with the QueuedSince the cluster reported beside it (the ledger's
// is T0), and two autoscaler wants in the order given.
func observed(ids []berth.WorkloadID, reported []time.Time) *reconcile.Observed {
	obs := &reconcile.Observed{Snapshot: berth.Snapshot{Nodes: []berth.Node{{Name: "box", Ready: true, GPUs: 8}}}}
	for i, id := range ids {
		obs.Runs = append(obs.Runs, reconcile.RunState{Phase: reconcile.PhaseRunning,
			RunRecord: reconcile.RunRecord{Workload: id, RunID: "1", Kind: berth.KindService, QueuedSince: build.T0}})
		obs.Snapshot.Running = append(obs.Snapshot.Running, berth.RunningWorkload{Workload: id, RunID: "1",
			Kind: berth.KindService, QueuedSince: reported[i], Placements: []berth.Placement{}})
		obs.Snapshot.Scale = append(obs.Snapshot.Scale, berth.ScaleWant{Workload: id, RunID: "1", Replicas: i + 2})
	}
	return obs
}

// TestSnapshotLeavesTheReportAsItWas: the snapshot of a cluster that
// reported its runs out of order and without when they were queued is
// sorted and has the ledger's QueuedSince, and the report itself, which
// the engine keeps for the pull-request planner, is as it was.
func TestSnapshotLeavesTheReportAsItWas(t *testing.T) {
	obs := observed([]berth.WorkloadID{"vision/b", "vision/a"}, []time.Time{{}, {}})
	before := observed([]berth.WorkloadID{"vision/b", "vision/a"}, []time.Time{{}, {}})
	snap := reconcile.Snapshot(nil, "box", obs, build.T0)
	if diff := cmp.Diff(before.Snapshot, obs.Snapshot, cmpopts.EquateComparable(berth.Quantity{})); diff != "" {
		t.Errorf("the cluster's report changed (-before +after):\n%s", diff)
	}
	var got []string
	for _, r := range snap.Running {
		got = append(got, string(r.Workload)+" queued "+r.QueuedSince.Format(time.RFC3339))
	}
	for _, s := range snap.Scale {
		got = append(got, string(s.Workload)+" scale")
	}
	q := build.T0.Format(time.RFC3339)
	want := []string{"vision/a queued " + q, "vision/b queued " + q, "vision/a scale", "vision/b scale"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

// TestSnapshotSharesAReportInOrder: a report in order with every run's
// QueuedSince (as the backends write theirs) is not copied: on a cluster
// of 10,000 runs the copy was 3 MiB a reconcile, and the engine's
// scheduling cache finds an unchanged report by its runs' addresses.
func TestSnapshotSharesAReportInOrder(t *testing.T) {
	obs := observed([]berth.WorkloadID{"vision/a", "vision/b"}, []time.Time{build.T0, build.T0})
	snap := reconcile.Snapshot(nil, "box", obs, build.T0)
	if &snap.Running[0] != &obs.Snapshot.Running[0] {
		t.Error("the runs of a report in order were copied")
	}
	// One run the cluster reported without its QueuedSince: a copy, with it.
	obs = observed([]berth.WorkloadID{"vision/a", "vision/b"}, []time.Time{build.T0, {}})
	snap = reconcile.Snapshot(nil, "box", obs, build.T0)
	if &snap.Running[0] == &obs.Snapshot.Running[0] || !snap.Running[1].QueuedSince.Equal(build.T0) ||
		!obs.Snapshot.Running[1].QueuedSince.IsZero() {
		t.Errorf("a run without QueuedSince: snapshot %v, report %v", snap.Running[1].QueuedSince, obs.Snapshot.Running[1].QueuedSince)
	}
}
