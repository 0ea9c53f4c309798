package schedule_test

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

func runDecision(t *testing.T, p *berth.Plan, id, runID string) berth.Decision {
	t.Helper()
	for _, d := range p.Decisions {
		if string(d.Workload) == id && d.RunID == runID {
			return d
		}
	}
	t.Fatalf("no decision for %s@%s; decisions: %+v", id, runID, p.Decisions)
	return berth.Decision{}
}

// TestAutoscaledReplicasAreAdmittedWithinQuota: the replicas an
// autoscaler asks for above the spec's are each a run of one pod,
// admitted while the team's quota holds them; the one that does not fit
// waits with the quota's reason, and nothing is asked beyond max.
func TestAutoscaledReplicasAreAdmittedWithinQuota(t *testing.T) {
	api := build.Workload("v", "api").Service(1).GPUs(1).Autoscale(1, 4, 10)
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").Quota("h100", build.GPU("2"))).Workload(api)
	snap := h100Nodes(1).Running(build.Running(api, "h100", 100).On("gpu-a", 0).Desired(9))
	p := plan(t, cfg, snap)
	for runID, want := range map[string]got{
		"1":    {Action: berth.ActionKeep, Flavor: "h100"},
		"1-r2": {Action: berth.ActionAdmit, Flavor: "h100"},
		"1-r3": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
		"1-r4": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
	} {
		if g := summary(runDecision(t, p, "v/api", runID)); g != want {
			t.Errorf("v/api@%s: %+v, want %+v", runID, g, want)
		}
	}
	for _, d := range p.Decisions {
		if d.RunID == "1-r5" {
			t.Errorf("a replica above max 4 is asked for: %+v", d)
		}
	}
	if d := runDecision(t, p, "v/api", "1-r2"); len(d.Placements) != 1 {
		t.Errorf("replica 2 has %d placements, want 1 pod", len(d.Placements))
	}
}

// TestAutoscaledReplicasScaleDown: a replica above what the autoscaler
// asks for now is stopped with the reason; without an ask (a backend that
// does not measure), the replicas that run are kept.
func TestAutoscaledReplicasScaleDown(t *testing.T) {
	api := build.Workload("v", "api").Service(1).GPUs(1).Autoscale(1, 4, 10)
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").Quota("h100", build.GPU("4"))).Workload(api)
	running := func(desired int) *build.SnapshotBuilder {
		return h100Nodes(1).Running(build.Running(api, "h100", 100).On("gpu-a", 0).Desired(desired),
			build.Running(api, "h100", 100).RunID("1-r2").On("gpu-a", 1),
			build.Running(api, "h100", 100).RunID("1-r3").On("gpu-a", 2))
	}
	p := plan(t, cfg, running(2))
	if g := summary(runDecision(t, p, "v/api", "1-r2")); g != (got{Action: berth.ActionKeep, Flavor: "h100"}) {
		t.Errorf("1-r2: %+v, want kept", g)
	}
	d := runDecision(t, p, "v/api", "1-r3")
	if d.Action != berth.ActionStop || d.Reason == nil || d.Reason.Code != berth.ReasonScaledDown ||
		d.Reason.Message != "scaled down to 2 replicas: its autoscaler asks for 2" {
		t.Errorf("1-r3: %s %+v, want stopped: scaled down", d.Action, d.Reason)
	}
	p = plan(t, cfg, running(0))
	if d := runDecision(t, p, "v/api", "1-r3"); d.Action != berth.ActionKeep {
		t.Errorf("with no ask, 1-r3 is %s, want kept", d.Action)
	}
}
