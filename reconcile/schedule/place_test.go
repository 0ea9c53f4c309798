package schedule_test

import (
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

func planWith(t *testing.T, cfg *build.ConfigBuilder, snap *build.SnapshotBuilder, placement string) *berth.Plan {
	t.Helper()
	return schedule.Schedule(schedule.Input{Config: cfg.Obj(), Snapshot: snap.Obj()}, schedule.Options{Placement: placement})
}

func nodesOf(d berth.Decision) map[string]int {
	out := map[string]int{}
	for _, p := range d.Placements {
		out[p.Node]++
	}
	return out
}

func TestGang(t *testing.T) {
	quota := func() *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").Team(build.Team("vision").Quota("h100", build.GPU("64")))
	}
	t.Run("packed into the fewest nodes", func(t *testing.T) {
		// Node a has 4 free, b and c are empty: 4 workers x 4 GPUs go to b
		// and c (2 nodes), not a, b and c.
		busy := build.Workload("vision", "busy").GPUs(4)
		cfg := quota().Workload(busy, build.Workload("vision", "gang").Training(4).GPUs(4))
		snap := h100Nodes(3).Running(build.Running(busy, "h100", 100).On("gpu-a", 0, 1, 2, 3))
		p := plan(t, cfg, snap)
		d := decision(t, p, "vision/gang")
		if d.Action != berth.ActionAdmit || d.Nodes() != 2 {
			t.Fatalf("got %s on %v, want admitted on 2 nodes", d.Action, nodesOf(d))
		}
	})
	t.Run("all or nothing", func(t *testing.T) {
		cfg := quota().Workload(build.Workload("vision", "gang").Training(3).GPUs(8))
		p := plan(t, cfg, h100Nodes(2))
		d := decision(t, p, "vision/gang")
		if d.Action != berth.ActionReject || d.Reason.Code != berth.ReasonExceedsCapacity || len(d.Placements) != 0 {
			t.Fatalf("got %s %+v with %d placements, want rejected whole", d.Action, d.Reason, len(d.Placements))
		}
		busy := build.Workload("vision", "busy").GPUs(4)
		cfg = quota().Workload(busy, build.Workload("vision", "gang").Training(2).GPUs(8))
		p = plan(t, cfg, h100Nodes(2).Running(build.Running(busy, "h100", 100).On("gpu-a", 0, 1, 2, 3)))
		d = decision(t, p, "vision/gang")
		if d.Action != berth.ActionQueue || d.Reason.Code != berth.ReasonGang || len(d.Placements) != 0 {
			t.Fatalf("got %s %+v, want queued whole", d.Action, d.Reason)
		}
	})
	t.Run("minWorkers starts a smaller gang", func(t *testing.T) {
		cfg := quota().Workload(build.Workload("vision", "gang").Training(3).MinWorkers(2).GPUs(8))
		p := plan(t, cfg, h100Nodes(2))
		d := decision(t, p, "vision/gang")
		if d.Action != berth.ActionAdmit || len(d.Placements) != 2 {
			t.Fatalf("got %s with %d workers, want 2", d.Action, len(d.Placements))
		}
	})
	t.Run("one topology group when it fits", func(t *testing.T) {
		cfg := build.Config().Flavor(berth.Flavor{Name: "h100", GPUModel: "H100", TopologyLabel: "rack"}).
			Team(build.Team("vision").Quota("h100", build.GPU("64"))).
			Workload(build.Workload("vision", "gang").Training(2).GPUs(8))
		snap := build.Snapshot().Node(
			build.Node("a1").GPUs(8, "H100").Label("rack", "a"),
			build.Node("b1").GPUs(8, "H100").Label("rack", "b"),
			build.Node("b2").GPUs(8, "H100").Label("rack", "b"),
			build.Node("c1").GPUs(8, "H100").Label("rack", "c"))
		p := plan(t, cfg, snap)
		d := decision(t, p, "vision/gang")
		if n := nodesOf(d); n["b1"] != 1 || n["b2"] != 1 {
			t.Fatalf("placed on %v, want rack b (b1, b2)", n)
		}
	})
}

func TestSharing(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").MIGFlavor("mig", "H100", "1g.10gb").
		Team(build.Team("serving").Quota("h100", build.GPU("8")).Quota("mig", build.GPU("7")))
	t.Run("fractions share a GPU", func(t *testing.T) {
		c := cfg.Workload(build.Workload("serving", "api").Inference(4).Fraction(0.5))
		p := plan(t, c, build.Snapshot().Node(build.Node("n").GPUs(2, "H100")))
		d := decision(t, p, "serving/api")
		if d.Action != berth.ActionAdmit || len(d.Placements) != 4 {
			t.Fatalf("got %s with %d replicas", d.Action, len(d.Placements))
		}
		per := map[int]float64{}
		for _, pl := range d.Placements {
			per[pl.GPUs[0]] += pl.GPUFraction
		}
		if per[0] != 1 || per[1] != 1 {
			t.Errorf("GPU shares %v, want both GPUs full", per)
		}
	})
	t.Run("MIG slices are their own resource", func(t *testing.T) {
		c := build.Config().GPUFlavor("h100", "H100").MIGFlavor("mig", "H100", "1g.10gb").
			Team(build.Team("serving").Quota("h100", build.GPU("8")).Quota("mig", build.GPU("7"))).
			Workload(build.Workload("serving", "nb").Kind(berth.KindNotebook).MIG("1g.10gb"),
				build.Workload("serving", "whole").GPUs(1))
		snap := build.Snapshot().Node(build.Node("n").GPUs(2, "H100").MIG(1, "1g.10gb", 7))
		p := plan(t, c, snap)
		nb, whole := decision(t, p, "serving/nb"), decision(t, p, "serving/whole")
		if nb.Flavor != "mig" || len(nb.Placements) != 1 || len(nb.Placements[0].MIG) != 1 || nb.Placements[0].MIG[0].GPU != 1 {
			t.Errorf("notebook: %+v", nb)
		}
		if whole.Flavor != "h100" || len(whole.Placements) != 1 || whole.Placements[0].GPUs[0] != 0 {
			t.Errorf("whole GPU: %+v (GPU 1 is in MIG mode)", whole)
		}
	})
}

func TestPlacementPolicies(t *testing.T) {
	// Node a has half a GPU used; node b is empty. A 0.5 share: best fit
	// and berth fill a's GPU; first fit takes a too (it comes first). A
	// whole GPU: all avoid the half-used GPU.
	used := build.Workload("s", "used").Fraction(0.5)
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("s").Quota("h100", build.GPU("8"))).
		Workload(used, build.Workload("s", "half").Fraction(0.5))
	snap := func() *build.SnapshotBuilder {
		return build.Snapshot().Node(build.Node("a").GPUs(2, "H100"), build.Node("b").GPUs(2, "H100")).
			Running(build.Running(used, "h100", 100).OnFraction("a", 1, 0.5))
	}
	for _, pol := range []string{berth.PlacementFirstFit, berth.PlacementTightestFit, berth.PlacementBerth} {
		p := planWith(t, cfg, snap(), pol)
		d := decision(t, p, "s/half")
		pl := d.Placements[0]
		want := map[string]int{berth.PlacementFirstFit: 0, berth.PlacementTightestFit: 1, berth.PlacementBerth: 1}[pol]
		if pl.Node != "a" || pl.GPUs[0] != want {
			t.Errorf("%s: placed on %s GPU %v, want a GPU %d", pol, pl.Node, pl.GPUs, want)
		}
	}
}

func TestBackfill(t *testing.T) {
	long := build.Workload("v", "long").GPUs(4).MaxDuration("2h")
	cfg := func() *build.ConfigBuilder {
		return build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").WithinTeam(berth.PreemptNever).Quota("h100", build.GPU("16"))).
			Workload(long, build.Workload("v", "head").GPUs(8).Priority("production"))
	}
	snap := func() *build.SnapshotBuilder {
		return h100Nodes(1).Running(build.Running(long, "h100", 100).Since(build.T0.Add(-time.Hour)).On("gpu-a", 0, 1, 2, 3))
	}
	t.Run("a short job starts ahead", func(t *testing.T) {
		p := plan(t, cfg().Workload(build.Workload("v", "short").GPUs(4).MaxDuration("30m").Priority("low")), snap())
		expect(t, p, map[string]got{"v/head": {Action: berth.ActionQueue, Code: berth.ReasonCapacity}})
		d := decision(t, p, "v/short")
		if d.Action != berth.ActionAdmit || !d.Backfilled {
			t.Fatalf("short: %s backfilled=%v, want admitted as backfill", d.Action, d.Backfilled)
		}
		if h := decision(t, p, "v/head"); h.EstimatedStart == nil || !h.EstimatedStart.Equal(build.T0.Add(time.Hour)) {
			t.Errorf("head estimate %v, want %v", h.EstimatedStart, build.T0.Add(time.Hour))
		}
	})
	t.Run("a long job would delay the head", func(t *testing.T) {
		p := plan(t, cfg().Workload(build.Workload("v", "slow").GPUs(4).MaxDuration("3h").Priority("low")), snap())
		expect(t, p, map[string]got{"v/slow": {Action: berth.ActionQueue, Code: berth.ReasonBehindHead}})
	})
	t.Run("backfill off: first come first served", func(t *testing.T) {
		p := plan(t, cfg().NoBackfill().Workload(build.Workload("v", "slow").GPUs(4).MaxDuration("3h").Priority("low")), snap())
		expect(t, p, map[string]got{"v/slow": {Action: berth.ActionAdmit, Flavor: "h100"}})
	})
}
