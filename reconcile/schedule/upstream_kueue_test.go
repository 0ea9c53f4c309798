package schedule_test

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// Cases ported from kubernetes-sigs/kueue at v0.12.10, the release berth's
// admission and preemption follow.

const (
	kueuePreemptionTest = "kubernetes-sigs/kueue v0.12.10 pkg/scheduler/preemption/preemption_test.go"
	kueueSchedulerTest  = "kubernetes-sigs/kueue v0.12.10 pkg/scheduler/scheduler_test.go"
)

// Kueue's reason codes in berth's words.
const (
	inCQ      = " " + string(berth.ReasonPreemptedInTeam)
	reclaim   = " " + string(berth.ReasonPreemptedReclaim)
	whileBorr = " " + string(berth.ReasonPreemptedBorrow)
	fairShr   = " " + string(berth.ReasonPreemptedFair)
)

// kueueDefaultCQs are TestPreemption's defaultClusterQueues (those with a
// cpu quota on flavor "default"; the standalone queue's memory flavors
// alpha and beta are left out: berth gives a workload one flavor for all
// its resources).
func kueueDefaultCQs() []*build.TeamBuilder {
	lp, any, never, newer := berth.PreemptLowerPriority, berth.PreemptAny, berth.PreemptNever, berth.PreemptLowerOrNewerEqualPriority
	cohortQ := []build.ResourceQuota{build.CPU("6").Borrow("6"), build.Memory("3Gi").Borrow("3Gi")}
	bwc := func(t *build.TeamBuilder) *build.TeamBuilder { return t.BorrowWithinCohort(lp, 0) }
	return []*build.TeamBuilder{
		kueueCQ("standalone", "", lp, "", build.CPU("6")),
		kueueCQ("c1", "cohort", lp, lp, cohortQ...),
		kueueCQ("c2", "cohort", never, any, cohortQ...),
		kueueCQ("d1", "cohort-no-limits", lp, lp, build.CPU("6"), build.Memory("3Gi")),
		kueueCQ("d2", "cohort-no-limits", never, any, build.CPU("6"), build.Memory("3Gi")),
		kueueCQ("l1", "legion", lp, lp, build.CPU("6").Borrow("12"), build.Memory("3Gi").Borrow("6Gi")),
		kueueCQ("preventstarvation", "", newer, "", build.CPU("6")),
		bwc(kueueCQ("a-standard", "with-shared-cq", never, lp, build.CPU("1").Borrow("12"))),
		bwc(kueueCQ("b-standard", "with-shared-cq", lp, any, build.CPU("1").Borrow("12"))),
		bwc(kueueCQ("a-best-effort", "with-shared-cq", never, lp, build.CPU("1").Borrow("12"))),
		bwc(kueueCQ("b-best-effort", "with-shared-cq", never, lp, build.CPU("0").Borrow("13"))),
		kueueCQ("shared", "with-shared-cq", "", "", build.CPU("10")),
		kueueCQ("lend1", "cohort-lend", lp, lp, build.CPU("6").Lend("4")),
		kueueCQ("lend2", "cohort-lend", lp, lp, build.CPU("6").Lend("2")),
		kueueCQ("a", "cohort-three", lp, any, build.CPU("2"), build.Memory("2")),
		kueueCQ("b", "cohort-three", "", "", build.CPU("2"), build.Memory("2")),
		kueueCQ("c", "cohort-three", "", "", build.CPU("2"), build.Memory("2")),
	}
}

// kp is a TestPreemption case on the default ClusterQueues.
func kp(name string, running []wl, in wl, want outcome) upstreamCase {
	return upstreamCase{name: name, from: kueuePreemptionTest + " TestPreemption", teams: kueueDefaultCQs(),
		running: running, incoming: []wl{in}, want: map[string]outcome{in.team + "/" + in.name: want}}
}

func TestUpstreamKueuePreemption(t *testing.T) {
	r := func(team, name string, prio int, cpu string) wl {
		return wl{team: team, name: name, prio: prio, cpu: cpu}
	}
	cases := []upstreamCase{
		kp("preempt lowest priority",
			[]wl{r("standalone", "low", -1, "2"), r("standalone", "mid", 0, "2"), r("standalone", "high", 1, "2")},
			r("standalone", "in", 1, "2"), preempts("standalone/low"+inCQ)),
		kp("preempt multiple",
			[]wl{r("standalone", "low", -1, "2"), r("standalone", "mid", 0, "2"), r("standalone", "high", 1, "2")},
			r("standalone", "in", 1, "3"), preempts("standalone/low"+inCQ, "standalone/mid"+inCQ)),
		kp("no preemption for low priority",
			[]wl{r("standalone", "low", -1, "3"), r("standalone", "mid", 0, "3")},
			r("standalone", "in", -1, "1"), queues),
		kp("not enough low priority workloads",
			[]wl{r("standalone", "low", -1, "3"), r("standalone", "mid", 0, "3")},
			r("standalone", "in", 0, "4"), queues),
		kp("some free quota, preempt low priority",
			[]wl{r("standalone", "low", -1, "1"), r("standalone", "mid", 0, "1"), r("standalone", "high", 1, "3")},
			r("standalone", "in", 1, "2"), preempts("standalone/low"+inCQ)),
		kp("minimal set excludes low priority",
			[]wl{r("standalone", "low", -1, "1"), r("standalone", "mid", 0, "2"), r("standalone", "high", 1, "3")},
			r("standalone", "in", 1, "2"), preempts("standalone/mid"+inCQ)),
		kp("reclaim quota from borrower",
			[]wl{r("c1", "c1-low", -1, "3"), r("c2", "c2-mid", 0, "3"), r("c2", "c2-high", 1, "6")},
			r("c1", "in", 1, "3"), preempts("c2/c2-mid"+reclaim)),
		kp("reclaim quota if workload requests 0 resources for a resource at nominal quota",
			[]wl{{team: "c1", name: "c1-low", prio: -1, cpu: "3", mem: "3Gi"}, r("c2", "c2-mid", 0, "3"), r("c2", "c2-high", 1, "6")},
			r("c1", "in", 1, "3"), preempts("c2/c2-mid"+reclaim)),
		kp("not enough workloads borrowing",
			[]wl{r("c1", "c1-high", 1, "4"), r("c2", "c2-low-1", -1, "4"), r("c2", "c2-low-2", -1, "4")},
			r("c1", "in", 1, "4"), queues),
		kp("preempting locally and borrowing other resources in cohort, without cohort candidates",
			[]wl{r("c1", "c1-low", -1, "4"), r("c2", "c2-low-1", -1, "4"), r("c2", "c2-high-2", 1, "4")},
			wl{team: "c1", name: "in", prio: 1, cpu: "4", mem: "5Gi"}, preempts("c1/c1-low"+inCQ)),
		kp("preempting locally and borrowing same resource in cohort",
			[]wl{r("c1", "c1-med", 0, "4"), r("c1", "c1-low", -1, "4"), r("c2", "c2-low-1", -1, "4")},
			r("c1", "in", 1, "4"), preempts("c1/c1-low"+inCQ)),
		kp("preempting locally and borrowing same resource in cohort; no borrowing limit in the cohort",
			[]wl{r("d1", "d1-med", 0, "4"), r("d1", "d1-low", -1, "4"), r("d2", "d2-low-1", -1, "4")},
			r("d1", "in", 1, "4"), preempts("d1/d1-low"+inCQ)),
		kp("preempting locally and borrowing other resources in cohort, with cohort candidates",
			[]wl{r("c1", "c1-med", 0, "4"), r("c2", "c2-low-1", -1, "5"), r("c2", "c2-low-2", -1, "1"), r("c2", "c2-low-3", -1, "1")},
			wl{team: "c1", name: "in", prio: 1, cpu: "2", mem: "5Gi"}, preempts("c1/c1-med"+inCQ)),
		kp("preempting locally and not borrowing same resource in 1-queue cohort",
			[]wl{r("l1", "l1-med", 0, "4"), r("l1", "l1-low", -1, "2")},
			r("l1", "in", 1, "4"), preempts("l1/l1-med"+inCQ)),
		kp("do not reclaim borrowed quota from same priority for withinCohort=ReclaimFromLowerPriority",
			[]wl{r("c1", "c1", 0, "2"), r("c2", "c2-1", 0, "4"), r("c2", "c2-2", 0, "4")},
			r("c1", "in", 0, "4"), queues),
		kp("reclaim borrowed quota from same priority for withinCohort=ReclaimFromAny",
			[]wl{r("c1", "c1-1", 0, "4"), r("c1", "c1-2", 1, "4"), r("c2", "c2", 0, "2")},
			r("c2", "in", 0, "4"), preempts("c1/c1-1"+reclaim)),
		kp("preempt from all ClusterQueues in cohort",
			[]wl{r("c1", "c1-low", -1, "3"), r("c1", "c1-mid", 0, "2"), r("c2", "c2-low", -1, "3"), r("c2", "c2-mid", 0, "4")},
			r("c1", "in", 0, "4"), preempts("c1/c1-low"+inCQ, "c2/c2-low"+reclaim)),
		kp("can't preempt workloads in ClusterQueue for withinClusterQueue=Never",
			[]wl{r("c2", "c2-low", -1, "3")},
			r("c2", "in", 1, "4"), admits),
		kp("use BorrowWithinCohort; allow preempting a lower-priority workload from another ClusterQueue while borrowing",
			[]wl{r("a-best-effort", "a-best-effort-low", -1, "10"), r("b-best-effort", "b-best-effort-low", -1, "1")},
			r("a-standard", "in", 0, "10"), preempts("a-best-effort/a-best-effort-low"+whileBorr)),
		kp("use BorrowWithinCohort; don't allow preempting a lower-priority workload with priority above MaxPriorityThreshold, if borrowing is required even after the preemption",
			[]wl{r("b-standard", "b-standard", 1, "10")},
			r("a-standard", "in", 2, "10"), queues),
		kp("use BorrowWithinCohort; allow preempting a lower-priority workload with priority above MaxPriorityThreshold, if borrowing is not required after the preemption",
			[]wl{r("b-standard", "b-standard", 1, "13")},
			r("a-standard", "in", 2, "1"), preempts("b-standard/b-standard"+reclaim)),
		kp("use BorrowWithinCohort; don't allow for preemption of lower-priority workload from the same ClusterQueue",
			[]wl{r("a-standard", "a-standard", 1, "13")},
			r("a-standard", "in", 2, "1"), queues),
		kp("use BorrowWithinCohort; only preempt from CQ if no workloads below threshold and already above nominal",
			[]wl{r("a-standard", "a-standard-1", 1, "10"), r("a-standard", "a-standard-2", 1, "1"),
				r("b-standard", "b-standard-1", 1, "1"), r("b-standard", "b-standard-2", 2, "1")},
			r("b-standard", "in", 3, "1"), preempts("b-standard/b-standard-1"+inCQ)),
		kp("use BorrowWithinCohort; preempt from CQ and from other CQs with workloads below threshold",
			[]wl{r("b-standard", "b-standard-high", 2, "10"), r("b-standard", "b-standard-mid", 1, "1"),
				r("a-best-effort", "a-best-effort-low", -1, "1"), r("a-best-effort", "a-best-effort-lower", -2, "1")},
			r("b-standard", "in", 2, "2"), preempts("b-standard/b-standard-mid"+inCQ, "a-best-effort/a-best-effort-lower"+whileBorr)),
		kp("reclaim quota from lender",
			[]wl{r("lend1", "lend1-low", -1, "3"), r("lend2", "lend2-mid", 0, "3"), r("lend2", "lend2-high", 1, "4")},
			r("lend1", "in", 1, "3"), preempts("lend2/lend2-mid"+reclaim)),
		kp("preempt from all ClusterQueues in cohort-lend",
			[]wl{r("lend1", "lend1-low", -1, "3"), r("lend1", "lend1-mid", 0, "2"), r("lend2", "lend2-low", -1, "3"), r("lend2", "lend2-mid", 0, "4")},
			r("lend1", "in", 0, "4"), preempts("lend1/lend1-low"+inCQ, "lend2/lend2-low"+reclaim)),
		func() upstreamCase {
			c := kp("cannot preempt from other ClusterQueues if exceeds requestable quota including lending limit",
				[]wl{r("lend2", "lend2-low", -1, "10")}, r("lend1", "in", 0, "9"), outcome{action: berth.ActionReject})
			c.differs = "berth rejects what can never fit (9 cpu > lend1's 2 kept + 6 its cohort holds) instead of leaving it pending"
			return c
		}(),
		kp("preemptions from cq when target queue is exhausted for the single requested resource",
			[]wl{r("a", "a1", -2, "1"), r("a", "a2", -2, "1"), r("a", "a3", -1, "1"), r("b", "b1", 0, "1"), r("b", "b2", 0, "1"), r("b", "b3", 0, "1")},
			r("a", "in", 0, "2"), preempts("a/a1"+inCQ, "a/a2"+inCQ)),
		kp("preemptions from cq when target queue is exhausted for two requested resources",
			[]wl{{team: "a", name: "a1", prio: -2, cpu: "1", mem: "1"}, {team: "a", name: "a2", prio: -2, cpu: "1", mem: "1"},
				{team: "a", name: "a3", prio: -1, cpu: "1", mem: "1"}, {team: "b", name: "b1", cpu: "1", mem: "1"},
				{team: "b", name: "b2", cpu: "1", mem: "1"}, {team: "b", name: "b3", cpu: "1", mem: "1"}},
			wl{team: "a", name: "in", cpu: "2", mem: "2"}, preempts("a/a1"+inCQ, "a/a2"+inCQ)),
		kp("preemptions from cq when target queue is exhausted for one requested resource, but not the other",
			[]wl{r("a", "a1", -2, "1"), r("a", "a2", -2, "1"), r("a", "a3", -1, "1"), r("b", "b1", 0, "1"), r("b", "b2", 0, "1"), r("b", "b3", 0, "1")},
			wl{team: "a", name: "in", cpu: "2", mem: "2"}, preempts("a/a1"+inCQ, "a/a2"+inCQ)),
		kp("allow preemption from other cluster queues if target cq is not exhausted for the requested resource",
			[]wl{r("a", "a1", -1, "1"), r("b", "b1", 0, "1"), r("b", "b2", 0, "1"), r("b", "b3", 0, "1"), r("b", "b4", 0, "1"), r("b", "b5", -1, "1")},
			r("a", "in", 0, "2"), preempts("a/a1"+inCQ, "b/b5"+reclaim)),
		{
			name: "long range preemption", from: kueuePreemptionTest + " TestPreemption",
			cohorts: []cohortSpec{{name: "root"}, {name: "cohort-left", parent: "root"}, {name: "cohort-right", parent: "root"}},
			teams: []*build.TeamBuilder{
				kueueCQ("cq-left", "cohort-left", "", berth.PreemptAny, build.CPU("10")),
				kueueCQ("cq-right", "cohort-right", "", "", build.CPU("0")),
			},
			running:  []wl{r("cq-right", "to-be-preempted", 0, "5")},
			incoming: []wl{r("cq-left", "incoming", 0, "8")},
			want:     map[string]outcome{"cq-left/incoming": preempts("cq-right/to-be-preempted" + reclaim)},
		},
		{
			name: "preempt newer workloads with the same priority", from: kueuePreemptionTest + " TestPreemption",
			teams: kueueDefaultCQs(),
			running: []wl{{team: "preventstarvation", name: "wl1", prio: 2, cpu: "2"},
				{team: "preventstarvation", name: "wl2", prio: 1, cpu: "2", queued: ptr.To(time.Duration(0))},
				{team: "preventstarvation", name: "wl3", prio: 1, cpu: "2", queued: ptr.To(time.Duration(0))}},
			incoming: []wl{{team: "preventstarvation", name: "in", prio: 1, cpu: "2", at: -15 * time.Second}},
			want:     map[string]outcome{"preventstarvation/in": preempts("preventstarvation/wl2" + inCQ)},
		},
	}
	runUpstream(t, cases)
}

// kh is a TestHierarchicalPreemptions case: nested cohorts, teams with no
// quota of their own unless given.
func kh(name string, cohorts []cohortSpec, teams []*build.TeamBuilder, running []wl, in wl, want outcome) upstreamCase {
	return upstreamCase{name: name, from: kueuePreemptionTest + " TestHierarchicalPreemptions", cohorts: cohorts, teams: teams,
		running: running, incoming: []wl{in}, want: map[string]outcome{in.team + "/" + in.name: want}}
}

func TestUpstreamKueueHierarchicalPreemption(t *testing.T) {
	lp, any := berth.PreemptLowerPriority, berth.PreemptAny
	r := func(team, name string, prio int, cpu string) wl {
		return wl{team: team, name: name, prio: prio, cpu: cpu}
	}
	q := func(name, cohort string, quota ...build.ResourceQuota) *build.TeamBuilder {
		if len(quota) == 0 {
			quota = []build.ResourceQuota{build.CPU("0")}
		}
		return kueueCQ(name, cohort, lp, any, quota...)
	}
	bwc := func(t *build.TeamBuilder) *build.TeamBuilder { return t.BorrowWithinCohort(lp, 0) }
	rc := func(cpu string) []cohortSpec {
		return []cohortSpec{{name: "r"}, {name: "c", parent: "r", quota: []build.ResourceQuota{build.CPU(cpu)}}}
	}
	cases := []upstreamCase{
		kh("preempt with hierarchical advantage", rc("2"),
			[]*build.TeamBuilder{q("q", "c"), q("q-borrowing", "r")},
			[]wl{r("q-borrowing", "admitted2", 0, "2")}, r("q", "incoming", 0, "2"),
			preempts("q-borrowing/admitted2"+reclaim)),
		kh("avoid queues within nominal quota", rc("2"),
			[]*build.TeamBuilder{q("q-nominal", "r", build.CPU("2")), q("q", "c"), q("q-borrowing", "r")},
			[]wl{r("q-nominal", "admitted1", -10, "2"), r("q-borrowing", "admitted2", 0, "2")}, r("q", "incoming", 0, "2"),
			preempts("q-borrowing/admitted2"+reclaim)),
		kh("preempt multiple with hierarchical advantage", rc("2"),
			[]*build.TeamBuilder{q("q", "c"), q("q-borrowing", "r")},
			[]wl{r("q-borrowing", "admitted1", 1, "1"), r("q-borrowing", "admitted2", 2, "1")}, r("q", "incoming", 0, "2"),
			preempts("q-borrowing/admitted1"+reclaim, "q-borrowing/admitted2"+reclaim)),
		kh("preempt in cohort and own CQ", rc("3"),
			[]*build.TeamBuilder{bwc(q("q", "c")), q("q-same-cohort", "c")},
			[]wl{r("q-same-cohort", "admitted-not-preemptible", 1, "1"), r("q-same-cohort", "admitted-preemptible", 0, "1"),
				r("q", "admitted-own-queue", -1, "1")},
			r("q", "incoming", 1, "2"),
			preempts("q-same-cohort/admitted-preemptible"+whileBorr, "q/admitted-own-queue"+inCQ)),
		kh("prefer to preempt hierarchical candidate", rc("2"),
			[]*build.TeamBuilder{q("q", "c"), q("q-borrowing", "r")},
			[]wl{r("q-borrowing", "admitted-borrowing", 1, "1"), r("q", "admitted-same-queue", -2, "1")}, r("q", "incoming", 0, "1"),
			preempts("q-borrowing/admitted-borrowing"+reclaim)),
		kh("forced to preempt priority candidate", rc("2"),
			[]*build.TeamBuilder{bwc(q("q", "c")), q("q-nominal", "r", build.CPU("2")), q("q-same-cohort", "c")},
			[]wl{r("q-nominal", "admitted-nominal", -10, "2"), r("q-same-cohort", "admitted-same-cohort", -1, "2")},
			r("q", "incoming", 0, "2"),
			preempts("q-same-cohort/admitted-same-cohort"+whileBorr)),
		kh("incoming workload fits in CQ nominal quota", rc("2"),
			[]*build.TeamBuilder{q("q", "c", build.CPU("4")), q("q-borrowing", "r"), q("q-same-cohort", "c")},
			[]wl{r("q-borrowing", "admitted-borrowing", 10, "3"), r("q-same-cohort", "admitted-same-cohort", 10, "3")},
			r("q", "incoming", 0, "4"),
			preempts("q-borrowing/admitted-borrowing"+reclaim, "q-same-cohort/admitted-same-cohort"+reclaim)),
		kh("preempt hierarchical and priority candidates",
			[]cohortSpec{{name: "r", quota: []build.ResourceQuota{build.CPU("1")}}, {name: "c", parent: "r", quota: []build.ResourceQuota{build.CPU("4")}}},
			[]*build.TeamBuilder{bwc(q("q", "c")).Reclaim(lp), q("q-borrowing", "r"), q("q-same-cohort", "c")},
			[]wl{r("q-borrowing", "admitted-borrowing", -1, "2"), r("q-same-cohort", "admitted-same-cohort-preemptible", -1, "1"),
				r("q-borrowing", "admitted-borrowing-not-preemptible", 1, "2")},
			r("q", "incoming", 0, "3"),
			preempts("q-borrowing/admitted-borrowing"+reclaim, "q-same-cohort/admitted-same-cohort-preemptible"+whileBorr)),
		kh("preempt hierarchical candidates and inside CQ",
			[]cohortSpec{{name: "r", quota: []build.ResourceQuota{build.CPU("1")}}, {name: "c", parent: "r", quota: []build.ResourceQuota{build.CPU("4")}}},
			[]*build.TeamBuilder{bwc(q("q", "c")).Reclaim(lp), q("q-borrowing", "r"), q("q-same-cohort", "c")},
			[]wl{r("q-borrowing", "admitted-borrowing", -1, "2"), r("q", "admitted-same-queue-preemptible", -1, "1"),
				r("q-borrowing", "admitted-borrowing-not-preemptible", 1, "2")},
			r("q", "incoming", 0, "3"),
			preempts("q-borrowing/admitted-borrowing"+reclaim, "q/admitted-same-queue-preemptible"+inCQ)),
		kh("reclaim nominal quota from lowest priority workload, excluding non-borrowing", rc("3"),
			[]*build.TeamBuilder{q("q", "c"), q("q-borrowing", "r"), q("q-nominal", "r", build.CPU("2"))},
			[]wl{r("q-borrowing", "admitted-borrowing-prio-8", 8, "1"), r("q-borrowing", "admitted-borrowing-prio-9", 9, "1"),
				r("q-borrowing", "admitted-borrowing-prio-10", 9, "1"), r("q-nominal", "admitted-nominal", -2, "2")},
			r("q", "incoming", 0, "1"),
			preempts("q-borrowing/admitted-borrowing-prio-8"+reclaim)),
		kh("infeasible preemption all available workloads in pruned subtrees",
			[]cohortSpec{{name: "r"}, {name: "c", parent: "r", quota: []build.ResourceQuota{build.CPU("2")}},
				{name: "c-other", parent: "r", quota: []build.ResourceQuota{build.CPU("2")}}},
			[]*build.TeamBuilder{q("q-other", "c-other"), q("q", "c"), q("q-same-cohort", "c")},
			[]wl{r("q-other", "admitted-other-1", -10, "1"), r("q-other", "admitted-other-2", -10, "1"),
				r("q-same-cohort", "admitted-same-cohort", 0, "2")},
			r("q", "incoming", 0, "2"), queues),
		kh("respect lending limits", rc("2"),
			[]*build.TeamBuilder{q("q", "c", build.CPU("3").Lend("2")), q("q-borrowing", "r")},
			[]wl{r("q-borrowing", "admitted-borrowing", 0, "4")}, r("q", "incoming", -2, "5"),
			preempts("q-borrowing/admitted-borrowing"+reclaim)),
	}
	runUpstream(t, cases)
}

// ks is a TestSchedule case.
func ks(name string, c upstreamCase) upstreamCase {
	c.name, c.from = name, kueueSchedulerTest+" TestSchedule"
	return c
}

func TestUpstreamKueueSchedule(t *testing.T) {
	lp, any := berth.PreemptLowerPriority, berth.PreemptAny
	pods := func(team, name string, prio, n, min int, cpu string) wl {
		return wl{team: team, name: name, prio: prio, workers: n, minWorkers: min, cpu: cpu}
	}
	// TestSchedule's eng cohort: eng-alpha and eng-beta over flavors
	// on-demand, spot and model-a (Kueue's example.com/gpu is cpu here).
	engAlpha := func() *build.TeamBuilder {
		return build.Team("eng-alpha").Cohort("eng").WithinTeam(berth.PreemptNever).Reclaim(berth.PreemptNever).
			Quota("on-demand", build.CPU("50").Borrow("50")).Quota("spot", build.CPU("100").Borrow("0"))
	}
	engBeta := func() *build.TeamBuilder {
		return build.Team("eng-beta").Cohort("eng").WithinTeam(lp).Reclaim(any).
			Quota("on-demand", build.CPU("50").Borrow("10")).Quota("spot", build.CPU("0").Borrow("100")).
			Quota("model-a", build.CPU("20").Borrow("0"))
	}
	engFlavors := []string{"on-demand", "spot", "model-a"}
	cases := []upstreamCase{
		ks("use second flavor when the first has no preemption candidates; WhenCanPreempt: Preempt", upstreamCase{
			flavors: engFlavors,
			teams: []*build.TeamBuilder{build.Team("other-alpha").WithinTeam(lp).Reclaim(berth.PreemptNever).
				FlavorFungibility(berth.FungibilityBorrow, berth.FungibilityPreempt).
				Quota("on-demand", build.CPU("50").Borrow("50")).Quota("spot", build.CPU("100").Borrow("0"))},
			running:  []wl{{team: "other-alpha", name: "admitted", cpu: "50"}},
			incoming: []wl{{team: "other-alpha", name: "new", cpu: "20"}},
			want:     map[string]outcome{"other-alpha/new": {action: berth.ActionAdmit, flavor: "spot"}},
		}),
		ks("not enough resources to borrow, fallback to next flavor; WhenCanPreempt: TryNextFlavor", upstreamCase{
			flavors:  engFlavors,
			teams:    []*build.TeamBuilder{engAlpha(), engBeta()},
			running:  []wl{{team: "eng-beta", name: "existing", cpu: "1", workers: 45}},
			incoming: []wl{pods("eng-alpha", "new", 0, 60, 0, "1")},
			want:     map[string]outcome{"eng-alpha/new": {action: berth.ActionAdmit, flavor: "spot"}},
		}),
		ks("partial admission single variable pod set", upstreamCase{
			teams:    []*build.TeamBuilder{kueueCQ("sales", "", "", "", build.CPU("50").Borrow("0"))},
			incoming: []wl{pods("sales", "new", 0, 50, 20, "2")},
			want:     map[string]outcome{"sales/new": {action: berth.ActionAdmit, pods: 25}},
		}),
		ks("partial admission single variable pod set, preempt first", upstreamCase{
			flavors:  []string{"model-a"},
			teams:    []*build.TeamBuilder{engAlpha(), engBeta()},
			running:  []wl{{team: "eng-beta", name: "old", prio: -4, cpu: "1", workers: 10, flavor: "model-a"}},
			incoming: []wl{pods("eng-beta", "new", 4, 20, 10, "1")},
			want:     map[string]outcome{"eng-beta/new": {action: berth.ActionPreempt, pods: 20, victims: []string{"eng-beta/old" + inCQ}}},
		}),
		ks("partial admission single variable pod set, preempt with partial admission", upstreamCase{
			flavors:  []string{"model-a"},
			teams:    []*build.TeamBuilder{engAlpha(), engBeta()},
			running:  []wl{{team: "eng-beta", name: "old", prio: -4, cpu: "1", workers: 10, flavor: "model-a"}},
			incoming: []wl{pods("eng-beta", "new", 4, 30, 10, "1")},
			want:     map[string]outcome{"eng-beta/new": {action: berth.ActionPreempt, pods: 20, victims: []string{"eng-beta/old" + inCQ}}},
		}),
		ks("in a hierarchical cohort, workload borrowing less is scheduled first", upstreamCase{
			cohorts: []cohortSpec{{name: "root"}, {name: "guaranteed", parent: "root", quota: []build.ResourceQuota{build.CPU("4")}}},
			teams: []*build.TeamBuilder{kueueCQ("guaranteed", "guaranteed", "", "", build.CPU("0")),
				kueueCQ("best-effort", "root", "", "", build.CPU("0"))},
			incoming: []wl{{team: "guaranteed", name: "guaranteed", prio: 0, cpu: "4"}, {team: "best-effort", name: "best-effort", prio: 3, cpu: "4"}},
			want:     map[string]outcome{"guaranteed/guaranteed": admits, "best-effort/best-effort": queues},
		}),
		ks("admit in same cohort with no borrowing", upstreamCase{
			flavors:  engFlavors,
			teams:    []*build.TeamBuilder{engAlpha(), engBeta()},
			incoming: []wl{pods("eng-alpha", "new", 0, 40, 0, "1"), pods("eng-beta", "new", 0, 40, 0, "1")},
			want: map[string]outcome{"eng-alpha/new": {action: berth.ActionAdmit, flavor: "on-demand"},
				"eng-beta/new": {action: berth.ActionAdmit, flavor: "on-demand"}},
		}),
		ks("cannot borrow if cohort was assigned and would result in overadmission", upstreamCase{
			flavors:  engFlavors,
			teams:    []*build.TeamBuilder{engAlpha(), engBeta()},
			incoming: []wl{pods("eng-alpha", "new", 0, 45, 0, "1"), {team: "eng-beta", name: "new", cpu: "1", workers: 56, at: time.Second}},
			differs: "Kueue admits one borrowing workload per cohort and cycle and leaves eng-beta for the next; " +
				"berth plans the whole queue in one cycle, so eng-beta takes the flavor Kueue would give it next (spot)",
			want: map[string]outcome{"eng-alpha/new": {action: berth.ActionAdmit, flavor: "on-demand"},
				"eng-beta/new": {action: berth.ActionAdmit, flavor: "spot"}},
		}),
	}
	runUpstream(t, cases)
}
