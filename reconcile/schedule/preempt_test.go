package schedule_test

import (
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// victims returns the IDs a decision preempts.
func victims(d berth.Decision) []string {
	var out []string
	for _, v := range d.Victims {
		out = append(out, string(v.Workload))
	}
	return out
}

func TestPreemptWithinTeam(t *testing.T) {
	low := build.Workload("vision", "low").GPUs(4).Priority("low")
	normal := build.Workload("vision", "normal").GPUs(4)
	cfg := func(policy string) *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").WithinTeam(policy).Quota("h100", build.GPU("8"))).
			Workload(low, normal, build.Workload("vision", "urgent").GPUs(4).Priority("production"))
	}
	snap := func() *build.SnapshotBuilder {
		return h100Nodes(1).Running(
			build.Running(low, "h100", 10).On("gpu-a", 0, 1, 2, 3),
			build.Running(normal, "h100", 100).On("gpu-a", 4, 5, 6, 7))
	}
	t.Run("the lowest priority goes, and only it", func(t *testing.T) {
		p := plan(t, cfg(berth.PreemptLowerPriority), snap())
		d := decision(t, p, "vision/urgent")
		if d.Action != berth.ActionPreempt || len(d.Victims) != 1 || d.Victims[0].Workload != "vision/low" {
			t.Fatalf("got %s victims %v, want preempting vision/low only", d.Action, victims(d))
		}
		if v := decision(t, p, "vision/low"); v.Action != berth.ActionPreempted || v.PreemptedBy != "vision/urgent" ||
			v.Reason.Code != berth.ReasonPreemptedInTeam {
			t.Errorf("victim: %+v", v)
		}
		expect(t, p, map[string]got{"vision/normal": {Action: berth.ActionKeep, Flavor: "h100"}})
	})
	t.Run("never", func(t *testing.T) {
		p := plan(t, cfg(berth.PreemptNever), snap())
		expect(t, p, map[string]got{"vision/urgent": {Action: berth.ActionQueue, Code: berth.ReasonQuota}})
	})
	t.Run("equal priority, newer", func(t *testing.T) {
		older := build.Workload("vision", "older").GPUs(8)
		c := build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").WithinTeam(berth.PreemptLowerOrNewerEqualPriority).Quota("h100", build.GPU("8"))).
			Workload(older, build.Workload("vision", "waiting").GPUs(8))
		// "waiting" was queued before "older" started: "older" is newer.
		s := h100Nodes(1).Running(build.Running(older, "h100", 100).Since(build.T0.Add(-time.Minute)).On("gpu-a", 0, 1, 2, 3, 4, 5, 6, 7)).
			Queued("vision/waiting", build.T0.Add(-time.Hour))
		p := plan(t, c, s)
		if d := decision(t, p, "vision/waiting"); d.Action != berth.ActionPreempt {
			t.Fatalf("got %s, want preempt", d.Action)
		}
		// Queued after it started: no.
		s = h100Nodes(1).Running(build.Running(older, "h100", 100).Since(build.T0.Add(-time.Hour)).On("gpu-a", 0, 1, 2, 3, 4, 5, 6, 7)).
			Queued("vision/waiting", build.T0.Add(-time.Minute))
		p = plan(t, c, s)
		if d := decision(t, p, "vision/waiting"); d.Action != berth.ActionQueue {
			t.Fatalf("got %s, want queue", d.Action)
		}
	})
	t.Run("production is not preemptible", func(t *testing.T) {
		prod := build.Workload("vision", "prod").GPUs(8).Priority("production")
		c := build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("8"))).
			Workload(prod, build.Workload("vision", "urgent").GPUs(8).Priority("production"))
		p := plan(t, c, h100Nodes(1).Running(build.Running(prod, "h100", 1000).On("gpu-a", 0, 1, 2, 3, 4, 5, 6, 7)))
		expect(t, p, map[string]got{"vision/urgent": {Action: berth.ActionQueue, Code: berth.ReasonQuota}})
	})
}

func TestMinimalVictims(t *testing.T) {
	// Four 2-GPU low jobs fill the node; a 4-GPU job needs exactly two of
	// them, the most recently started first.
	var ws []*build.WorkloadBuilder
	snap := h100Nodes(1)
	for i, name := range []string{"l1", "l2", "l3", "l4"} {
		w := build.Workload("vision", name).GPUs(2).Priority("low")
		ws = append(ws, w)
		snap.Running(build.Running(w, "h100", 10).Since(build.T0.Add(time.Duration(i-10)*time.Minute)).On("gpu-a", 2*i, 2*i+1))
	}
	ws = append(ws, build.Workload("vision", "need4").GPUs(4))
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("vision").Quota("h100", build.GPU("16"))).Workload(ws...)
	p := plan(t, cfg, snap)
	d := decision(t, p, "vision/need4")
	if d.Action != berth.ActionPreempt {
		t.Fatalf("got %s, want preempt", d.Action)
	}
	if got := victims(d); len(got) != 2 || got[0] != "vision/l3" || got[1] != "vision/l4" {
		t.Errorf("victims %v, want [vision/l3 vision/l4] (the two most recent)", got)
	}
}

func TestReclaimWithinCohort(t *testing.T) {
	b1 := build.Workload("nlp", "b1").GPUs(4)
	b2 := build.Workload("nlp", "b2").GPUs(4)
	cfg := func(reclaim string) *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").
			Team(build.Team("vision").Cohort("lab").Reclaim(reclaim).Quota("h100", build.GPU("4"))).
			Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("4"))).
			Workload(b1, b2, build.Workload("vision", "mine").GPUs(4))
	}
	// nlp uses 8: its own 4 and vision's 4.
	snap := h100Nodes(1).Running(
		build.Running(b1, "h100", 100).Since(build.T0.Add(-2*time.Hour)).On("gpu-a", 0, 1, 2, 3),
		build.Running(b2, "h100", 100).Since(build.T0.Add(-time.Hour)).On("gpu-a", 4, 5, 6, 7))
	t.Run("lent quota comes back, down to nominal only", func(t *testing.T) {
		p := plan(t, cfg(berth.PreemptAny), snap)
		d := decision(t, p, "vision/mine")
		if d.Action != berth.ActionPreempt || len(d.Victims) != 1 || d.Victims[0].Workload != "nlp/b2" ||
			d.Victims[0].Reason.Code != berth.ReasonPreemptedReclaim {
			t.Fatalf("got %s victims %+v, want reclaiming nlp/b2 only", d.Action, d.Victims)
		}
	})
	t.Run("lowerPriority does not take equal priority", func(t *testing.T) {
		p := plan(t, cfg(berth.PreemptLowerPriority), snap)
		expect(t, p, map[string]got{"vision/mine": {Action: berth.ActionQueue, Code: berth.ReasonQuota}})
	})
	t.Run("never", func(t *testing.T) {
		p := plan(t, cfg(berth.PreemptNever), snap)
		expect(t, p, map[string]got{"vision/mine": {Action: berth.ActionQueue, Code: berth.ReasonQuota}})
	})
}

func TestBorrowWithinCohort(t *testing.T) {
	lowB := build.Workload("nlp", "lowb").GPUs(4).Priority("low")
	cfg := func(threshold int) *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").
			Team(build.Team("vision").Cohort("lab").BorrowWithinCohort(berth.PreemptLowerPriority, threshold).Quota("h100", build.GPU("2"))).
			Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("2"))).
			Team(build.Team("idle").Cohort("lab").Quota("h100", build.GPU("4"))).
			Workload(lowB, build.Workload("vision", "big").GPUs(8).Priority("production"))
	}
	snap := h100Nodes(1).Running(build.Running(lowB, "h100", 10).On("gpu-a", 0, 1, 2, 3))
	p := plan(t, cfg(50), snap)
	d := decision(t, p, "vision/big")
	if d.Action != berth.ActionPreempt || len(d.Victims) != 1 || d.Victims[0].Reason.Code != berth.ReasonPreemptedBorrow {
		t.Fatalf("got %s victims %+v, want preempting nlp/lowb while borrowing", d.Action, d.Victims)
	}
	// Above the threshold: not.
	p = plan(t, cfg(5), snap)
	if d := decision(t, p, "vision/big"); d.Action != berth.ActionQueue {
		t.Fatalf("got %s, want queue (victim priority 10 is above threshold 5)", d.Action)
	}
}

func TestFairSharePreemptionNoPingPong(t *testing.T) {
	// nlp borrows 4 of the cohort's 8 (its nominal is 2). vision, at share
	// 0, wants 4: after admitting it borrows 2 (share 250) while nlp, after
	// losing 4 GPUs of 6, borrows 0 and keeps... the condition is checked
	// per victim.
	n1 := build.Workload("nlp", "n1").GPUs(2)
	n2 := build.Workload("nlp", "n2").GPUs(2)
	n3 := build.Workload("nlp", "n3").GPUs(2)
	cfg := build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").FairSharing().
		Team(build.Team("vision").Cohort("lab").Reclaim(berth.PreemptNever).Quota("h100", build.GPU("2"))).
		Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("2"))).
		Team(build.Team("idle").Cohort("lab").Quota("h100", build.GPU("4"))).
		Workload(n1, n2, n3, build.Workload("vision", "v").GPUs(4))
	// The node has 6 GPUs, all nlp's: vision's 4 need two of nlp's runs.
	snap := build.Snapshot().Node(build.Node("n").GPUs(6, "H100")).Running(
		build.Running(n1, "h100", 100).Since(build.T0.Add(-3*time.Hour)).On("n", 0, 1),
		build.Running(n2, "h100", 100).Since(build.T0.Add(-2*time.Hour)).On("n", 2, 3),
		build.Running(n3, "h100", 100).Since(build.T0.Add(-time.Hour)).On("n", 4, 5))
	p := plan(t, cfg, snap)
	d := decision(t, p, "vision/v")
	// Taking n3 leaves nlp borrowing 2 (share 250); vision would then
	// borrow 2 (share 250): allowed (<=). Taking n2 as well would leave nlp
	// at 0 while vision borrows 2: that would invert the order, so only
	// one is allowed, and 4 GPUs cannot be freed.
	if d.Action != berth.ActionQueue {
		t.Fatalf("got %s victims %v, want queue (no ping-pong)", d.Action, victims(d))
	}
}
