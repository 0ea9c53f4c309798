package schedule_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// TestCacheDecidesAsSchedule feeds a Cache random sequences of changes
// (workloads added, removed and changed; runs started as a plan admits
// them, ended, changed; nodes changed; quotas changed; time passing; lists
// reordered; the base and head of a pull request in turn) and compares
// each of its plans with a fresh Schedule of the same input, decision by
// decision, and checks that planning again left its last plan as it was
// (plans share the decisions that did not change). Every other sequence
// has package digests, as a loaded
// configuration has (the cache then compares package by package), one
// package per team.
func TestCacheDecidesAsSchedule(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(120) {
		cfg, snap := randomCase(seed)
		r := rand.New(rand.NewPCG(seed, 3))
		c := schedule.NewCache()
		opts := schedule.Options{}
		packages := seed%2 == 0
		if packages {
			cfg.Packages = packagesByTeam(cfg)
		}
		base := cfg // a pull request's base, planned beside its head
		var last *berth.Plan
		var lastJSON string
		for step := range 25 {
			cfg, snap = cloneConfig(cfg), cloneSnapshot(snap)
			what := change(r, cfg, snap)
			if packages {
				cfg.Packages = packagesByTeam(cfg)
			}
			seen[what]++
			in := schedule.Input{Config: cfg, Snapshot: snap}
			if what == "pull request base" {
				in.Config = base
			}
			want := schedule.Schedule(in, opts)
			got := c.Schedule(in, opts)
			if d := cmp.Diff(asJSON(t, want), asJSON(t, got)); d != "" {
				t.Fatalf("seed %d, step %d (%s): the cache's plan differs from Schedule's (-want +got):\n%s", seed, step, what, d)
			}
			if last != nil {
				if d := cmp.Diff(lastJSON, asJSON(t, last)); d != "" {
					t.Fatalf("seed %d, step %d (%s): planning again changed the last plan (-before +after):\n%s", seed, step, what, d)
				}
			}
			last, lastJSON = got, asJSON(t, got)
			for _, d := range want.Decisions {
				if d.Reason != nil && d.Reason.Code == berth.ReasonNodeLost {
					seen["run lost"]++
				}
			}
			// Start part of what the plan admits; stop what it stops.
			applyPlan(r, in.Config, snap, want)
		}
	}
	for _, what := range append(changes, "run lost") {
		if seen[what] == 0 {
			t.Errorf("no step changed %q (%v)", what, seen)
		}
	}
}

var changes = []string{"workload added", "workload removed", "workload changed", "run ended", "run changed",
	"node changed", "node lost", "quota changed", "time passed", "lists reordered", "pull request base", "nothing"}

// change makes one random change to cfg and snap (copies it may change)
// and names it.
func change(r *rand.Rand, cfg *berth.Config, snap *berth.Snapshot) string {
	ids := cfg.WorkloadIDs()
	what := changes[r.IntN(len(changes))]
	switch what {
	case "workload added":
		teams := cfg.TeamNames()
		w := build.Workload(teams[r.IntN(len(teams))], fmt.Sprintf("new%d", r.IntN(1000))).
			GPUs(r.IntN(4)).CPU(fmt.Sprint(1 + r.IntN(4))).MaxDuration(fmt.Sprintf("%dm", 10+r.IntN(100)))
		if r.IntN(3) == 0 {
			w.Priority("production")
		}
		cfg.Workloads[w.Obj().ID()] = w.Obj()
	case "workload removed":
		if len(ids) > 0 {
			delete(cfg.Workloads, ids[r.IntN(len(ids))])
		}
	case "workload changed":
		if len(ids) > 0 {
			id := ids[r.IntN(len(ids))]
			w := cfg.Workloads[id]
			switch r.IntN(4) {
			case 0:
				w.Priority = []string{"low", "normal", "production"}[r.IntN(3)]
			case 1:
				w.MaxDuration = berth.Duration(time.Duration(1+r.IntN(200)) * time.Minute)
			case 2:
				w.RunID = fmt.Sprint(r.IntN(3))
			default:
				w.Image = "other"
			}
			cfg.Workloads[id] = w
		}
	case "run ended":
		if n := len(snap.Running); n > 0 {
			i := r.IntN(n)
			rw := snap.Running[i]
			snap.Running = slices.Delete(snap.Running, i, i+1)
			snap.Finished = append(snap.Finished, berth.FinishedRun{Workload: rw.Workload, RunID: rw.RunID,
				Succeeded: r.IntN(2) == 0, At: snap.Time})
		}
	case "run changed":
		if n := len(snap.Running); n > 0 {
			i := r.IntN(n)
			snap.Running[i].Priority += 1 + r.IntN(100)
			snap.Running[i].Since = snap.Running[i].Since.Add(-time.Minute)
		}
	case "node changed":
		if n := len(snap.Nodes); n > 0 {
			i := r.IntN(n)
			snap.Nodes[i].Unschedulable = !snap.Nodes[i].Unschedulable
		}
	case "node lost":
		// Not ready past the default nodeLostAfter (its runs are lost),
		// or ready again.
		if n := len(snap.Nodes); n > 0 {
			x := &snap.Nodes[r.IntN(n)]
			if x.Ready {
				x.Ready, x.NotReadySince = false, snap.Time.Add(-10*time.Minute)
			} else {
				x.Ready, x.NotReadySince = true, time.Time{}
			}
		}
	case "quota changed":
		teams := cfg.TeamNames()
		name := teams[r.IntN(len(teams))]
		team := cfg.Teams[name]
		team.Quota = slices.Clone(team.Quota)
		if len(team.Quota) > 0 && team.Quota[0].GPU != nil {
			q := *team.Quota[0].GPU
			q.Nominal = berth.MustQuantity(fmt.Sprint(r.IntN(9)))
			team.Quota[0].GPU = &q
		}
		cfg.Teams[name] = team
	case "time passed":
		snap.Time = snap.Time.Add(time.Duration(1+r.IntN(120)) * time.Minute)
	case "lists reordered":
		r.Shuffle(len(snap.Running), func(i, j int) { snap.Running[i], snap.Running[j] = snap.Running[j], snap.Running[i] })
		r.Shuffle(len(snap.Nodes), func(i, j int) { snap.Nodes[i], snap.Nodes[j] = snap.Nodes[j], snap.Nodes[i] })
	}
	return what
}

// applyPlan runs part of what a plan admits and stops what it stops or
// preempts, as a cluster would by the next snapshot.
func applyPlan(r *rand.Rand, cfg *berth.Config, snap *berth.Snapshot, p *berth.Plan) {
	stop := map[[2]string]bool{}
	for _, d := range p.Decisions {
		switch {
		case d.Action == berth.ActionPreempted && d.Reason != nil && d.Reason.Code == berth.ReasonNodeLost && r.IntN(2) == 0:
			// A lost run the backend has not requeued yet: still running
			// in the next snapshot.
		case d.Action == berth.ActionStop || d.Action == berth.ActionPreempted:
			stop[[2]string{string(d.Workload), d.RunID}] = true
		case d.Starts() && r.IntN(3) != 0:
			w := cfg.Workloads[d.Workload]
			snap.Running = append(snap.Running, berth.RunningWorkload{Workload: d.Workload, RunID: d.RunID, Kind: d.Kind,
				Priority: d.Priority, Flavor: d.Flavor, Since: snap.Time, Resources: w.Resources,
				Placements: d.Placements, MaxDuration: w.MaxDuration, Roles: d.Roles})
		}
	}
	snap.Running = slices.DeleteFunc(snap.Running, func(rw berth.RunningWorkload) bool {
		return stop[[2]string{string(rw.Workload), rw.RunID}]
	})
}

// cloneConfig copies what change may change: the cache keeps the last
// configuration to compare with, so a change is a new one.
// packagesByTeam gives cfg a package per team, as the loader would for a
// repository with a directory per team: its digest is the hash of its
// workloads.
func packagesByTeam(cfg *berth.Config) map[string]berth.Package {
	out := map[string]berth.Package{}
	for _, id := range cfg.WorkloadIDs() {
		dir := "teams/" + cfg.Workloads[id].Team
		p := out[dir]
		p.Workloads = append(p.Workloads, id)
		out[dir] = p
	}
	for dir, p := range out {
		ws := make([]berth.Workload, len(p.Workloads))
		for i, id := range p.Workloads {
			ws[i] = cfg.Workloads[id]
		}
		b, err := json.Marshal(ws)
		if err != nil {
			panic(err)
		}
		p.Digest = sha256.Sum256(b)
		out[dir] = p
	}
	return out
}

func cloneConfig(cfg *berth.Config) *berth.Config {
	c := *cfg
	c.Workloads = maps.Clone(cfg.Workloads)
	c.Teams = maps.Clone(cfg.Teams)
	return &c
}

func cloneSnapshot(snap *berth.Snapshot) *berth.Snapshot {
	s := *snap
	s.Nodes = slices.Clone(snap.Nodes)
	s.Running = slices.Clone(snap.Running)
	s.Queue = slices.Clone(snap.Queue)
	s.Finished = slices.Clone(snap.Finished)
	return &s
}

func asJSON(t *testing.T, p *berth.Plan) string {
	t.Helper()
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNotScheduledFieldsChangeNoDecision gives every workload of random
// cases other values of the fields a Cache does not compare, and checks that
// no plan changes: no decision reads them.
func TestNotScheduledFieldsChangeNoDecision(t *testing.T) {
	other := func(w *berth.Workload) []string {
		w.Image, w.Command, w.Args = "other", []string{"x"}, []string{"y"}
		w.Env, w.Retries = berth.Env{"K": berth.Val("V")}, w.Retries+3
		w.Ports = []berth.Port{{Port: 1}}
		w.Health, w.Pos = &berth.Health{Readiness: &berth.Probe{Path: "/"}}, berth.Pos{File: "x.cue", Line: 9}
		w.Rollout, w.Expose = &berth.Rollout{MaxSurge: 2}, &berth.Expose{Host: "x.example.com"}
		w.Idle = berth.Duration(time.Hour)
		return []string{"Image", "Command", "Args", "Env", "Retries", "Ports", "Health", "Rollout", "Expose", "Idle", "Pos"}
	}
	if got := other(&berth.Workload{}); !slices.Equal(got, schedule.NotScheduled) {
		t.Fatalf("the test changes %v, the cache does not compare %v", got, schedule.NotScheduled)
	}
	for seed := range uint64(100) {
		cfg, snap := randomCase(seed)
		want := asJSON(t, schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{}))
		changed := cloneConfig(cfg)
		for id, w := range changed.Workloads {
			other(&w)
			changed.Workloads[id] = w
		}
		got := asJSON(t, schedule.Schedule(schedule.Input{Config: changed, Snapshot: snap}, schedule.Options{}))
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("seed %d: a field a Cache does not compare changed the plan (-want +got):\n%s", seed, d)
		}
	}
}
