package schedule_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/readsonce"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/status"
)

// got is what a test asserts of one decision.
type got struct {
	Action berth.Action
	Code   berth.ReasonCode
	Flavor string
}

func plan(t *testing.T, cfg *build.ConfigBuilder, snap *build.SnapshotBuilder) *berth.Plan {
	t.Helper()
	p := schedule.Schedule(schedule.Input{Config: cfg.Obj(), Snapshot: snap.Obj()}, schedule.Options{})
	// Every plan of the corpus says each thing once.
	readsonce.Check(t, p)
	return p
}

func decision(t *testing.T, p *berth.Plan, id string) berth.Decision {
	t.Helper()
	d, ok := p.Decision(berth.WorkloadID(id))
	if !ok {
		t.Fatalf("no decision for %s; decisions: %+v", id, p.Decisions)
	}
	return d
}

func summary(d berth.Decision) got {
	g := got{Action: d.Action, Flavor: d.Flavor}
	if d.Reason != nil {
		g.Code = d.Reason.Code
	}
	return g
}

func expect(t *testing.T, p *berth.Plan, want map[string]got) {
	t.Helper()
	for id, w := range want {
		d := decision(t, p, id)
		if g := summary(d); g != w {
			reason := ""
			if d.Reason != nil {
				reason = d.Reason.Message
			}
			t.Errorf("%s: got %+v (%s), want %+v", id, g, reason, w)
		}
	}
}

// h100 is a cluster of n nodes with 8 H100s each.
func h100Nodes(n int) *build.SnapshotBuilder {
	s := build.Snapshot()
	for i := range n {
		s.Node(build.Node("gpu-"+string(rune('a'+i))).GPUs(8, "NVIDIA-H100-80GB-HBM3"))
	}
	return s
}

func TestAdmitQueueReject(t *testing.T) {
	cfg := func() *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("8").Borrow("0")))
	}
	tests := []struct {
		name string
		cfg  *build.ConfigBuilder
		snap *build.SnapshotBuilder
		want map[string]got
		msg  map[string]string // substrings the reason must contain
	}{{
		name: "fits within quota",
		cfg:  cfg().Workload(build.Workload("vision", "a").GPUs(4)),
		snap: h100Nodes(1),
		want: map[string]got{"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"}},
	}, {
		name: "second waits for the team's quota",
		cfg: cfg().Workload(build.Workload("vision", "a").GPUs(6),
			build.Workload("vision", "b").GPUs(4)),
		snap: h100Nodes(2),
		want: map[string]got{
			"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/b": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
		},
		msg: map[string]string{"vision/b": "insufficient unused h100 quota in team vision: it asks 4 GPUs; the team uses 6 of nominal 8 and has no cohort to borrow from, so it is short by 2 GPUs"},
	}, {
		name: "more than nominal plus borrowing limit is rejected",
		cfg:  cfg().Workload(build.Workload("vision", "big").Training(2).GPUs(8)),
		snap: h100Nodes(4),
		want: map[string]got{"vision/big": {Action: berth.ActionReject, Code: berth.ReasonExceedsQuota}},
		msg:  map[string]string{"vision/big": "asks for 16 GPUs of h100; team vision can use at most 8"},
	}, {
		name: "a GPU model no node has is rejected",
		cfg:  cfg().Workload(build.Workload("vision", "a").GPUs(1)),
		snap: build.Snapshot().Node(build.Node("a100-1").GPUs(8, "A100-SXM4-40GB")),
		want: map[string]got{"vision/a": {Action: berth.ActionReject, Code: berth.ReasonNoMatchingNodes}},
	}, {
		name: "a worker larger than any node is rejected",
		cfg: build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("64"))).
			Workload(build.Workload("vision", "a").GPUs(16)),
		snap: h100Nodes(4),
		want: map[string]got{"vision/a": {Action: berth.ActionReject, Code: berth.ReasonPodTooLarge}},
		msg:  map[string]string{"vision/a": "the largest has 8 GPUs"},
	}, {
		name: "no quota for a flavor that offers MIG is rejected",
		cfg:  cfg().MIGFlavor("mig", "H100", "1g.10gb").Workload(build.Workload("vision", "nb").MIG("1g.10gb")),
		snap: h100Nodes(1),
		want: map[string]got{"vision/nb": {Action: berth.ActionReject, Code: berth.ReasonNoQuota}},
	}, {
		name: "nodes full: queued for capacity",
		cfg: build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("64"))).
			Workload(build.Workload("vision", "a").GPUs(8), build.Workload("vision", "b").GPUs(8)),
		snap: h100Nodes(1),
		want: map[string]got{
			"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/b": {Action: berth.ActionQueue, Code: berth.ReasonCapacity},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(t, tt.cfg, tt.snap)
			expect(t, p, tt.want)
			for id, sub := range tt.msg {
				d := decision(t, p, id)
				if d.Reason == nil || !strings.Contains(d.Reason.Message, sub) {
					t.Errorf("%s: reason %+v does not say %q", id, d.Reason, sub)
				}
			}
		})
	}
}

func TestFlavorsTriedInTeamOrder(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").GPUFlavor("a100", "A100").
		Team(build.Team("vision").Quota("a100", build.GPU("8")).Quota("h100", build.GPU("8"))).
		Workload(build.Workload("vision", "a").GPUs(8), build.Workload("vision", "b").GPUs(8), build.Workload("vision", "c").GPUs(8))
	snap := build.Snapshot().Node(build.Node("h").GPUs(8, "H100"), build.Node("a").GPUs(8, "A100"))
	p := plan(t, cfg, snap)
	expect(t, p, map[string]got{
		"vision/a": {Action: berth.ActionAdmit, Flavor: "a100"},
		"vision/b": {Action: berth.ActionAdmit, Flavor: "h100"},
		"vision/c": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
	})
}

func TestCohortBorrowing(t *testing.T) {
	base := func() *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").
			Team(build.Team("vision").Cohort("lab").Quota("h100", build.GPU("4").Borrow("4"))).
			Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("4")))
	}
	t.Run("borrow what the other team leaves unused", func(t *testing.T) {
		p := plan(t, base().Workload(build.Workload("vision", "a").GPUs(8)), h100Nodes(2))
		d := decision(t, p, "vision/a")
		if d.Action != berth.ActionAdmit || !d.Borrowed {
			t.Fatalf("got %+v, want admitted borrowing", summary(d))
		}
	})
	t.Run("borrowing limit bounds it", func(t *testing.T) {
		cfg := base().Workload(build.Workload("vision", "a").GPUs(8), build.Workload("vision", "b").GPUs(1))
		p := plan(t, cfg, h100Nodes(2))
		expect(t, p, map[string]got{
			"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/b": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
		})
		if d := decision(t, p, "vision/b"); !strings.Contains(d.Reason.Message, "borrowing limit") {
			t.Errorf("reason %q does not name the borrowing limit", d.Reason.Message)
		}
	})
	t.Run("lending limit keeps the rest", func(t *testing.T) {
		cfg := build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").
			Team(build.Team("vision").Cohort("lab").Quota("h100", build.GPU("4"))).
			Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("4").Lend("1"))).
			Workload(build.Workload("vision", "a").GPUs(6))
		p := plan(t, cfg, h100Nodes(1))
		expect(t, p, map[string]got{"vision/a": {Action: berth.ActionReject, Code: berth.ReasonExceedsQuota}})
	})
	t.Run("nested cohorts lend across", func(t *testing.T) {
		cfg := build.Config().GPUFlavor("h100", "H100").
			Cohort("org", "", build.CohortQuota("h100", build.GPU("2"))).Cohort("lab", "org").Cohort("ops", "org").
			Team(build.Team("vision").Cohort("lab").Quota("h100", build.GPU("2"))).
			Team(build.Team("infra").Cohort("ops").Quota("h100", build.GPU("4"))).
			Workload(build.Workload("vision", "a").GPUs(8))
		p := plan(t, cfg, h100Nodes(1))
		// 2 own + 4 lent by infra through org + 2 of org's own quota = 8.
		expect(t, p, map[string]got{"vision/a": {Action: berth.ActionAdmit, Flavor: "h100"}})
	})
	t.Run("cohort exhausted", func(t *testing.T) {
		cfg := base().Workload(build.Workload("vision", "a").GPUs(6), build.Workload("nlp", "x").GPUs(4))
		snap := h100Nodes(2).Running(build.Running(build.Workload("nlp", "x").GPUs(4), "h100", 100).On("gpu-a", 0, 1, 2, 3))
		p := plan(t, cfg, snap)
		d := decision(t, p, "vision/a")
		if d.Action != berth.ActionQueue || d.Reason.Code != berth.ReasonCohort {
			t.Fatalf("got %+v %v, want queued for the cohort", summary(d), d.Reason)
		}
	})
}

func TestOrdering(t *testing.T) {
	t.Run("priority before first seen", func(t *testing.T) {
		cfg := build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("8"))).
			Workload(build.Workload("vision", "early").GPUs(8), build.Workload("vision", "urgent").GPUs(8).Priority("production"))
		snap := h100Nodes(2).Queued("vision/early", build.T0.Add(-48*3600e9))
		p := plan(t, cfg, snap)
		expect(t, p, map[string]got{
			"vision/urgent": {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/early":  {Action: berth.ActionQueue, Code: berth.ReasonQuota},
		})
	})
	t.Run("equal priority: first seen first", func(t *testing.T) {
		cfg := build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("vision").Quota("h100", build.GPU("8"))).
			Workload(build.Workload("vision", "a").GPUs(8), build.Workload("vision", "b").GPUs(8))
		snap := h100Nodes(2).Queued("vision/a", build.T0).Queued("vision/b", build.T0.Add(-3600e9))
		p := plan(t, cfg, snap)
		expect(t, p, map[string]got{
			"vision/b": {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/a": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
		})
		if d := decision(t, p, "vision/a"); d.Position != 1 {
			t.Errorf("position %d, want 1", d.Position)
		}
	})
	t.Run("fair sharing: the team with the lower share goes first", func(t *testing.T) {
		cfg := build.Config().GPUFlavor("h100", "H100").Cohort("lab", "").FairSharing().
			Team(build.Team("vision").Cohort("lab").Quota("h100", build.GPU("2"))).
			Team(build.Team("nlp").Cohort("lab").Quota("h100", build.GPU("2"))).
			Team(build.Team("idle").Cohort("lab").Quota("h100", build.GPU("4"))).
			Workload(build.Workload("vision", "v2").GPUs(2), build.Workload("nlp", "n1").GPUs(2), build.Workload("vision", "v1").GPUs(4))
		// vision already borrows 2: its share is above nlp's, so nlp's
		// later request goes first and takes the last 2 free GPUs.
		snap := build.Snapshot().Node(build.Node("n").GPUs(8, "H100")).
			Running(build.Running(build.Workload("vision", "v1").GPUs(4), "h100", 100).On("n", 0, 1, 2, 3)).
			Queued("vision/v2", build.T0.Add(-3600e9)).Queued("nlp/n1", build.T0)
		p := plan(t, cfg, snap)
		expect(t, p, map[string]got{
			"nlp/n1":    {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/v2": {Action: berth.ActionAdmit, Flavor: "h100"},
		})
		// Both fit here; now with room for one.
		snap = build.Snapshot().Node(build.Node("n").GPUs(6, "H100")).
			Running(build.Running(build.Workload("vision", "v1").GPUs(4), "h100", 100).On("n", 0, 1, 2, 3)).
			Queued("vision/v2", build.T0.Add(-3600e9)).Queued("nlp/n1", build.T0)
		p = plan(t, cfg, snap)
		expect(t, p, map[string]got{
			"nlp/n1":    {Action: berth.ActionAdmit, Flavor: "h100"},
			"vision/v2": {Action: berth.ActionQueue, Code: berth.ReasonCapacity},
		})
	})
}

func TestPipelinesAndRuns(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").
		Team(build.Team("nlp").Quota("h100", build.GPU("8"))).
		Workload(build.Workload("nlp", "prep"), build.Workload("nlp", "train").GPUs(2).DependsOn("prep"),
			build.Workload("nlp", "eval").GPUs(1).DependsOn("train"),
			build.Workload("nlp", "nightly").GPUs(1).Schedule("0 3 * * *"))
	t.Run("each step waits for the one before", func(t *testing.T) {
		p := plan(t, cfg, h100Nodes(1))
		expect(t, p, map[string]got{
			"nlp/prep":    {Action: berth.ActionAdmit, Flavor: "h100"},
			"nlp/train":   {Action: berth.ActionWait, Code: berth.ReasonDependency},
			"nlp/eval":    {Action: berth.ActionWait, Code: berth.ReasonDependency},
			"nlp/nightly": {Action: berth.ActionWait, Code: berth.ReasonSchedule},
		})
		if d := decision(t, p, "nlp/nightly"); !strings.Contains(d.Reason.Message, "next run at 2026-11-22 03:00 UTC") {
			t.Errorf("nightly: %q", d.Reason.Message)
		}
	})
	t.Run("a finished run is not started again; its dependents start", func(t *testing.T) {
		p := plan(t, cfg, h100Nodes(1).Finished("nlp/prep", "1", true))
		expect(t, p, map[string]got{
			"nlp/prep":  {Action: berth.ActionDone},
			"nlp/train": {Action: berth.ActionAdmit, Flavor: "h100"},
			"nlp/eval":  {Action: berth.ActionWait, Code: berth.ReasonDependency},
		})
	})
	t.Run("a failed dependency stops the chain", func(t *testing.T) {
		p := plan(t, cfg, h100Nodes(1).Finished("nlp/prep", "1", true).Finished("nlp/train", "1", false))
		expect(t, p, map[string]got{
			"nlp/train": {Action: berth.ActionDone, Code: berth.ReasonRunFailed},
			"nlp/eval":  {Action: berth.ActionWait, Code: berth.ReasonDependencyFailed},
		})
	})
	t.Run("a bumped runId runs again", func(t *testing.T) {
		c := build.Config().GPUFlavor("h100", "H100").
			Team(build.Team("nlp").Quota("h100", build.GPU("8"))).
			Workload(build.Workload("nlp", "prep").RunID("2"))
		p := plan(t, c, h100Nodes(1).Finished("nlp/prep", "1", true))
		expect(t, p, map[string]got{"nlp/prep": {Action: berth.ActionAdmit, Flavor: "h100"}})
	})
	t.Run("a workload that left Git stops", func(t *testing.T) {
		c := build.Config().GPUFlavor("h100", "H100").Team(build.Team("nlp").Quota("h100", build.GPU("8")))
		snap := h100Nodes(1).Running(build.Running(build.Workload("nlp", "gone").GPUs(2), "h100", 100).On("gpu-a", 0, 1))
		p := plan(t, c, snap)
		expect(t, p, map[string]got{"nlp/gone": {Action: berth.ActionStop, Code: berth.ReasonRemovedFromGit, Flavor: "h100"}})
	})
}

func TestFlavorFungibility(t *testing.T) {
	// Team vision's a100 quota lets it borrow; its h100 quota fits
	// without borrowing.
	cfg := func(whenCanBorrow string) *build.ConfigBuilder {
		return build.Config().GPUFlavor("a100", "A100").GPUFlavor("h100", "H100").Cohort("lab", "").
			Team(build.Team("vision").Cohort("lab").FlavorFungibility(whenCanBorrow, berth.FungibilityTryNextFlavor).
				Quota("a100", build.GPU("2")).Quota("h100", build.GPU("8"))).
			Team(build.Team("idle").Cohort("lab").Quota("a100", build.GPU("8"))).
			Workload(build.Workload("vision", "a").GPUs(4))
	}
	snap := build.Snapshot().Node(build.Node("a").GPUs(8, "A100"), build.Node("h").GPUs(8, "H100"))
	for _, tt := range []struct {
		whenCanBorrow string
		want          got
		borrowed      bool
	}{
		// Kueue's default: the first flavor where it fits, even borrowing.
		{berth.FungibilityBorrow, got{Action: berth.ActionAdmit, Flavor: "a100"}, true},
		{berth.FungibilityTryNextFlavor, got{Action: berth.ActionAdmit, Flavor: "h100"}, false},
	} {
		t.Run(tt.whenCanBorrow, func(t *testing.T) {
			p := plan(t, cfg(tt.whenCanBorrow), snap)
			d := decision(t, p, "vision/a")
			if summary(d) != tt.want || d.Borrowed != tt.borrowed {
				t.Errorf("got %+v borrowed %v, want %+v borrowed %v", summary(d), d.Borrowed, tt.want, tt.borrowed)
			}
		})
	}
}

func TestPartialAdmissionSaysWhatWasAsked(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").
		Team(build.Team("vision").Quota("h100", build.GPU("200"))).
		Workload(build.Workload("vision", "big").Training(50).MinWorkers(20).GPUs(8))
	// 25 nodes of 8 GPUs: room for 25 of the 50 workers.
	snap := build.Snapshot()
	for i := range 25 {
		snap.Node(build.Node(fmt.Sprintf("n%02d", i)).GPUs(8, "H100"))
	}
	p := plan(t, cfg, snap)
	d := decision(t, p, "vision/big")
	if d.Action != berth.ActionAdmit || d.Pods != 25 || d.PodsAsked != 50 || d.MinPods != 20 || len(d.Placements) != 25 {
		t.Fatalf("got %s with %d of %d pods (min %d), want 25 of 50, at least 20", d.Action, d.Pods, d.PodsAsked, d.MinPods)
	}
	if got := status.Where(d); !strings.HasPrefix(got, "25 of 50 workers, at least 20 on 25 nodes") {
		t.Errorf("plan text %q does not say 25 of 50 workers, at least 20", got)
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), `"pods":25,"podsAsked":50,"minPods":20`) {
		t.Errorf("JSON %s does not say pods 25, podsAsked 50, minPods 20", b)
	}
}
