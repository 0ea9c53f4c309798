package schedule_test

import (
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// An autoscaled service's run holds its minimum; each replica its
// autoscaler asks for above that is a run of one replica, admitted within
// the team's quota or queued with the reason, and stopped when the
// autoscaler asks for fewer again.
func TestAutoscaleReplicasWithinQuota(t *testing.T) {
	web := build.Workload("v", "web").Service(1).GPUs(1).Autoscale(1, 6)
	batch := build.Workload("v", "batch").GPUs(1)
	// Quota 3 GPUs: web's run and a batch job take 2.
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").Quota("h100", build.GPU("3"))).Workload(web, batch)
	running := func() *build.SnapshotBuilder {
		return h100Nodes(1).Running(build.Running(web, "h100", 100).On("gpu-a", 0), build.Running(batch, "h100", 100).On("gpu-a", 1))
	}
	r := func(n int) string { return berth.ScaleRunID("1", n) }

	// The autoscaler asks for 4: replica 2 fits the last GPU of quota,
	// replicas 3 and 4 wait, in their order, as one line first seen when
	// the first of them was (replica 4, a minute ago).
	p := plan(t, cfg, running().Scale("v/web", "1", 4).QueuedRun("v/web", r(4), build.T0.Add(-time.Minute)))
	got := map[string]berth.Decision{}
	for _, d := range runsOf(p, "v/web") {
		got[d.RunID] = d
	}
	if len(got) != 4 {
		t.Fatalf("decisions of v/web: %v, want the run and replicas 2-4", got)
	}
	if d := got["1"]; d.Action != berth.ActionKeep || d.ScaleRoom != "may scale to 2 of max 6 replicas: 2 GPUs, within nominal; replica 3 needs 1 GPU more than the team's quota has" {
		t.Errorf("web's run: %s, %q; want kept, with how far it may scale", d.Action, d.ScaleRoom)
	}
	if d := got[r(2)]; d.Action != berth.ActionAdmit || d.GPUs != 1 || d.Flavor != "h100" || len(d.Placements) != 1 {
		t.Errorf("replica 2: %s on %s with %v GPUs, %d placements; want admitted, one GPU on h100", d.Action, d.Flavor, d.GPUs, len(d.Placements))
	}
	for _, n := range []int{3, 4} {
		d := got[r(n)]
		if d.Action != berth.ActionQueue || d.Reason == nil || d.Reason.Code != berth.ReasonQuota {
			t.Errorf("replica %d: %s %+v, want queued for quota", n, d.Action, d.Reason)
		}
	}
	if p3, p4 := got[r(3)].Position, got[r(4)].Position; p3 != 1 || p4 != 2 {
		t.Errorf("replicas 3 and 4 at positions %d and %d, want 1 and 2", p3, p4)
	}
	if s := got[r(3)].Since; !s.Before(build.T0) {
		t.Errorf("replica 3 first seen %v: the line's wait (a minute) is lost", s)
	}
	if msg := got[r(3)].Reason.Message; msg != "insufficient unused h100 quota in team v: it asks 1 GPU; the team uses 3 of nominal 3 and has no cohort to borrow from, so it is short by 1 GPU" {
		t.Errorf("replica 3 waits: %s", msg)
	}

	// Beyond max the autoscaler is not followed.
	p = plan(t, cfg, running().Scale("v/web", "1", 60))
	if n := len(runsOf(p, "v/web")); n != 6 {
		t.Errorf("asked for 60 replicas, max 6: %d decisions, want 6", n)
	}
	// With quota for all of them, the plan says so.
	roomy := build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").Quota("h100", build.GPU("8"))).Workload(web, batch)
	p = plan(t, roomy, running())
	if d := decision(t, p, "v/web"); d.ScaleRoom != "may scale to 6 replicas: 6 GPUs, within nominal" {
		t.Errorf("web with quota to spare: %q", d.ScaleRoom)
	}

	// Replicas 2 and 3 run; the autoscaler asks for 2 now: 3 stops.
	scaled := running().Running(build.Running(web, "h100", 100).RunID(r(2)).On("gpu-a", 2), build.Running(web, "h100", 100).RunID(r(3)).On("gpu-a", 3))
	p = plan(t, cfg, scaled.Scale("v/web", "1", 2))
	for _, d := range runsOf(p, "v/web") {
		want := berth.ActionKeep
		if d.RunID == r(3) {
			want = berth.ActionStop
			if d.Reason == nil || d.Reason.Code != berth.ReasonScaledDown || d.Reason.Message != "its autoscaler asks for 2 replicas now" {
				t.Errorf("replica 3 stops with %+v", d.Reason)
			}
		}
		if d.Action != want {
			t.Errorf("%s: %s, want %s", d.RunID, d.Action, want)
		}
	}

	// No autoscaler reported (a backend without one): nothing more asked,
	// nothing stopped.
	p = plan(t, cfg, running().Running(build.Running(web, "h100", 100).RunID(r(2)).On("gpu-a", 2)))
	for _, d := range runsOf(p, "v/web") {
		if d.Action != berth.ActionKeep {
			t.Errorf("%s without an autoscaler: %s, want keep", d.RunID, d.Action)
		}
	}
}
