package schedule_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// randomCase builds a random cluster: teams in a cohort with random quota
// and limits, nodes with whole, MIG and shared GPUs, workloads of every
// kind, and some of them already running.
func randomCase(seed uint64) (*berth.Config, *berth.Snapshot) {
	r := rand.New(rand.NewPCG(seed, 1))
	cfg := build.Config().GPUFlavor("h100", "H100").MIGFlavor("mig", "H100", "1g.10gb").CPUFlavor("cpu").
		Cohort("lab", "")
	if r.IntN(2) == 0 {
		cfg.FairSharing()
	}
	teams := []string{"a", "b", "c", "d"}
	for _, t := range teams {
		tb := build.Team(t)
		if r.IntN(4) != 0 {
			tb.Cohort("lab")
		}
		g := build.GPU(fmt.Sprint(r.IntN(9)))
		if r.IntN(2) == 0 {
			g = g.Borrow(fmt.Sprint(r.IntN(5)))
		}
		if r.IntN(3) == 0 {
			g = g.Lend(fmt.Sprint(r.IntN(4)))
		}
		tb.Quota("h100", g, build.CPU("64"))
		tb.Quota("mig", build.GPU(fmt.Sprint(r.IntN(4))))
		tb.Quota("cpu", build.CPU(fmt.Sprint(4+r.IntN(8))))
		tb.WithinTeam([]string{berth.PreemptNever, berth.PreemptLowerPriority, berth.PreemptLowerOrNewerEqualPriority}[r.IntN(3)])
		tb.Reclaim([]string{berth.PreemptNever, berth.PreemptLowerPriority, berth.PreemptAny}[r.IntN(3)])
		if r.IntN(2) == 0 {
			tb.BorrowWithinCohort(berth.PreemptLowerPriority, -1)
		}
		cfg.Team(tb)
	}
	snap := build.Snapshot()
	for i := range 1 + r.IntN(4) {
		n := build.Node(fmt.Sprintf("n%d", i)).GPUs(4+r.IntN(5), "H100").CPU(fmt.Sprint(16 + r.IntN(64)))
		if r.IntN(3) == 0 {
			n.MIG(0, "1g.10gb", 7)
		}
		if r.IntN(3) == 0 {
			n.Label("rack", fmt.Sprint(r.IntN(2)))
		}
		snap.Node(n)
	}
	tiers := []string{"low", "normal", "production"}
	prios := map[string]int{"low": 10, "normal": 100, "production": 1000}
	var ws []*build.WorkloadBuilder
	for i := range 6 + r.IntN(14) {
		team := teams[r.IntN(len(teams))]
		w := build.Workload(team, fmt.Sprintf("w%d", i)).Priority(tiers[r.IntN(3)]).CPU(fmt.Sprint(1 + r.IntN(8)))
		switch r.IntN(6) {
		case 0:
			w.Training(1 + r.IntN(3)).GPUs(1 + r.IntN(4))
			if r.IntN(3) == 0 {
				w.MinWorkers(1)
			}
		case 1:
			w.Inference(1 + r.IntN(3)).Fraction([]float64{0.25, 0.5, 0.3}[r.IntN(3)])
		case 2:
			w.Kind(berth.KindNotebook).MIG("1g.10gb")
		case 3:
			w.Parallel(1+r.IntN(2), 2).GPUs(r.IntN(3))
		case 4:
			w.Service(1 + r.IntN(2))
		default:
			w.GPUs(1 + r.IntN(8))
		}
		if r.IntN(2) == 0 {
			w.MaxDuration(fmt.Sprintf("%dm", 10+r.IntN(300)))
		}
		ws = append(ws, w)
		snap.Queued(string(w.Obj().ID()), build.T0.Add(-time.Duration(r.IntN(1000))*time.Minute))
	}
	cfg.Workload(ws...)
	c := cfg.Obj()
	s := snap.Obj()
	// Run a first cycle and keep part of what it admits as running.
	first := schedule.Schedule(schedule.Input{Config: c, Snapshot: s}, schedule.Options{})
	for _, d := range first.Decisions {
		if d.Starts() && r.IntN(2) == 0 {
			w := c.Workloads[d.Workload]
			s.Running = append(s.Running, berth.RunningWorkload{Workload: d.Workload, RunID: d.RunID, Kind: d.Kind,
				Priority: prios[d.PriorityTier], Flavor: d.Flavor, Since: build.T0.Add(-time.Duration(r.IntN(100)) * time.Minute),
				Resources: w.Resources, Placements: d.Placements, MaxDuration: w.MaxDuration})
		}
	}
	return c, s
}

func TestPropertiesHold(t *testing.T) {
	for seed := range uint64(300) {
		cfg, snap := randomCase(seed)
		p := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		for _, q := range p.Quota {
			if q.BorrowingLimit != nil && q.UsedAfter > q.Nominal+*q.BorrowingLimit && q.UsedAfter > q.UsedBefore {
				t.Errorf("seed %d: team %s %s %s uses %d, above nominal %d + limit %d", seed, q.Team, q.Flavor, q.Resource, q.UsedAfter, q.Nominal, *q.BorrowingLimit)
			}
		}
		gpu := map[string]float64{} // node/gpu -> share used
		mig := map[string]int{}
		for _, d := range p.Decisions {
			w := cfg.Workloads[d.Workload]
			running := d.Starts() || d.Action == berth.ActionKeep
			if !running {
				waiting := d.Action == berth.ActionQueue || d.Action == berth.ActionReject || d.Action == berth.ActionWait
				if waiting && len(d.Placements) != 0 {
					t.Errorf("seed %d: %s is %s but has placements", seed, d.Workload, d.Action)
				}
				continue
			}
			if n := len(d.Placements); d.Starts() && (n < w.MinPods() || n > w.Pods()) {
				t.Errorf("seed %d: %s admitted with %d pods, want %d..%d (a gang is never split)", seed, d.Workload, n, w.MinPods(), w.Pods())
			}
			for _, pl := range d.Placements {
				for _, g := range pl.GPUs {
					share := 1.0
					if pl.GPUFraction > 0 {
						share = pl.GPUFraction
					}
					gpu[fmt.Sprintf("%s/%d", pl.Node, g)] += share
				}
				for _, m := range pl.MIG {
					mig[fmt.Sprintf("%s/%d", pl.Node, m.GPU)]++
				}
			}
		}
		for k, v := range gpu {
			if v > 1.0001 {
				t.Errorf("seed %d: GPU %s is %.2f used", seed, k, v)
			}
		}
		for k, v := range mig {
			if v > 7 {
				t.Errorf("seed %d: GPU %s has %d MIG slices used of 7", seed, k, v)
			}
		}
	}
}

func TestOrderOfInputDoesNotMatter(t *testing.T) {
	for seed := range uint64(100) {
		cfg, snap := randomCase(seed)
		want := planJSON(t, cfg, snap)
		r := rand.New(rand.NewPCG(seed, 2))
		shuffled := *snap
		shuffled.Nodes = append([]berth.Node(nil), snap.Nodes...)
		shuffled.Running = append([]berth.RunningWorkload(nil), snap.Running...)
		shuffled.Queue = append([]berth.QueuedWorkload(nil), snap.Queue...)
		r.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		r.Shuffle(len(shuffled.Running), func(i, j int) {
			shuffled.Running[i], shuffled.Running[j] = shuffled.Running[j], shuffled.Running[i]
		})
		r.Shuffle(len(shuffled.Queue), func(i, j int) { shuffled.Queue[i], shuffled.Queue[j] = shuffled.Queue[j], shuffled.Queue[i] })
		// A configuration rebuilt in another order (maps are rebuilt too).
		cfg2 := *cfg
		cfg2.Workloads = map[berth.WorkloadID]berth.Workload{}
		ids := cfg.WorkloadIDs()
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			cfg2.Workloads[id] = cfg.Workloads[id]
		}
		if got := planJSON(t, &cfg2, &shuffled); got != want {
			t.Fatalf("seed %d: plan changed with input order:\n%s", seed, cmp.Diff(want, got))
		}
	}
}

func planJSON(t *testing.T, cfg *berth.Config, snap *berth.Snapshot) string {
	t.Helper()
	p := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWhatIfLeavesStateAsItWas(t *testing.T) {
	for seed := range uint64(60) {
		cfg, snap := randomCase(seed)
		reqs, _ := schedule.Prepare(cfg, snap, schedule.Options{})
		fresh := schedule.NewScheduler(cfg, snap, schedule.Options{})
		want := fresh.Decide(snap.Time, reqs)
		s := schedule.NewScheduler(cfg, snap, schedule.Options{})
		for range 3 {
			if got := s.WhatIf(snap.Time, reqs); !cmp.Equal(got, want) {
				t.Fatalf("seed %d: what-if differs from a fresh decision:\n%s", seed, cmp.Diff(want, got))
			}
		}
		if got := s.Decide(snap.Time, reqs); !cmp.Equal(got, want) {
			t.Fatalf("seed %d: state changed by what-if:\n%s", seed, cmp.Diff(want, got))
		}
	}
}
