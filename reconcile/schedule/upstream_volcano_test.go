package schedule_test

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// Cases ported from volcano-sh/volcano at v1.15.1. Volcano's queues are
// berth teams; a queue's capability is its team's nominal quota with no
// cohort; queues sharing a cluster by weight (the proportion plugin) are
// teams of one cohort whose nominal quota is their deserved share
// (capacity x weight / total weight) and who may borrow the rest. Each of
// a pod group's pods is a workload of its own unless the case is about a
// gang, where the pod group is one training workload of that many workers
// and minWorkers its minMember. Volcano's preemptable=false is a priority
// tier that is not preemptible. Nodes are the upstream's.

const (
	volcanoAllocate = "volcano-sh/volcano v1.15.1 pkg/scheduler/actions/allocate/allocate_test.go TestAllocate"
	volcanoPreempt  = "volcano-sh/volcano v1.15.1 pkg/scheduler/actions/preempt/preempt_test.go TestPreempt"
	volcanoReclaim  = "volcano-sh/volcano v1.15.1 pkg/scheduler/actions/reclaim/reclaim_test.go TestReclaim"
)

// volcano priority classes.
const (
	vLow  = 10
	vMid  = 500
	vHigh = 100000
)

// vQueue is a queue with a capability (empty: none) and no cohort, whose
// jobs preempt lower priorities.
func vQueue(name, cpu string) *build.TeamBuilder {
	t := build.Team(name).WithinTeam(berth.PreemptLowerPriority).Reclaim(berth.PreemptNever)
	if cpu == "" {
		return t.Quota("default")
	}
	return t.Quota("default", build.CPU(cpu))
}

// vShare is a queue of the proportion plugin: its deserved share as
// nominal quota in cohort "root", reclaimable by any queue below its
// share.
func vShare(name string, deserved ...build.ResourceQuota) *build.TeamBuilder {
	return build.Team(name).Cohort("root").WithinTeam(berth.PreemptLowerPriority).Reclaim(berth.PreemptAny).Quota("default", deserved...)
}

func node(name, cpu, mem string) *build.NodeBuilder { return build.Node(name).CPU(cpu).Memory(mem) }

func TestUpstreamVolcano(t *testing.T) {
	pod := func(team, name string, prio int, cpu, mem string) wl {
		return wl{team: team, name: name, prio: prio, cpu: cpu, mem: mem}
	}
	kept := func(w wl) wl { w.keep = true; return w }
	cases := []upstreamCase{
		{
			name: "one Job with two Pods on one node", from: volcanoAllocate,
			nodes: []*build.NodeBuilder{node("n1", "2", "4Gi")}, teams: []*build.TeamBuilder{vQueue("c1", "")},
			incoming: []wl{pod("c1", "p1", 0, "1", "1G"), pod("c1", "p2", 0, "1", "1G")},
			want:     map[string]outcome{"c1/p1": admits, "c1/p2": admits},
		},
		{
			name: "two Jobs on one node", from: volcanoAllocate,
			nodes: []*build.NodeBuilder{node("n1", "2", "4G")},
			teams: []*build.TeamBuilder{vShare("c1", build.CPU("1")), vShare("c2", build.CPU("1"))},
			incoming: []wl{pod("c1", "pg1-p-1", 0, "1", "1G"), pod("c1", "pg1-p-2", 0, "1", "1G"),
				pod("c2", "pg2-p-1", 0, "1", "1G"), pod("c2", "pg2-p-2", 0, "1", "1G")},
			// Each queue's deserved share first: one pod of each job.
			want: map[string]outcome{"c1/pg1-p-1": admits, "c2/pg2-p-1": admits, "c1/pg1-p-2": queues, "c2/pg2-p-2": queues},
		},
		{
			name: "high priority queue should not block others", from: volcanoAllocate,
			differs: "berth rejects c1/p1 (3 cpu on a 2-cpu node can never fit) instead of leaving it pending",
			nodes:   []*build.NodeBuilder{node("n1", "2", "4G")}, teams: []*build.TeamBuilder{vQueue("c1", ""), vQueue("c2", "")},
			incoming: []wl{pod("c1", "p1", 0, "3", "1G"), pod("c2", "p2", 0, "1", "1G")},
			want:     map[string]outcome{"c1/p1": {action: berth.ActionReject}, "c2/p2": admits},
		},
		{
			name: "do not preempt if there are enough idle resources", from: volcanoPreempt,
			nodes: []*build.NodeBuilder{node("n1", "10", "10G")}, teams: []*build.TeamBuilder{vQueue("q1", "")},
			running:  []wl{{team: "q1", name: "preemptee1", cpu: "1", mem: "1G", node: "n1"}, {team: "q1", name: "preemptee2", cpu: "1", mem: "1G", node: "n1"}},
			incoming: []wl{pod("q1", "preemptor1", 0, "1", "1G")},
			want:     map[string]outcome{"q1/preemptor1": admits},
		},
		{
			name: "preempt one task of different job to fit both jobs on one node", from: volcanoPreempt,
			nodes: []*build.NodeBuilder{node("n1", "2", "2G")}, teams: []*build.TeamBuilder{vQueue("q1", "")},
			running: []wl{{team: "q1", name: "preemptee1", prio: vLow, cpu: "1", mem: "1G", node: "n1"},
				kept(wl{team: "q1", name: "preemptee2", prio: vLow, cpu: "1", mem: "1G", node: "n1"})},
			// pg2: two pods, minMember 1.
			incoming: []wl{{team: "q1", name: "pg2", prio: vHigh, cpu: "1", mem: "1G", workers: 2, minWorkers: 1}},
			want:     map[string]outcome{"q1/pg2": {action: berth.ActionPreempt, pods: 1, victims: []string{"q1/preemptee1" + inCQ}}},
		},
		{
			name: "preempt enough tasks to fit large task of different job", from: volcanoPreempt,
			nodes: []*build.NodeBuilder{node("n1", "6", "6G")}, teams: []*build.TeamBuilder{vQueue("q1", "")},
			running: []wl{{team: "q1", name: "preemptee1", prio: vLow, cpu: "1", mem: "1G", node: "n1"},
				{team: "q1", name: "preemptee2", prio: vLow, cpu: "1", mem: "1G", node: "n1"},
				kept(wl{team: "q1", name: "preemptee3", prio: vLow, cpu: "1", mem: "1G", node: "n1"})},
			incoming: []wl{pod("q1", "preemptor1", vHigh, "5", "5G")},
			want:     map[string]outcome{"q1/preemptor1": preempts("q1/preemptee1"+inCQ, "q1/preemptee2"+inCQ)},
		},
		{
			name: "preempt low priority job in same queue", from: volcanoPreempt,
			nodes: []*build.NodeBuilder{node("n1", "12", "12G")}, teams: []*build.TeamBuilder{vQueue("q1", "4")},
			running:  []wl{{team: "q1", name: "preemptee1", prio: vLow, cpu: "3", mem: "3G", node: "n1"}},
			incoming: []wl{pod("q1", "preemptor1", vHigh, "3", "3G")},
			want:     map[string]outcome{"q1/preemptor1": preempts("q1/preemptee1" + inCQ)},
		},
		{
			name: "preempt low priority job in same queue: allocatable and has enough resource, don't preempt", from: volcanoPreempt,
			nodes: []*build.NodeBuilder{node("n1", "12", "12G")}, teams: []*build.TeamBuilder{vQueue("q1", "6")},
			running:  []wl{{team: "q1", name: "preemptee1", prio: vLow, cpu: "3", mem: "3G", node: "n1"}},
			incoming: []wl{pod("q1", "preemptor1", vHigh, "3", "3G")},
			want:     map[string]outcome{"q1/preemptor1": admits},
		},
		{
			name: "Two Queue with one Queue overusing resource, should reclaim", from: volcanoReclaim,
			nodes: []*build.NodeBuilder{node("n1", "3", "3Gi")},
			teams: []*build.TeamBuilder{vShare("q1", build.CPU("1500m")), vShare("q2", build.CPU("1500m"))},
			running: []wl{kept(wl{team: "q1", name: "preemptee1", prio: vLow, cpu: "1", mem: "1G", node: "n1"}),
				{team: "q1", name: "preemptee2", prio: vLow, cpu: "1", mem: "1G", node: "n1"},
				kept(wl{team: "q1", name: "preemptee3", prio: vLow, cpu: "1", mem: "1G", node: "n1"})},
			incoming: []wl{pod("q2", "preemptor1", vHigh, "1", "1G")},
			want:     map[string]outcome{"q2/preemptor1": preempts("q1/preemptee2" + reclaim)},
		},
		{
			name: "sort reclaimees when reclaiming from overusing queue", from: volcanoReclaim,
			nodes: []*build.NodeBuilder{node("n1", "4", "4Gi")},
			// Deserved: 4 cpu / 3 queues, rounded up.
			teams: []*build.TeamBuilder{vShare("q1", build.CPU("1334m")), vShare("q2", build.CPU("1334m")), vShare("q3", build.CPU("1334m"))},
			running: []wl{{team: "q1", name: "preemptee1-1", prio: vMid, cpu: "1", mem: "1G", node: "n1"},
				{team: "q1", name: "preemptee1-2", prio: vMid, cpu: "1", mem: "1G", node: "n1"},
				{team: "q2", name: "preemptee2-1", prio: vLow, cpu: "1", mem: "1G", node: "n1"},
				kept(wl{team: "q2", name: "preemptee2-2", prio: vLow, cpu: "1", mem: "1G", node: "n1"})},
			incoming: []wl{pod("q3", "preemptor1", vHigh, "1", "1G")},
			want:     map[string]outcome{"q3/preemptor1": preempts("q2/preemptee2-1" + reclaim)},
		},
		{
			name: "Node available resources should be included in reclaimed resources", from: volcanoReclaim,
			nodes: []*build.NodeBuilder{node("n1", "10", "2Gi")},
			// Deserved memory by weight 1:2:3 of 2Gi.
			teams: []*build.TeamBuilder{vShare("q1", build.Memory("341Mi")), vShare("q2", build.Memory("683Mi")), vShare("q3", build.Memory("1024Mi"))},
			running: []wl{{team: "q1", name: "preemptee1-1", prio: vMid, cpu: "1", mem: "1G", node: "n1"},
				{team: "q2", name: "preemptee2-1", prio: vMid, cpu: "1", mem: "1G", node: "n1"}},
			incoming: []wl{pod("q3", "preemptor1", vMid, "2", "1G")},
			// One victim is enough: the node's free memory counts.
			want: map[string]outcome{"q3/preemptor1": preempts("q1/preemptee1-1" + reclaim)},
		},
	}
	runUpstream(t, cases)
}
