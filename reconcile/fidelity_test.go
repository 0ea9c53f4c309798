package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/status/gh"
)

// The plan a pull request shows is what the engine then does. A property
// test over generated repositories and cluster states: the real engine
// steps the real local backend (simulated GPUs, real processes) through
// commits and time. Before each step, the plan that `berth plan --server`
// (reconcile.Plan of what serve observed) and the pull-request planner
// (gh.ObservedSnapshot, then schedule.Schedule) would print for the next
// revision; after it, what the engine did. Every admit, queue, preempt,
// stop and reject predicted must have happened, run by run.
//
// The one documented cause of a miss: the cluster changed between the
// plan's observation and the engine's (a run ended, a process started).
// Such a step is counted, and must be rare; any other miss fails the test.

// fidelitySteps is how many steps the test takes in all (BERTH_FIDELITY_STEPS
// overrides it; -short takes 100).
func fidelitySteps(t *testing.T) int {
	if s := os.Getenv("BERTH_FIDELITY_STEPS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		return n
	}
	if testing.Short() {
		return 100
	}
	return 1000
}

func TestPlanPredictsWhatTheEngineDoes(t *testing.T) {
	total := fidelitySteps(t)
	const perSeed = 50
	var steps, held, changedBetween int
	var misses []string
	seen := map[string]int{}
	for seed := uint64(1); steps < total; seed++ {
		n := min(perSeed, total-steps)
		r := runFidelity(t, seed, n)
		steps += r.steps
		held += r.held
		changedBetween += r.changedBetween
		misses = append(misses, r.unexplained...)
		for k, v := range r.seen {
			seen[k] += v
		}
	}
	t.Logf("predictions: %v", seen)
	for _, k := range []string{"admit", "preempt", "preempted", "stop", "queue", "reject", "done", "wait RetryBackoff", "wait WaitingForSchedule", "wait TickWaitsForRun", "tick admitted"} {
		if seen[k] == 0 && total >= 500 {
			t.Errorf("no step predicted %q: the generator does not reach it", k)
		}
	}
	t.Logf("%d steps: predictions held in %d (%.1f%%); %d steps saw the cluster change between plan and reconcile",
		steps, held, 100*float64(held)/float64(steps), changedBetween)
	for _, m := range misses {
		t.Errorf("unexplained miss: %s", m)
	}
	if float64(held) < 0.99*float64(steps) {
		t.Errorf("predictions held in %d of %d steps, want at least 99%%", held, steps)
	}
}

type fidelityResult struct {
	steps, held, changedBetween int
	unexplained                 []string
	// seen counts the predictions made, by action and reason, so the test
	// cannot pass on steps that decide nothing.
	seen map[string]int
}

// count counts a plan's decisions by action and reason.
func (res *fidelityResult) count(p *berth.Plan) {
	for _, d := range p.Decisions {
		switch {
		case d.Action == berth.ActionWait:
			res.seen["wait "+string(d.Reason.Code)]++
		case d.Starts() && strings.Contains(d.RunID, "-"):
			res.seen["tick admitted"]++
			res.seen[string(d.Action)]++
		default:
			res.seen[string(d.Action)]++
		}
	}
}

// judge counts one step: the prediction held, the cluster changed
// between the plan and the reconcile (which explains a miss), or a miss
// nothing explains.
func (res *fidelityResult) judge(step string, predicted *berth.Plan, cr reconcile.ClusterReport, cfg *berth.Config, obs *reconcile.Observed) {
	res.steps++
	missed := compare(predicted, cr)
	switch {
	case len(missed) == 0:
		res.held++
	case !sameState(cfg, obs, cr.Observed):
		res.changedBetween++
	default:
		for _, m := range missed {
			res.unexplained = append(res.unexplained, step+": "+m)
		}
	}
}

// genWorkload is one workload of a generated repository.
type genWorkload struct {
	team, name, kind, prio, cmd, dep, cron string
	catchUp, concurrency                   string
	gpus, retries, runID                   int
}

func (w genWorkload) id() string { return w.team + "/" + w.name }

var fidelityCommands = map[string]string{
	"long":  `["sh", "-c", "exec sleep 600"]`,
	"quick": `["true"]`,
	"fail":  `["sh", "-c", "exit 1"]`,
}

// genRepo is a generated repository: two teams that lend each other GPUs
// on a 4-GPU box, and their workloads.
type genRepo struct {
	nominalA  int
	workloads []genWorkload
}

func (g genRepo) fs() fstest.MapFS {
	platform := fmt.Sprintf(`package p
clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: h100: gpuModel: "H100"
flavors: cpu: {}
cohorts: all: {}
teams: a: {owners: ["@a"], cohort: "all", quota: [{flavor: "h100", gpu: {nominal: %d, borrowingLimit: 4}}, {flavor: "cpu", cpu: nominal: 16}]}
teams: b: {owners: ["@b"], cohort: "all", quota: [{flavor: "h100", gpu: {nominal: %d, borrowingLimit: 4}}, {flavor: "cpu", cpu: nominal: 16}]}
`, g.nominalA, 4-g.nominalA)
	var b strings.Builder
	b.WriteString("package w\n")
	for _, w := range g.workloads {
		fmt.Fprintf(&b, "workloads: %s: %q: {\n\tkind: %q, image: \"x\", priority: %q, runId: \"%d\"\n\tcommand: %s\n",
			w.team, w.name, w.kind, w.prio, w.runID, fidelityCommands[w.cmd])
		if w.gpus > 0 {
			fmt.Fprintf(&b, "\tresources: {gpu: %d, cpu: 1, memory: \"1Gi\"}\n", w.gpus)
		} else {
			b.WriteString("\tresources: {cpu: 1, memory: \"1Gi\", flavor: \"cpu\"}\n")
		}
		if w.kind != "service" {
			fmt.Fprintf(&b, "\tretries: %d, maxDuration: \"24h\"\n", w.retries)
		}
		if w.dep != "" {
			fmt.Fprintf(&b, "\tdependsOn: [%q]\n", w.dep)
		}
		if w.cron != "" {
			fmt.Fprintf(&b, "\tschedule: %q\n", w.cron)
			if w.catchUp != "" {
				fmt.Fprintf(&b, "\tcatchUp: %q, catchUpLimit: 3\n", w.catchUp)
			}
			if w.concurrency != "" {
				fmt.Fprintf(&b, "\tconcurrency: %q\n", w.concurrency)
			}
		}
		b.WriteString("}\n")
	}
	return fstest.MapFS{"p/p.cue": {Data: []byte(platform)}, "w/w.cue": {Data: []byte(b.String())}}
}

// mutate changes the repository or lets time pass; it returns how far the
// clock moves.
func (g *genRepo) mutate(r *rand.Rand, serial *int) time.Duration {
	pick := func() *genWorkload { return &g.workloads[r.IntN(len(g.workloads))] }
	switch x := r.IntN(100); {
	case x < 30 && len(g.workloads) < 9 || len(g.workloads) == 0:
		*serial++
		w := genWorkload{team: []string{"a", "b"}[r.IntN(2)], name: fmt.Sprintf("w%d", *serial), runID: 1,
			kind: []string{"batch", "batch", "training", "service"}[r.IntN(4)],
			prio: []string{"low", "normal", "normal", "production"}[r.IntN(4)],
			cmd:  []string{"long", "long", "quick", "fail"}[r.IntN(4)],
			gpus: r.IntN(4), retries: r.IntN(3)}
		if r.IntN(12) == 0 {
			w.gpus = 6 // more than the box has: rejected
		}
		if w.kind == "service" {
			w.cmd = "long"
		}
		if w.kind == "batch" && r.IntN(5) == 0 {
			w.cron, w.cmd = "*/10 * * * *", "quick"
			// Missed and overlapping ticks: the clock jumps up to 12
			// minutes a step, and a long tick outlives the next.
			w.catchUp = []string{"", "latest", "all"}[r.IntN(3)]
			w.concurrency = []string{"", "forbid", "replace"}[r.IntN(3)]
			if r.IntN(2) == 0 {
				w.cmd = "long"
			}
		}
		if w.kind != "service" && w.cron == "" && r.IntN(4) == 0 {
			for _, d := range g.workloads {
				if d.team == w.team && d.kind == "batch" && d.cron == "" {
					w.dep = d.name
				}
			}
		}
		g.workloads = append(g.workloads, w)
	case x < 40:
		i := r.IntN(len(g.workloads))
		gone := g.workloads[i]
		g.workloads = append(g.workloads[:i], g.workloads[i+1:]...)
		for j := range g.workloads {
			if g.workloads[j].team == gone.team && g.workloads[j].dep == gone.name {
				g.workloads[j].dep = ""
			}
		}
	case x < 50:
		pick().runID++
	case x < 58:
		pick().prio = []string{"low", "normal", "production"}[r.IntN(3)]
	case x < 65:
		g.nominalA = 1 + r.IntN(3)
	case x < 90:
		return time.Duration(1+r.IntN(12)) * time.Minute
	}
	return 0
}

func runFidelity(t *testing.T, seed uint64, steps int) fidelityResult {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 7))
	var offset time.Duration
	now := time.Now().UTC()
	clock := func() time.Time { return now }

	state := t.TempDir()
	c, err := local.New(local.Options{Name: "box", StateDir: state, SimulatedGPUs: "4xH100", GracePeriod: 200 * time.Millisecond, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { killRuns(state); c.Close() }()
	// The shim stamps a failure with the real time while the engine's clock
	// runs ahead of it, so the backoff is either nothing (the first
	// failure: retried at the next step) or longer than any test (later
	// ones: the plan says it waits, step after step).
	opts := schedule.Options{Backoff: func(failures int) time.Duration {
		if failures <= 1 {
			return 0
		}
		return 1000 * time.Hour
	}}
	loader := cue.NewLoader(cue.Options{})
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: loader, Now: clock, Schedule: opts})

	g := genRepo{nominalA: 2}
	serial := 0
	res := fidelityResult{seen: map[string]int{}}
	for step := range steps {
		offset += g.mutate(r, &serial)
		now = time.Now().UTC().Add(offset).Truncate(time.Millisecond)
		rev := reconcile.Revision{Name: fmt.Sprintf("main@sha1:%d-%d", seed, step), Commit: fmt.Sprintf("%d-%d", seed, step), FS: g.fs()}
		cfg, err := loader.Load(rev.FS)
		if err != nil {
			t.Fatalf("seed %d step %d: the generated repository does not load: %v\n%s", seed, step, err, rev.FS.(fstest.MapFS)["w/w.cue"].Data)
		}

		// The plans people would read for this revision, made from what
		// the cluster reports now.
		obs, err := c.Observe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		predicted := reconcile.Plan(cfg, "box", obs, now, opts) // berth plan --server, berth snapshot + plan
		prOpts := opts
		prOpts.Estimate = map[berth.WorkloadID]bool{}
		pr := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: gh.ObservedSnapshot(cfg, "box", obs, now)}, prOpts)
		if d := cmp.Diff(actions(predicted), actions(pr)); d != "" {
			t.Fatalf("seed %d step %d: berth plan and the PR planner disagree:\n%s", seed, step, d)
		}

		res.count(predicted)

		// What the engine does.
		rep := e.ReconcileRevision(ctx, rev)
		cr := rep.Clusters[0]
		if rep.Invalid != nil || cr.Err != nil {
			t.Fatalf("seed %d step %d: reconcile: invalid %v, err %v", seed, step, rep.Invalid, cr.Err)
		}
		res.judge(fmt.Sprintf("seed %d step %d", seed, step), predicted, cr, cfg, obs)
		settle(t, c, g)
	}
	return res
}

// actions is a plan's decisions without what only an estimate adds.
func actions(p *berth.Plan) []string {
	var out []string
	for _, d := range p.Decisions {
		code := ""
		if d.Reason != nil {
			code = string(d.Reason.Code)
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %v", d.Key(), d.Action, code, d.Flavor, d.Victims))
	}
	return out
}

// compare says which predicted decisions the engine did not carry out.
func compare(predicted *berth.Plan, cr reconcile.ClusterReport) []string {
	type did struct{ started, preempted, stopped bool }
	done := map[berth.RunKey]*did{}
	at := func(k berth.RunKey) *did {
		if done[k] == nil {
			done[k] = &did{}
		}
		return done[k]
	}
	for _, res := range cr.Results {
		if res.Outcome == reconcile.OutcomeFailed {
			continue
		}
		ch := res.Change
		d := at(ch.Key())
		switch {
		case ch.Op == reconcile.OpStart:
			d.started = true
		case ch.Op == reconcile.OpStop && ch.Phase == reconcile.PhasePreempted:
			d.preempted = true
		case ch.Op == reconcile.OpStop:
			d.stopped = true
		}
	}
	var missed []string
	for _, p := range predicted.Decisions {
		d := at(p.Key())
		key := p.Key().String()
		switch {
		case p.Starts() && !d.started:
			missed = append(missed, key+": predicted "+string(p.Action)+", not started")
		case !p.Starts() && d.started:
			missed = append(missed, key+": predicted "+string(p.Action)+", but started")
		case p.Action == berth.ActionPreempted && !d.preempted:
			missed = append(missed, key+": predicted preempted, not stopped")
		case p.Action == berth.ActionStop && !d.stopped:
			missed = append(missed, key+": predicted stop, not stopped")
		case p.Action == berth.ActionKeep && (d.preempted || d.stopped):
			missed = append(missed, key+": predicted keep, but stopped")
		}
	}
	slices.Sort(missed)
	return missed
}

// sameState reports whether two observations give the scheduler the same
// view (times aside).
func sameState(cfg *berth.Config, a, b *reconcile.Observed) bool {
	if b == nil {
		return false
	}
	t0 := time.Time{}
	x, _ := json.Marshal(reconcile.Snapshot(cfg, "box", a, t0))
	y, _ := json.Marshal(reconcile.Snapshot(cfg, "box", b, t0))
	return string(x) == string(y)
}

// settle waits until every start has finished and every quick process
// has ended, so the next plan sees a cluster at rest (as serve's resync
// would a moment later).
func settle(t *testing.T, c *local.Cluster, g genRepo) {
	t.Helper()
	quick := map[berth.WorkloadID]bool{}
	for _, w := range g.workloads {
		quick[berth.WorkloadID(w.id())] = w.cmd != "long"
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		obs, err := c.Observe(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		busy := false
		for _, r := range obs.Runs {
			if r.Phase == reconcile.PhaseAdmitted || (r.Phase == reconcile.PhaseRunning && quick[r.Workload]) {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
