package schedule_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// Kueue's resource groups: cases ported from kubernetes-sigs/kueue
// v0.12.10. Kueue's flavors one, two, b_one, b_two, on-demand and spot
// are CPU-only flavors here, and its extended resource example.com/gpu is
// berth's gpu on GPU flavors of model "G" (b_one, b_two, model-a). Nodes
// are one large node with every label and 64 GPUs of model G, so quota
// alone decides, as in Kueue's flavor assigner tests. The flavor assigner
// test asserts the assignment (its representative mode); berth asserts
// the decision that follows from it.

const (
	kueueFlavorAssignerTest = "kubernetes-sigs/kueue v0.12.10 pkg/scheduler/flavorassigner/flavorassigner_test.go TestAssignFlavors"
	kueueSchedulerGroups    = "kubernetes-sigs/kueue v0.12.10 pkg/scheduler/scheduler_test.go TestSchedule"
)

// groupCase is one ported case.
type groupCase struct {
	name, from string
	differs    string
	teams      []*build.TeamBuilder
	cohort     string // every team's cohort, if any
	running    []groupRun
	incoming   *build.WorkloadBuilder
	// want: the action, the flavor (joined, per pod set for roles:
	// "role=flavor ..."), the flavor of each resource, the victims.
	action  berth.Action
	flavor  string
	flavors string // "cpu=two memory=b_one"
	victims string // "team/name Code, ..."
	reason  string // part of the reason, for queue and reject
}

type groupRun struct {
	w      *build.WorkloadBuilder
	flavor string
	prio   int
}

func gpuFlavors() map[string]bool {
	return map[string]bool{"b_one": true, "b_two": true, "model-a": true, "h100": true}
}

func (tc groupCase) run(t *testing.T) {
	cfg := build.Config().DefaultPriority(tierName(0)).Tier(tierName(0), 0).Tier(tierName(-1), -1)
	for _, f := range []string{"one", "two", "on-demand", "spot", "cpu-nodes"} {
		cfg.CPUFlavor(f)
	}
	for f := range gpuFlavors() {
		cfg.GPUFlavor(f, "G")
	}
	if tc.cohort != "" {
		cfg.Cohort(tc.cohort, "")
	}
	for _, tb := range tc.teams {
		if tc.cohort != "" {
			tb.Cohort(tc.cohort)
		}
		cfg.Team(tb)
	}
	snap := build.Snapshot().Node(build.Node("n").CPU("10000").Memory("100Ti").GPUs(64, "G"))
	gpu := 0
	for _, r := range tc.running {
		cfg.Workload(r.w)
		rb := build.Running(r.w, r.flavor, r.prio)
		var ids []int
		for range r.w.Obj().Resources.GPU {
			ids = append(ids, gpu)
			gpu++
		}
		rb.On("n", ids...)
		snap.Running(rb)
	}
	cfg.Workload(tc.incoming)
	id := string(tc.incoming.Obj().ID())
	snap.Queued(id, build.T0)
	p := plan(t, cfg, snap)
	d := decision(t, p, id)
	got := groupCase{action: d.Action, flavor: d.Flavor, flavors: flavorsText(d.Flavors)}
	if len(d.Roles) > 0 {
		var s []string
		for _, r := range d.Roles {
			s = append(s, r.Role+"="+r.Flavor)
		}
		got.flavor = strings.Join(s, " ")
	}
	var vs []string
	for _, v := range d.Victims {
		vs = append(vs, string(v.Workload)+" "+string(v.Reason.Code))
	}
	slices.Sort(vs)
	got.victims = strings.Join(vs, ", ")
	reason := ""
	if d.Reason != nil {
		reason = d.Reason.Message
	}
	if got.action != tc.action || got.flavor != tc.flavor || got.flavors != tc.flavors || got.victims != tc.victims ||
		(tc.reason != "" && !strings.Contains(reason, tc.reason)) {
		t.Errorf("%s (from %s):\ngot  %s on %q (%s), victims [%s], reason %q\nwant %s on %q (%s), victims [%s], reason with %q",
			tc.name, tc.from, got.action, got.flavor, got.flavors, got.victims, reason,
			tc.action, tc.flavor, tc.flavors, tc.victims, tc.reason)
	}
}

func flavorsText(m map[berth.Resource]string) string {
	var s []string
	for _, r := range berth.ResourceNames {
		if f, ok := m[r]; ok {
			s = append(s, fmt.Sprintf("%s=%s", r, f))
		}
	}
	return strings.Join(s, " ")
}

func groupWL(name string, cpu, mem string, gpus int) *build.WorkloadBuilder {
	return build.Workload("cq", name).CPU(cpu).Memory(mem).GPUs(gpus)
}

func TestUpstreamResourceGroups(t *testing.T) {
	in, cpu, mem, gpu := build.In, build.CPU, build.Memory, build.GPU
	lp, any := berth.PreemptLowerPriority, berth.PreemptAny
	cases := []groupCase{{
		name: "multiple resource groups, fits", from: kueueFlavorAssignerTest,
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("2")), in("two", cpu("4"))).
			ResourceGroup(in("b_one", mem("1Gi")), in("b_two", mem("5Gi")))},
		incoming: groupWL("w", "3", "10Mi", 0),
		action:   berth.ActionAdmit, flavor: "two+b_one", flavors: "cpu=two memory=b_one",
	}, {
		name: "multiple resource groups, one could fit with preemption, other doesn't fit", from: kueueFlavorAssignerTest,
		differs: "Kueue leaves it pending; berth rejects what can never fit (10Mi of memory against 1Mi of quota)",
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("3"))).
			ResourceGroup(in("b_one", mem("1Mi")))},
		running:  []groupRun{{groupWL("used", "1", "0", 0), "one", 0}},
		incoming: groupWL("w", "3", "10Mi", 0),
		action:   berth.ActionReject, reason: "asks for 10Mi memory of b_one; team cq can use at most 1Mi",
	}, {
		name: "multiple resource groups with multiple resources, fits", from: kueueFlavorAssignerTest,
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("2"), mem("1Gi")), in("two", cpu("4"), mem("15Mi"))).
			ResourceGroup(in("b_one", gpu("4")), in("b_two", gpu("2")))},
		incoming: groupWL("w", "3", "10Mi", 3),
		action:   berth.ActionAdmit, flavor: "two+b_one", flavors: "gpu=b_one cpu=two memory=two",
	}, {
		// Kueue's case asserts mode Preempt on memory of two (the team's
		// own usage) and gpu of b_one (lent to the secondary queue); here
		// the team preempts its own lower-priority run and reclaims.
		name: "multiple resource groups with multiple resources, fits with different modes", from: kueueFlavorAssignerTest,
		cohort: "test-cohort",
		teams: []*build.TeamBuilder{
			build.Team("cq").WithinTeam(lp).Reclaim(any).
				ResourceGroup(in("one", cpu("2"), mem("1Gi")), in("two", cpu("4"), mem("15Mi"))).
				ResourceGroup(in("b_one", gpu("4"))),
			build.Team("secondary").ResourceGroup(in("b_one", gpu("0"))),
		},
		running: []groupRun{
			{build.Workload("cq", "mem-user").CPU("0").Memory("10Mi").Priority(tierName(-1)), "two", -1},
			{build.Workload("secondary", "gpu-user").CPU("0").Memory("0").GPUs(2), "b_one", 0},
		},
		incoming: groupWL("w", "3", "10Mi", 3),
		action:   berth.ActionPreempt, flavor: "two+b_one", flavors: "gpu=b_one cpu=two memory=two",
		victims: "cq/mem-user PreemptedWithinTeam, secondary/gpu-user PreemptedToReclaim",
	}, {
		name: "multiple resources in a group, doesn't fit", from: kueueFlavorAssignerTest,
		differs: "Kueue leaves it pending; berth rejects what can never fit",
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("2"), mem("1Gi")), in("two", cpu("4"), mem("5Mi")))},
		incoming: groupWL("w", "3", "10Mi", 0),
		action:   berth.ActionReject, reason: "asks for 3 cpu of one; team cq can use at most 2",
	}, {
		name: "multiple specs, fit different flavors", from: kueueFlavorAssignerTest,
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("4")), in("two", cpu("10")))},
		incoming: build.Workload("cq", "w").Roles(
			build.Role("driver", 1).CPU("5").Memory("0"), build.Role("worker", 1).CPU("3").Memory("0")),
		action: berth.ActionAdmit, flavor: "driver=two worker=one",
	}, {
		name: "assign multiple resources and flavors", from: kueueSchedulerGroups,
		cohort: "eng",
		teams: []*build.TeamBuilder{
			build.Team("eng-alpha").
				ResourceGroup(in("on-demand", cpu("50").Borrow("50")), in("spot", cpu("100").Borrow("0"))),
			build.Team("cq").Reclaim(any).WithinTeam(lp).
				ResourceGroup(in("on-demand", cpu("50").Borrow("10")), in("spot", cpu("0").Borrow("100"))).
				ResourceGroup(in("model-a", gpu("20").Borrow("0"))),
		},
		incoming: build.Workload("cq", "new").Roles(
			build.Role("one", 10).CPU("6").Memory("0").GPUs(1), build.Role("two", 40).CPU("1").Memory("0")),
		action: berth.ActionAdmit, flavor: "one=on-demand+model-a two=spot",
	}, {
		// berth's own: preemption is per flavor and resource. Only the
		// team's h100 GPUs are short, so its low-priority CPU-only run on
		// cpu-nodes is no victim though both take the same nodes.
		name: "a run that frees no short flavor and resource is no victim", from: "berth",
		teams: []*build.TeamBuilder{build.Team("cq").WithinTeam(lp).
			ResourceGroup(in("cpu-nodes", cpu("100"), mem("1Ti"))).
			ResourceGroup(in("h100", gpu("8")))},
		running: []groupRun{
			{build.Workload("cq", "cpu-only").CPU("90").Memory("1Gi").Priority(tierName(-1)), "cpu-nodes", -1},
			{build.Workload("cq", "gpu-low").CPU("1").Memory("1Gi").GPUs(8).Priority(tierName(-1)), "cpu-nodes+h100", -1},
		},
		incoming: groupWL("w", "4", "1Gi", 8),
		action:   berth.ActionPreempt, flavor: "cpu-nodes+h100", flavors: "gpu=h100 cpu=cpu-nodes memory=cpu-nodes",
		victims: "cq/gpu-low PreemptedWithinTeam",
	}, {
		name: "cpu quota short while GPUs are free: waits on the cpu group's flavor", from: "berth",
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("cpu-nodes", cpu("8"), mem("1Ti"))).
			ResourceGroup(in("h100", gpu("8")))},
		running:  []groupRun{{build.Workload("cq", "cpu-user").CPU("6").Memory("1Gi").Priority(tierName(0)), "cpu-nodes", 0}},
		incoming: groupWL("w", "4", "1Gi", 2),
		action:   berth.ActionQueue, reason: "insufficient unused cpu-nodes quota in team cq: it asks 4 cpu; the team uses 6 of nominal 8",
	}, {
		name: "a pod that names its CPU flavor takes it, and a GPU flavor of the other group", from: "berth",
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("8")), in("two", cpu("8"))).
			ResourceGroup(in("h100", gpu("8")))},
		incoming: groupWL("w", "4", "0", 2).Flavor("two"),
		action:   berth.ActionAdmit, flavor: "two+h100", flavors: "gpu=h100 cpu=two",
	}, {
		name: "a pod that names a flavor outside the team's groups has no quota", from: "berth",
		teams: []*build.TeamBuilder{build.Team("cq").
			ResourceGroup(in("one", cpu("8"))).
			ResourceGroup(in("h100", gpu("8")))},
		incoming: groupWL("w", "4", "0", 2).Flavor("spot"),
		action:   berth.ActionReject, reason: "team cq has no quota for a flavor of cluster c1",
	}}
	seen := map[string]bool{}
	for _, tc := range cases {
		if tc.from == "" || seen[tc.from+tc.name] {
			t.Fatalf("case %q: every case names its upstream test and case, once", tc.name)
		}
		seen[tc.from+tc.name] = true
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), tc.run)
	}
}
