package schedule_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// The scenario corpus: table cases ported from the public unit tests of
// Kueue and Volcano (upstream_kueue_test.go, upstream_volcano_test.go),
// each naming the repository, file, test and case it came from. Kueue's
// ClusterQueues and Volcano's queues are berth teams; their quota is on
// one CPU-only flavor "default" unless a case says otherwise; Kueue's cpu
// requests stay cpu, and memory that a case does not mention is 0, so the
// quota arithmetic is the upstream's. Nodes are one large node unless the
// upstream case is about nodes, so quota alone decides, as in Kueue's
// preemptor tests.

// upstreamCase is one ported case.
type upstreamCase struct {
	name string // the upstream case's name
	from string // repository, file and test function
	// differs says where berth deliberately decides otherwise, and why.
	differs string

	cohorts  []cohortSpec
	teams    []*build.TeamBuilder
	nodes    []*build.NodeBuilder // default: one node of 10,000 cpu
	gpu      string               // a GPU flavor of this model instead of "default"
	flavors  []string             // CPU-only flavors instead of "default"
	fair     bool
	running  []wl
	incoming []wl
	want     map[string]outcome // by "team/name"
}

type cohortSpec struct {
	name, parent string
	quota        []build.ResourceQuota
}

// wl is a workload: running (with its node) or incoming.
type wl struct {
	team, name string
	prio       int
	cpu, mem   string
	gpus       int
	workers    int // a training gang of this many workers
	minWorkers int
	node       string // running: default "n"
	flavor     string // running: default the case's first flavor
	gpuIDs     []int  // running: GPUs per worker on node
	keep       bool   // running: not preemptible (Volcano's preemptable: false)
	// at is when it started (running) or was first seen (incoming),
	// relative to T0.
	at time.Duration
	// queued is when a running run was first seen waiting, relative to T0
	// (default: when it started).
	queued *time.Duration
}

// outcome is what berth decides for an incoming workload.
type outcome struct {
	action  berth.Action
	victims []string // "team/name Code", sorted
	pods    int      // admitted pods, when it matters (partial admission)
	flavor  string
}

func tierName(prio int) string { return fmt.Sprintf("prio%+d", prio) }

func (w wl) tier() string {
	if w.keep {
		return tierName(w.prio) + "-kept"
	}
	return tierName(w.prio)
}

func (w wl) builder() *build.WorkloadBuilder {
	b := build.Workload(w.team, w.name).Priority(w.tier()).CPU(orStr(w.cpu, "0")).Memory(orStr(w.mem, "0"))
	if w.workers > 0 {
		b.Training(w.workers)
		if w.minWorkers > 0 {
			b.MinWorkers(w.minWorkers)
		}
	}
	if w.gpus > 0 {
		b.GPUs(w.gpus)
	}
	return b
}

func orStr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// kueueCQ is a team with Kueue's ClusterQueue preemption defaults (never
// within the queue, never reclaim) unless set, and quota on "default".
func kueueCQ(name, cohort, within, reclaim string, quota ...build.ResourceQuota) *build.TeamBuilder {
	t := build.Team(name).WithinTeam(orStr(within, berth.PreemptNever)).Reclaim(orStr(reclaim, berth.PreemptNever))
	if cohort != "" {
		t.Cohort(cohort)
	}
	return t.Quota("default", quota...)
}

func (tc upstreamCase) run(t *testing.T) {
	t.Helper()
	cfg, flavor := tc.config()
	snap := tc.snapshot(cfg, flavor)
	tc.check(t, plan(t, cfg, snap))
}

// config is the case's flavors, cohorts and teams; flavor is the one
// its workloads use unless they name another.
func (tc upstreamCase) config() (cfg *build.ConfigBuilder, flavor string) {
	flavor = "default"
	cfg = build.Config().DefaultPriority(tierName(0))
	switch {
	case tc.gpu != "":
		cfg.GPUFlavor(flavor, tc.gpu)
	case tc.flavors != nil:
		flavor = tc.flavors[0]
		for _, f := range tc.flavors {
			cfg.CPUFlavor(f)
		}
	default:
		cfg.CPUFlavor(flavor)
	}
	if tc.fair {
		cfg.FairSharing()
	}
	cohorts := map[string]bool{}
	for _, c := range tc.cohorts {
		var q []berth.FlavorQuota
		if len(c.quota) > 0 {
			q = append(q, build.CohortQuota(flavor, c.quota...))
		}
		cfg.Cohort(c.name, c.parent, q...)
		cohorts[c.name] = true
	}
	for _, tb := range tc.teams {
		if c := tb.Obj().Cohort; c != "" && !cohorts[c] {
			cfg.Cohort(c, "")
			cohorts[c] = true
		}
		cfg.Team(tb)
	}
	return cfg, flavor
}

// snapshot is the case's nodes, running and incoming workloads; their
// workloads and priority tiers go into cfg.
func (tc upstreamCase) snapshot(cfg *build.ConfigBuilder, flavor string) *build.SnapshotBuilder {
	snap := build.Snapshot()
	if tc.nodes == nil {
		snap.Node(build.Node("n").CPU("10000").Memory("100Ti"))
	} else {
		snap.Node(tc.nodes...)
	}
	prios := map[int]bool{0: true}
	kept := map[int]bool{}
	for _, w := range tc.running {
		prios[w.prio] = true
		kept[w.prio] = kept[w.prio] || w.keep
		b := w.builder()
		cfg.Workload(b)
		r := build.Running(b, orStr(w.flavor, flavor), w.prio).Since(build.T0.Add(-time.Hour + w.at))
		if w.queued != nil {
			r.QueuedSince(build.T0.Add(*w.queued))
		}
		for range max(w.workers, 1) {
			r.On(orStr(w.node, "n"), w.gpuIDs...)
		}
		snap.Running(r)
	}
	for _, w := range tc.incoming {
		prios[w.prio] = true
		cfg.Workload(w.builder())
		snap.Queued(w.team+"/"+w.name, build.T0.Add(w.at))
	}
	for p := range prios {
		cfg.Tier(tierName(p), p)
	}
	for p := range kept {
		cfg.Tier(tierName(p)+"-kept", p)
		cfg.Obj().Policy.Priorities[tierName(p)+"-kept"] = berth.PriorityTier{Value: p, CanPreempt: true}
	}
	return snap
}

// check compares each wanted outcome with the plan's decision.
func (tc upstreamCase) check(t *testing.T, p *berth.Plan) {
	t.Helper()
	for id, want := range tc.want {
		d := decision(t, p, id)
		got := outcome{action: d.Action, pods: want.pods, flavor: want.flavor}
		if want.pods > 0 {
			got.pods = len(d.Placements)
		}
		if want.flavor != "" {
			got.flavor = d.Flavor
		}
		for _, v := range d.Victims {
			got.victims = append(got.victims, string(v.Workload)+" "+string(v.Reason.Code))
		}
		slices.Sort(got.victims)
		slices.Sort(want.victims)
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(outcome{})); diff != "" {
			reason := ""
			if d.Reason != nil {
				reason = d.Reason.Message
			}
			t.Errorf("%s (from %s): %s: -want +got:\n%s(reason: %s)", tc.name, tc.from, id, diff, reason)
		}
	}
}

func runUpstream(t *testing.T, cases []upstreamCase) {
	seen := map[string]bool{}
	for _, tc := range cases {
		if tc.from == "" || tc.name == "" || seen[tc.from+tc.name] {
			t.Fatalf("case %q from %q: every case names its upstream test and case, once", tc.name, tc.from)
		}
		seen[tc.from+tc.name] = true
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), tc.run)
	}
}

func preempts(victims ...string) outcome {
	return outcome{action: berth.ActionPreempt, victims: victims}
}

var (
	admits = outcome{action: berth.ActionAdmit}
	queues = outcome{action: berth.ActionQueue}
)
