package schedule

import (
	"fmt"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// decideWithinNominal decides r if it can start within its team's nominal
// quota, by admission, or by preemption after which the team is within its
// nominal quota (so preempting inside the team and reclaiming lent quota
// may go together), or if it can never start; otherwise it leaves r for
// decide, in a second pass. Runs that need no borrowing go first (as in
// Kueue): a run admitted by borrowing would otherwise take capacity a
// lender's run within its nominal needs, and be preempted for it at the
// next cycle, and come back, and so on.
func (st *state) decideWithinNominal(r *req) bool {
	if r.sets != nil {
		return st.decideRoles(r, true)
	}
	d := &r.decision
	if reason := st.never(r); reason != nil {
		d.Action = berth.ActionReject
		d.Reason = reason
		return true
	}
	r.neverChecked = true
	o, block, blockFlavor := st.assign(r, r.pods, true)
	if (o.mode == modeFit && !o.borrows) || (o.starts() && o.mode != modeFit && o.withinNominal) {
		if st.apply(r, o) {
			return true
		}
	}
	st.drop(o)
	// Blocked by the nodes within its nominal quota: it is the first in
	// line for the flavor, and reserves what it will get (EASY backfill)
	// for the rest of both passes.
	st.reserveHead(r, block, blockFlavor)
	return false
}

// decide sets r's decision: reject, admit, preempt or queue.
func (st *state) decide(r *req) {
	if r.sets != nil {
		st.decideRoles(r, false)
		return
	}
	d := &r.decision

	// a. Never: the spec must change.
	if !r.neverChecked {
		if reason := st.never(r); reason != nil {
			d.Action = berth.ActionReject
			d.Reason = reason
			return
		}
	}

	// b. The whole run, on the flavor Kueue's flavor assigner picks:
	// admitted, or admitted by preempting.
	o, block, blockFlavor := st.assign(r, r.pods, false)
	if o.starts() && st.apply(r, o) {
		return
	}
	st.drop(o)

	// c. Partial admission: the most pods between its minimum and all
	// that fit, preemption included.
	if r.minPods < r.pods && st.admitPartial(r) {
		return
	}

	// d. Queue, and reserve capacity if it is the first in line for the
	// flavor's nodes.
	d.Action = berth.ActionQueue
	d.Reason = block
	st.reserveHead(r, block, blockFlavor)
}

// flavorFor is flavor f's nodes as r may use them: all of them, or those
// its role's node selector picks, remembered for the cycle's state.
func (st *state) flavorFor(r *req, f string) *flavorInfo {
	fi := st.c.flavors[f]
	if r.selKey == "" || fi == nil {
		return fi
	}
	key := f + "\x00" + r.selKey
	if x, ok := st.c.narrowed[key]; ok {
		return x
	}
	x := &flavorInfo{flavor: fi.flavor, sel: r.selKey}
	for _, i := range fi.nodes {
		if selects(r.sel, st.c.nodes[i].labels) {
			x.nodes = append(x.nodes, i)
		}
	}
	if st.c.narrowed == nil {
		st.c.narrowed = map[string]*flavorInfo{}
	}
	st.c.narrowed[key] = x
	return x
}

// selects reports whether a node's labels carry every label of sel.
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// reserveHead makes r the first in line on the flavor whose nodes block
// it, if there is none yet.
func (st *state) reserveHead(r *req, block *berth.Reason, f string) {
	if block != nil && (block.Code == berth.ReasonCapacity || block.Code == berth.ReasonGang) {
		if _, ok := st.heads[f]; !ok && st.backfillOn() {
			st.heads[f] = st.reserve(r, f)
		}
	}
}

func (st *state) backfillOn() bool { return st.cfg.Policy.Backfill && !st.opts.NoBackfill }

// admit charges an admitted run to the quota and records it as running.
func (st *state) admit(r *req, f string, ps []berth.Placement, demand policy.Demand) {
	borrowing := st.quotas.WouldBorrow(r.team, f, demand)
	st.quotas.Add(r.team, f, demand)
	st.ending = nil
	st.capReasons = nil // what is free changed
	st.runs = append(st.runs, &run{
		id: r.id, runID: r.RunID, team: r.team, kind: r.Workload.Kind, prio: r.prio, tier: r.tier,
		flavor: f, since: st.now, queued: r.Since, shape: r.shape, placements: ps, demand: demand,
		maxDuration: r.Workload.MaxDuration.D(),
	})
	d := &r.decision
	d.Flavor = f
	d.Flavors = st.flavorsOf(r.team, f, demand)
	d.Placements = ps
	d.Borrowed = borrowing
	d.GPUs = float64(demand[0]) / wholeGPU
	if d.PodsAsked > 0 {
		d.Pods = len(ps)
	}
}

// flavorsOf is, for a name joining one flavor per resource group, the
// flavor of each resource the demand asks (nil for a plain flavor).
func (st *state) flavorsOf(team, f string, demand policy.Demand) map[berth.Resource]string {
	if !strings.Contains(f, berth.FlavorSeparator) {
		return nil
	}
	out := map[berth.Resource]string{}
	for i, res := range berth.ResourceNames {
		if demand[i] > 0 {
			if g := st.quotas.FlavorOf(team, f, res); g != "" {
				out[res] = g
			}
		}
	}
	return out
}

// never returns why r can never start as written, or nil.
func (st *state) never(r *req) *berth.Reason {
	var flavors []string
	for _, f := range r.flavors {
		if _, ok := st.c.flavors[f]; ok {
			flavors = append(flavors, f)
		}
	}
	if len(flavors) == 0 {
		return st.noQuotaReason(r)
	}
	var reasons []*berth.Reason
	for _, f := range flavors {
		reason := st.neverOn(r, f)
		if reason == nil {
			return nil
		}
		reasons = append(reasons, reason)
	}
	if len(reasons) == 1 {
		return reasons[0]
	}
	if allCode(reasons, berth.ReasonExceedsQuota) {
		// Each says what the team can use of one flavor: the first, and
		// which others fall short too (said once, not per flavor).
		return &berth.Reason{Code: berth.ReasonExceedsQuota,
			Message: reasons[0].Message + "; nor does any other flavor it may take (" + strings.Join(flavors[1:], ", ") + ")"}
	}
	msgs := make([]string, len(reasons))
	for i, x := range reasons {
		msgs[i] = x.Message
	}
	return &berth.Reason{Code: reasons[0].Code, Message: strings.Join(msgs, "; ")}
}

func allCode(reasons []*berth.Reason, code berth.ReasonCode) bool {
	for _, r := range reasons {
		if r.Code != code {
			return false
		}
	}
	return true
}

func (st *state) neverOn(r *req, f string) *berth.Reason {
	fi := st.flavorFor(r, f)
	demand := r.demand(r.minPods)
	for i, res := range berth.ResourceNames {
		if demand[i] == 0 {
			continue
		}
		most := st.quotas.Most(r.team, f, res)
		if most != policy.Unlimited && demand[i] > most {
			return &berth.Reason{Code: berth.ReasonExceedsQuota, Message: st.exceedsQuotaMessage(r, f, res, demand[i], most)}
		}
	}
	if len(fi.nodes) == 0 {
		return &berth.Reason{Code: berth.ReasonNoMatchingNodes,
			Message: fmt.Sprintf("no node of cluster %s is of flavor %s (%s)", st.c.name, f, describeFlavorNodes(fi.flavor))}
	}
	capacity := st.idleCapacity(fi, r.shape)
	if capacity == 0 {
		return &berth.Reason{Code: berth.ReasonPodTooLarge,
			Message: fmt.Sprintf("one %s asks for %s; no %s node is that large (the largest has %s)",
				r.Workload.Kind.Pods(1), describeShape(r.shape), f, largestNode(st.c, fi))}
	}
	if capacity < r.minPods {
		return &berth.Reason{Code: berth.ReasonExceedsCapacity,
			Message: fmt.Sprintf("%d %s of %s need more than all %s nodes hold even when idle (room for %d)",
				r.minPods, r.Workload.Kind.Pods(r.minPods), describeShape(r.shape), f, capacity)}
	}
	return nil
}

// idleCapacity is how many pods of shape s the flavor's nodes hold when
// idle, memoised: it does not change within a cycle.
func (st *state) idleCapacity(fi *flavorInfo, s shape) int {
	key := failKey{flavor: fi.flavor.Name, sel: fi.sel, shape: s}
	if n, ok := st.idle[key]; ok {
		return n
	}
	n := 0
	for _, i := range fi.nodes {
		n += podsFitEmpty(st.c.nodes[i], s)
	}
	st.idle[key] = n
	return n
}

// podsFitEmpty is how many pods of shape s an idle x holds.
func podsFitEmpty(x *node, s shape) int {
	y := *x
	y.cpuFree, y.memFree = x.cpuCap, x.memCap
	y.gpuFree = make([]int32, len(x.gpuFree))
	for g, f := range x.gpuFree {
		if f == migMode {
			y.gpuFree[g] = migMode
		} else {
			y.gpuFree[g] = wholeGPU
		}
	}
	y.mig = make([]migSlot, len(x.mig))
	for i, m := range x.mig {
		y.mig[i] = migSlot{gpu: m.gpu, profile: m.profile}
	}
	y.recount()
	return podsFit(&y, s)
}

// resetFailed forgets which shapes did not fit (capacity was freed).
func (st *state) resetFailed() {
	st.failed = map[failKey]bool{}
	st.capReasons = nil
}

// cachedCapacityReason is capacityReason, computed once per shape and kind
// while the shape keeps failing: a cycle with thousands of blocked
// requests of a few shapes would otherwise describe each one anew.
func (st *state) cachedCapacityReason(r *req, fi *flavorInfo, n int, key failKey) *berth.Reason {
	k := capKey{key, r.Workload.Kind}
	if reason, ok := st.capReasons[k]; ok {
		return reason
	}
	reason := st.capacityReason(r, fi, n)
	if st.capReasons == nil {
		st.capReasons = map[capKey]*berth.Reason{}
	}
	st.capReasons[k] = reason
	return reason
}

type capKey struct {
	failKey
	kind berth.Kind
}
