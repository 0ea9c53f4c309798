package schedule_test

import (
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/readsonce"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// TestLostRunKeepsItsPlace: a team with quota for one 8-GPU run runs A on
// node n1; B, of equal priority and queued after A, waits. n1 stays not
// ready past nodeLostAfter while n2 is free. In the cycle A is found lost,
// B must not take the quota A held (A is not yet in the queue); in the
// next, A waits at its old queued-since and goes first. Schedule and a
// Cache kept across the cycles decide alike.
func TestLostRunKeepsItsPlace(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").
		Team(build.Team("vision").Quota("h100", build.GPU("8"))).
		Workload(build.Workload("vision", "a").GPUs(8), build.Workload("vision", "b").GPUs(8)).Obj()
	queuedA, queuedB := build.T0.Add(-2*time.Hour), build.T0.Add(-time.Hour)
	n2 := build.Node("n2").GPUs(8, "H100")
	runningA := build.Running(build.Workload("vision", "a").GPUs(8), "h100", 100).On("n1", 0, 1, 2, 3, 4, 5, 6, 7).QueuedSince(queuedA)

	// Cycle 0: n1 ready, A runs, B waits for quota.
	warm := build.Snapshot().At(build.T0.Add(-time.Hour)).Node(build.Node("n1").GPUs(8, "H100"), n2).
		Running(runningA).Queued("vision/b", queuedB).Obj()
	// Cycle 1: n1 not ready for 10 minutes (past the default 5).
	lost := build.Snapshot().Node(build.Node("n1").GPUs(8, "H100").NotReadySince(build.T0.Add(-10*time.Minute)), n2).
		Running(runningA).Queued("vision/b", queuedB).Obj()
	// Cycle 2: A waits again in its place.
	requeued := build.Snapshot().At(build.T0.Add(time.Second)).
		Node(build.Node("n1").GPUs(8, "H100").NotReadySince(build.T0.Add(-10*time.Minute)), n2).
		QueuedRun("vision/a", "1", queuedA).Queued("vision/b", queuedB).Obj()

	cycle1 := map[string]got{
		"vision/a": {Action: berth.ActionPreempted, Code: berth.ReasonNodeLost, Flavor: "h100"},
		"vision/b": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
	}
	cycle2 := map[string]got{
		"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"},
		"vision/b": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
	}
	cache := schedule.NewCache()
	for _, c := range []struct {
		name string
		snap *berth.Snapshot
		want map[string]got
	}{
		{"before", warm, map[string]got{"vision/a": {Action: berth.ActionKeep, Flavor: "h100"}, "vision/b": cycle1["vision/b"]}},
		{"lost", lost, cycle1},
		{"requeued", requeued, cycle2},
	} {
		in := schedule.Input{Config: cfg, Snapshot: c.snap}
		once := schedule.Schedule(in, schedule.Options{})
		readsonce.Check(t, once)
		cached := cache.Schedule(in, schedule.Options{})
		t.Run(c.name+"/schedule", func(t *testing.T) { expect(t, once, c.want) })
		t.Run(c.name+"/cache", func(t *testing.T) { expect(t, cached, c.want) })
		if a, b := asJSON(t, once), asJSON(t, cached); a != b {
			t.Errorf("%s: the cache decides otherwise than Schedule:\n%s\nvs\n%s", c.name, b, a)
		}
	}
}
