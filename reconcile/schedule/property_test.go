package schedule_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/readsonce"
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
		cfg.Team(randomTeam(r, t))
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
	prios := map[string]int{"low": 10, "normal": 100, "production": 1000}
	var ws []*build.WorkloadBuilder
	for i := range 6 + r.IntN(14) {
		w := randomWorkload(r, teams, i)
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

// randomTeam is team t with random quotas in the three flavors and
// random preemption settings.
func randomTeam(r *rand.Rand, t string) *build.TeamBuilder {
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
	return tb
}

// randomWorkload is workload i of a random team, of a random kind and
// size.
func randomWorkload(r *rand.Rand, teams []string, i int) *build.WorkloadBuilder {
	tiers := []string{"low", "normal", "production"}
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
	return w
}

func TestPropertiesHold(t *testing.T) {
	for seed := range uint64(300) {
		cfg, snap := randomCase(seed)
		p := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		readsonce.Check(t, p)
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

// quotaReasonRE reads the arithmetic of a quota reason: it asks N; the
// team uses U of nominal M, bounded by E (a borrowing limit, what the
// cohort can lend, less what other teams use of its nominal, or nothing
// without a cohort); so it is short by K.
var quotaReasonRE = regexp.MustCompile(`: it asks (\S+) ([^;]+); the team uses (\S+) of nominal (\S+)` +
	`(?: \+ borrowing limit (\S+)| and the cohort can lend it at most (\S+)| and other teams of cohort \S+ use (\S+) of it| and has no cohort to borrow from)` +
	`, so it is short by (\S+) (.+)$`)

// TestQuotaReasonsAddUp reads the numbers of every quota reason of 600
// random cases and checks that they add up: K = U + N - (M + E), K > 0,
// and N is what the workload asks of the resource.
func TestQuotaReasonsAddUp(t *testing.T) {
	forms := map[string]int{}
	for seed := range uint64(600) {
		cfg, snap := randomCase(seed)
		p := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		for _, d := range p.Decisions {
			if d.Reason == nil || (d.Reason.Code != berth.ReasonQuota && d.Reason.Code != berth.ReasonCohort) {
				continue
			}
			m := quotaReasonRE.FindStringSubmatch(d.Reason.Message)
			if m == nil {
				t.Errorf("seed %d: %s: the reason does not give its arithmetic: %s", seed, d.Workload, d.Reason.Message)
				continue
			}
			num := func(s string) int64 {
				q, err := berth.ParseQuantity(s)
				if err != nil {
					t.Fatalf("seed %d: %s: %q in %q: %v", seed, d.Workload, s, d.Reason.Message, err)
				}
				return q.Milli()
			}
			n, u, nominal, k := num(m[1]), num(m[3]), num(m[4]), num(m[8])
			var e int64
			switch {
			case m[5] != "":
				e, forms["borrowing limit"] = num(m[5]), forms["borrowing limit"]+1
			case m[6] != "":
				e, forms["cohort lends"] = num(m[6]), forms["cohort lends"]+1
			case m[7] != "":
				e, forms["others use its nominal"] = -num(m[7]), forms["others use its nominal"]+1
			default:
				forms["no cohort"]++
			}
			if k != u+n-(nominal+e) || k <= 0 {
				t.Errorf("seed %d: %s: short by %s does not add up (%d + %d - (%d + %d)): %s", seed, d.Workload, m[8], u, n, nominal, e, d.Reason.Message)
			}
			if strings.TrimSuffix(m[2], "s") != strings.TrimSuffix(m[9], "s") {
				t.Errorf("seed %d: %s: asks in %q, short in %q: %s", seed, d.Workload, m[2], m[9], d.Reason.Message)
			}
			w := cfg.Workloads[d.Workload]
			per := w.Resources.GPUMilli()
			if m[2] == "cpu" {
				per = w.Resources.CPU.Milli()
			}
			if want := per * int64(w.Pods()); n != want {
				t.Errorf("seed %d: %s asks %d (thousandths) of %s, the reason says %s: %s", seed, d.Workload, want, m[2], m[1], d.Reason.Message)
			}
		}
	}
	// The corpus reaches every form, or the test proves less than it says.
	for _, f := range []string{"borrowing limit", "cohort lends", "others use its nominal", "no cohort"} {
		if forms[f] == 0 {
			t.Errorf("no random case gave a reason of the form %q (%v)", f, forms)
		}
	}
	t.Logf("reasons checked by form: %v", forms)
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
