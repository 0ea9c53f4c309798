package schedule_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// bigCase is teams teams in 10 cohorts, nodes nodes of 8 H100s, and
// pending workloads of a realistic mix (mostly 1-8 GPU jobs, some gangs,
// shared-GPU inference), with running runs filling part of the cluster.
func bigCase(teams, nodes, pending, running int) (*berth.Config, *berth.Snapshot) {
	r := rand.New(rand.NewPCG(42, 42))
	cfg := build.Config().GPUFlavor("h100", "H100").CPUFlavor("cpu")
	for c := range 10 {
		cfg.Cohort(fmt.Sprintf("cohort-%d", c), "")
	}
	perTeam := int64(nodes * 8 / teams)
	for t := range teams {
		cfg.Team(build.Team(fmt.Sprintf("team-%03d", t)).Cohort(fmt.Sprintf("cohort-%d", t%10)).
			Quota("h100", build.GPU(fmt.Sprint(perTeam)).Borrow(fmt.Sprint(perTeam))).
			Quota("cpu", build.CPU("1000")))
	}
	snap := build.Snapshot()
	for n := range nodes {
		snap.Node(build.Node(fmt.Sprintf("node-%04d", n)).GPUs(8, "H100").CPU("128").Memory("1Ti").
			Label("rack", fmt.Sprint(n/32)))
	}
	tiers := []string{"low", "normal", "normal", "normal", "production"}
	mk := func(i int) *build.WorkloadBuilder {
		team := fmt.Sprintf("team-%03d", r.IntN(teams))
		w := build.Workload(team, fmt.Sprintf("w-%06d", i)).Priority(tiers[r.IntN(len(tiers))]).CPU("4").Memory("32Gi").
			MaxDuration(fmt.Sprintf("%dm", 30+r.IntN(600)))
		switch x := r.IntN(20); {
		case x < 2:
			w.Training(2 + r.IntN(3)).GPUs(8)
		case x < 5:
			w.Inference(1 + r.IntN(2)).Fraction(0.5)
		case x < 6:
			w.Parallel(2, 4)
		default:
			w.GPUs([]int{1, 1, 2, 4, 8}[r.IntN(5)])
		}
		return w
	}
	var ws []*build.WorkloadBuilder
	for i := range pending {
		w := mk(i)
		ws = append(ws, w)
		snap.Queued(string(w.Obj().ID()), build.T0.Add(-time.Duration(r.IntN(100000))*time.Second))
	}
	cfg.Workload(ws...)
	c, s := cfg.Obj(), snap.Obj()
	if running > 0 {
		// Admit a first batch and keep it running.
		var more []*build.WorkloadBuilder
		for i := range running {
			// Small runs, so that 10,000 fit in 8,000 GPUs.
			w := build.Workload(fmt.Sprintf("team-%03d", r.IntN(teams)), fmt.Sprintf("r-%06d", i)).CPU("2").Memory("8Gi").
				MaxDuration(fmt.Sprintf("%dm", 30+r.IntN(600)))
			if i%2 == 0 {
				w.Fraction(0.5)
			} else {
				w.GPUs(1)
			}
			more = append(more, w)
		}
		extra := build.Config()
		extra.Workload(more...)
		var reqs []schedule.Request
		for _, w := range extra.Obj().Workloads {
			c.Workloads[w.ID()] = w
			reqs = append(reqs, schedule.Request{Workload: &w, RunID: w.RunID, Since: build.T0.Add(-time.Hour)})
		}
		decided := schedule.NewScheduler(c, s, schedule.Options{}).Decide(s.Time, reqs)
		for _, d := range decided {
			if d.Starts() {
				w := c.Workloads[d.Workload]
				s.Running = append(s.Running, berth.RunningWorkload{Workload: d.Workload, RunID: d.RunID, Kind: d.Kind,
					Priority: d.Priority, Flavor: d.Flavor, Since: build.T0.Add(-10 * time.Minute), Resources: w.Resources,
					Placements: d.Placements, MaxDuration: w.MaxDuration})
			}
		}
	}
	return c, s
}

// BenchmarkPlanFull is a full plan of N pending workloads for 200 teams on
// 1,000 nodes with 8,000 GPUs, for N doubling from 12,500 to 50,000: the
// whole decision step (preparation included) that the engine, `berth plan`
// and the pull-request planner run. cpu-ms/op is the process's CPU time per
// plan (garbage collection included), which a loaded machine does not
// inflate as it does wall time.
func BenchmarkPlanFull(b *testing.B) {
	for _, n := range []int{12500, 25000, 50000} {
		cfg, snap := bigCase(200, 1000, n, 0)
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			cpu := startCPU()
			for b.Loop() {
				schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
				cpu.n++
			}
			cpu.report(b)
		})
	}
}

// BenchmarkScheduleOneNew is one new workload beside 10,000 admitted runs
// through schedule.Schedule, which builds the state anew: what a caller
// without a Cache pays (`berth plan` on a snapshot file).
func BenchmarkScheduleOneNew(b *testing.B) {
	cfg, snap := bigCase(200, 1000, 0, 10000)
	w := build.Workload("team-007", "new-job").GPUs(4).MaxDuration("2h").Obj()
	cfg.Workloads[w.ID()] = w
	b.Logf("running runs: %d", len(snap.Running))
	cpu := startCPU()
	for b.Loop() {
		plan := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		if d, _ := plan.Decision(w.ID()); !d.Starts() {
			b.Fatalf("not admitted: %+v", d)
		}
		cpu.n++
	}
	cpu.report(b)
}

// BenchmarkCacheOneNew is the engine's path for one new workload beside
// 10,000 admitted runs: a Cache that planned the cluster before gets a
// new revision with one workload more (or, every other cycle, one less),
// decoded anew (no slice or map shared with the last one), and the
// snapshot reconcile.Snapshot makes of a cluster's new report (a report of
// the same runs that shares no memory with the last: the backend observes
// anew each time; observing is not measured), and returns the whole plan
// (10,001 decisions). With packages, both revisions have a package per
// team, as loaded ones have (the new workload's package has a new
// digest); without, as Configs made in code, every workload is compared.
func BenchmarkCacheOneNew(b *testing.B) {
	b.Run("packages", func(b *testing.B) { benchCacheOneNew(b, true) })
	b.Run("no-packages", func(b *testing.B) { benchCacheOneNew(b, false) })
}

func benchCacheOneNew(b *testing.B, packages bool) {
	cfg, snap := bigCase(200, 1000, 0, 10000)
	w := build.Workload("team-007", "new-job").GPUs(4).MaxDuration("2h").Obj()
	with := decodedAgain(cfg)
	with.Workloads[w.ID()] = w
	if packages {
		cfg.Packages, with.Packages = packagesByTeam(cfg), packagesByTeam(with)
	}
	snap.Sort()
	c := schedule.NewCache()
	c.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
	b.Logf("running runs: %d", len(snap.Running))
	reports := [2]*reconcile.Observed{observedOf(snap), observedOf(snap)}
	cpu := startCPU()
	i := 0
	for b.Loop() {
		in := schedule.Input{Config: with}
		if i%2 == 1 {
			in.Config = cfg
		}
		s := reconcile.Snapshot(in.Config, snap.Cluster, reports[i%2], snap.Time)
		in.Snapshot = &s
		plan := c.Schedule(in, schedule.Options{})
		if d, ok := plan.Decision(w.ID()); ok != (i%2 == 0) || (ok && !d.Starts()) {
			b.Fatalf("cycle %d: %+v", i, d)
		}
		i++
		cpu.n++
	}
	cpu.report(b)
}

// BenchmarkCacheRunStarted is the engine's resync of one revision beside
// 10,000 running runs: the configuration is the one the Cache saw last, and
// each new snapshot (reconcile.Snapshot of a new report, as in
// BenchmarkCacheOneNew) has one run more than the last (the one the last
// plan admitted) or, every other cycle, one less.
func BenchmarkCacheRunStarted(b *testing.B) {
	cfg, snap := bigCase(200, 1000, 0, 10000)
	w := build.Workload("team-007", "new-job").GPUs(4).MaxDuration("2h").Obj()
	cfg.Workloads[w.ID()] = w
	snap.Sort()
	c := schedule.NewCache()
	plan := c.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
	d, _ := plan.Decision(w.ID())
	started := *snap
	started.Running = append(slices.Clone(snap.Running), berth.RunningWorkload{Workload: d.Workload, RunID: d.RunID,
		Kind: d.Kind, Priority: d.Priority, Flavor: d.Flavor, Since: snap.Time, Resources: w.Resources,
		Placements: d.Placements, MaxDuration: w.MaxDuration})
	started.Sort()
	reports := [2]*reconcile.Observed{observedOf(&started), observedOf(snap)}
	cpu := startCPU()
	i := 0
	for b.Loop() {
		s := reconcile.Snapshot(cfg, snap.Cluster, reports[i%2], snap.Time)
		plan := c.Schedule(schedule.Input{Config: cfg, Snapshot: &s}, schedule.Options{})
		if d, _ := plan.Decision(w.ID()); (i%2 == 0) != (d.Action == berth.ActionKeep) {
			b.Fatalf("cycle %d: %+v", i, d)
		}
		i++
		cpu.n++
	}
	cpu.report(b)
}

// observedOf is the report a backend gives of a cluster in the state of
// snap: its runs, sorted and each with when it was queued, and the
// ledger's record of each; no list shared with snap or another report.
func observedOf(snap *berth.Snapshot) *reconcile.Observed {
	obs := &reconcile.Observed{Snapshot: *snap}
	obs.Snapshot.Nodes = slices.Clone(snap.Nodes)
	obs.Snapshot.Running = slices.Clone(snap.Running)
	for i := range obs.Snapshot.Running {
		rw := &obs.Snapshot.Running[i]
		if rw.QueuedSince.IsZero() {
			rw.QueuedSince = rw.Since
		}
		obs.Runs = append(obs.Runs, reconcile.RunState{Phase: reconcile.PhaseRunning, StartedAt: rw.Since,
			RunRecord: reconcile.RunRecord{Workload: rw.Workload, RunID: rw.RunID, Kind: rw.Kind, QueuedSince: rw.QueuedSince}})
	}
	return obs
}

// decodedAgain copies cfg as a new decode of the same files would give it:
// equal workloads that share no slice or map with cfg's.
func decodedAgain(cfg *berth.Config) *berth.Config {
	c := *cfg
	c.Workloads = make(map[berth.WorkloadID]berth.Workload, len(cfg.Workloads))
	for id, w := range cfg.Workloads {
		w.Command, w.Args, w.DependsOn = slices.Clone(w.Command), slices.Clone(w.Args), slices.Clone(w.DependsOn)
		w.Ports, w.Env = slices.Clone(w.Ports), maps.Clone(w.Env)
		if w.Roles != nil {
			roles := map[string]berth.Role{}
			for n, r := range w.Roles {
				r.NodeSelector, r.Env = maps.Clone(r.NodeSelector), maps.Clone(r.Env)
				r.Command, r.Args = slices.Clone(r.Command), slices.Clone(r.Args)
				roles[n] = r
			}
			w.Roles = roles
		}
		c.Workloads[id] = w
	}
	return &c
}

// BenchmarkBuildState builds the state of a cluster holding 10,000 runs
// from its snapshot (what a Cache saves).
func BenchmarkBuildState(b *testing.B) {
	cfg, snap := bigCase(200, 1000, 0, 10000)
	for b.Loop() {
		schedule.NewScheduler(cfg, snap, schedule.Options{})
	}
}
