package schedule

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	"github.com/berth-gpu/berth"
)

// Workloads of several roles (a launcher and workers, a driver and
// executors): each role is a pod set with its own shape, count, minimum
// and node selector, and the gang covers every role. As Kueue v0.12.10's
// flavor assigner does for a workload of several pod sets
// (flavorassigner.go assignFlavors, podset_reducer.go), the roles are
// assigned flavors in order, each seeing the quota the earlier ones take;
// the workload's mode is the worst of its roles'; partial admission
// shrinks every role that has a minimum, in proportion to how far it may
// shrink. berth places the pods as well: every pod of every role, all or
// nothing, each role seeing the nodes and the victims of those before it.

// roleRequests splits a request of a workload with roles into one request
// per role, in role order (by name).
func (st *state) roleRequests(x *req) {
	w := x.Workload
	for _, ps := range w.PodSets() {
		rw := *w // a copy: the request's workload is not changed
		rw.Resources, rw.Roles = ps.Resources, nil
		// A role's pods are "pods" in messages, whatever the kind.
		rw.Kind = berth.KindBatch
		v := &req{
			Request: &Request{Workload: &rw, RunID: x.RunID, Since: x.Since},
			id:      x.id, team: x.team, prio: x.prio, tier: x.tier, canPreempt: x.canPreempt,
			shape: shapeOf(ps.Resources), pods: ps.Count, minPods: ps.Min, perPod: demandOf(ps.Resources),
			flavors: candidateFlavors(st.cfg, x.team, ps.Resources, ps.NodeSelector),
			role:    ps.Role, sel: ps.NodeSelector, selKey: selectorKey(ps.NodeSelector), parent: x,
		}
		x.sets = append(x.sets, v)
		rp := berth.RolePlacement{Role: ps.Role, Resources: ps.Resources, PodsAsked: ps.Count}
		if ps.Min < ps.Count {
			rp.MinPods = ps.Min
		}
		x.decision.Roles = append(x.decision.Roles, rp)
	}
	x.shape, x.perPod = x.sets[0].shape, x.sets[0].perPod
	if x.minPods < x.pods {
		x.decision.PodsAsked, x.decision.MinPods = x.pods, x.minPods
	}
}

// parts lists the requests r is decided through: its roles', or itself.
func (r *req) parts() []*req {
	if r.sets != nil {
		return r.sets
	}
	return []*req{r}
}

// selectorKey writes a node selector as a key: "a=1,b=2", sorted.
func selectorKey(sel map[string]string) string {
	if len(sel) == 0 {
		return ""
	}
	kv := make([]string, 0, len(sel))
	for k, v := range sel {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// roleOption is a choice of flavor for every role of a request.
type roleOption struct {
	sets []option // per role, in role order
	// mode is the worst of the roles' (Kueue's RepresentativeMode).
	mode    mode
	borrows bool
	// withinNominal: the team is within its nominal quota of every
	// flavor the roles take once the run and its victims are counted.
	withinNominal bool
}

func (o roleOption) starts() bool { return len(o.sets) > 0 && o.mode >= modePreempt }

// assignRoles chooses a flavor for counts[i] pods of each role of r, in
// role order, each role seeing the quota and nodes the earlier ones take
// and the victims they stop; it leaves the state as it was. It also
// returns the first reason a role does not fit now, and that role.
func (st *state) assignRoles(r *req, counts []int, withinNominal bool) (ro roleOption, block *berth.Reason, blockFlavor string, blockSet *req) {
	// What did not fit is remembered for the state as it stands; the
	// roles change it while they are assigned, so they remember apart.
	failed, capReasons, noPreempt := st.failed, st.capReasons, st.noPreempt
	st.failed, st.capReasons, st.noPreempt = map[failKey]bool{}, nil, map[preemptKey]bool{}
	var out []*run
	var held []option
	defer func() {
		for i := len(held) - 1; i >= 0; i-- {
			st.c.release(r.sets[i].shape, held[i].placements)
			st.quotas.Remove(r.team, held[i].flavor, held[i].demand)
		}
		for i := len(out) - 1; i >= 0; i-- {
			out[i].gone = false
			st.putBack(out[i])
		}
		st.failed, st.capReasons, st.noPreempt = failed, capReasons, noPreempt
	}()
	ro.mode = modeFit
	for i, v := range r.sets {
		o, b, bf := st.assign(v, counts[i], withinNominal)
		if block == nil && b != nil {
			block, blockFlavor, blockSet = b, bf, v
		}
		ro.borrows = ro.borrows || o.borrows
		if !o.starts() {
			st.drop(o)
			ro.mode, ro.sets = min(ro.mode, o.mode), nil
			return
		}
		if o.mode != modeFit {
			// Its victims stop (marked gone, so a later role does not
			// count them again), then its pods take their place.
			for _, c := range o.victims {
				if !c.run.gone {
					st.takeOut(c.run)
					c.run.gone = true
					out = append(out, c.run)
				}
			}
			ps, ok := st.c.placeRun(st.flavorFor(v, o.flavor), v.shape, o.pods)
			if !ok {
				ro.mode, ro.sets = modeNoFit, nil
				return
			}
			o.placements = ps
		}
		st.quotas.Add(r.team, o.flavor, o.demand)
		held = append(held, o)
		ro.sets = append(ro.sets, o)
		ro.mode = min(ro.mode, o.mode)
	}
	if len(out) > 1 {
		st.minimizeRoleVictims(r, &ro, held, &out)
	}
	ro.withinNominal = true
	for _, o := range ro.sets {
		for _, res := range berth.ResourceNames {
			if st.quotas.Borrowed(r.team, o.flavor, res) > 0 {
				ro.withinNominal = false
			}
		}
	}
	return ro, block, blockFlavor, blockSet
}

// minimizeRoleVictims makes the victims minimal for the whole workload:
// each role chose its own, so a victim taken for an earlier role may not
// be needed once a later role's are gone. As Kueue's preemptor does for
// one pod set, every victim is put back in turn, the last taken out first,
// and stays back where every role still fits (quota, without borrowing
// where the team did not borrow, and nodes). held are the roles' options
// as charged now (all victims out); out the victims, which it narrows, with
// each role's.
func (st *state) minimizeRoleVictims(r *req, ro *roleOption, held []option, out *[]*run) {
	borrowing := false
	for _, o := range held {
		for _, res := range berth.ResourceNames {
			borrowing = borrowing || st.quotas.Borrowed(r.team, o.flavor, res) > 0
		}
	}
	// The roles are judged afresh each time: release what they hold.
	for i := len(held) - 1; i >= 0; i-- {
		st.c.release(r.sets[i].shape, held[i].placements)
		st.quotas.Remove(r.team, held[i].flavor, held[i].demand)
	}
	back := map[*run]bool{}
	victims := *out
	for i := len(victims) - 1; i >= 0; i-- {
		v := victims[i]
		v.gone = false
		st.putBack(v)
		if st.rolesFit(r, held, borrowing) {
			back[v] = true
			continue
		}
		st.takeOut(v)
		v.gone = true
	}
	// Hold the roles again, where they now land.
	for i := range held {
		v := r.sets[i]
		ps, _ := st.c.placeRun(st.flavorFor(v, held[i].flavor), v.shape, held[i].pods)
		held[i].placements = ps
		st.quotas.Add(r.team, held[i].flavor, held[i].demand)
	}
	if len(back) == 0 {
		return
	}
	kept := victims[:0]
	for _, v := range victims {
		if !back[v] {
			kept = append(kept, v)
		}
	}
	*out = kept
	for i := range ro.sets {
		var vs []candidate
		for _, c := range ro.sets[i].victims {
			if !back[c.run] {
				vs = append(vs, c)
			}
		}
		ro.sets[i].victims = vs
	}
}

// rolesFit reports whether every role fits now with its option's flavor
// and pods (the team's quota, without borrowing unless borrow, and the
// nodes), each seeing the earlier ones; it leaves the state as it was.
func (st *state) rolesFit(r *req, sets []option, borrow bool) bool {
	type taken struct {
		i  int
		ps []berth.Placement
	}
	var done []taken
	ok := true
	for i, o := range sets {
		if fits, _ := st.quotas.Fits(r.team, o.flavor, o.demand); !fits ||
			(!borrow && st.quotas.WouldBorrow(r.team, o.flavor, o.demand)) {
			ok = false
			break
		}
		v := r.sets[i]
		ps, fit := st.c.placeRun(st.flavorFor(v, o.flavor), v.shape, o.pods)
		if !fit {
			ok = false
			break
		}
		st.quotas.Add(r.team, o.flavor, o.demand)
		done = append(done, taken{i, ps})
	}
	for j := len(done) - 1; j >= 0; j-- {
		o := sets[done[j].i]
		st.c.release(r.sets[done[j].i].shape, done[j].ps)
		st.quotas.Remove(r.team, o.flavor, o.demand)
	}
	return ok
}

// decideRoles is decideWithinNominal (firstPass) and decide for a request
// of a workload with roles, and reports whether it decided r.
func (st *state) decideRoles(r *req, firstPass bool) bool {
	d := &r.decision
	if !r.neverChecked {
		if reason := st.neverRoles(r); reason != nil {
			d.Action = berth.ActionReject
			d.Reason = reason
			return true
		}
		r.neverChecked = true
	}
	full := make([]int, len(r.sets))
	for i, v := range r.sets {
		full[i] = v.pods
	}
	ro, block, blockFlavor, blockSet := st.assignRoles(r, full, firstPass)
	if firstPass {
		if ((ro.mode == modeFit && !ro.borrows) || (ro.starts() && ro.mode != modeFit && ro.withinNominal)) && st.applyRoles(r, ro) {
			return true
		}
		st.reserveRolesHead(r, blockSet, block, blockFlavor)
		return false
	}
	if ro.starts() && st.applyRoles(r, ro) {
		return true
	}
	if r.minPods < r.pods && st.admitRolesPartial(r) {
		return true
	}
	d.Action = berth.ActionQueue
	d.Reason = roleReason(blockSet, block)
	st.reserveRolesHead(r, blockSet, block, blockFlavor)
	return true
}

// reserveRolesHead is reserveHead for a workload with roles: blocked by
// the nodes of one role's flavor, it reserves room for every role (each on
// the flavor it waits for: the blocked role's, the first of each other's),
// on every flavor none has reserved yet, so nothing later delays the gang.
func (st *state) reserveRolesHead(r, blockSet *req, block *berth.Reason, f string) {
	if blockSet == nil || block == nil || (block.Code != berth.ReasonCapacity && block.Code != berth.ReasonGang) || !st.backfillOn() {
		return
	}
	if _, ok := st.heads[f]; ok {
		return
	}
	parts := make([]resPart, 0, len(r.sets))
	for _, v := range r.sets {
		pf := f
		if v != blockSet {
			pf = firstFlavor(st, v)
		}
		if pf == "" {
			return
		}
		parts = append(parts, resPart{v, pf})
	}
	res := st.reserveParts(r, blockSet, f, parts)
	for _, p := range parts {
		if _, ok := st.heads[p.flavor]; !ok {
			st.heads[p.flavor] = res
		}
	}
}

// roleReason names the role a reason is about.
func roleReason(v *req, reason *berth.Reason) *berth.Reason {
	if v == nil || reason == nil {
		return reason
	}
	return &berth.Reason{Code: reason.Code, Message: "role " + v.role + ": " + reason.Message}
}

// neverRoles is never for a workload with roles: a role that can never
// start keeps the whole gang from starting.
func (st *state) neverRoles(r *req) *berth.Reason {
	for _, v := range r.sets {
		if reason := st.never(v); reason != nil {
			return roleReason(v, reason)
		}
	}
	return nil
}

// admitRolesPartial is admitPartial for a workload with roles: Kueue
// v0.12.10's PodSetReducer searches a budget between nothing and the sum
// of what every role may give up; budget i takes delta x i / total pods
// from each role (delta: its count less its minimum), and the largest
// counts that start are admitted.
func (st *state) admitRolesPartial(r *req) bool {
	n := len(r.sets)
	full, delta := make([]int, n), make([]int, n)
	total := 0
	for i, v := range r.sets {
		full[i], delta[i] = v.pods, v.pods-v.minPods
		total += delta[i]
	}
	if total == 0 {
		return false
	}
	counts := func(b int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = full[i] - delta[i]*b/total
		}
		return out
	}
	good := -1
	idx := sort.Search(total+1, func(b int) bool {
		ro, _, _, _ := st.assignRoles(r, counts(b), false)
		if ro.starts() {
			good = b
			return true
		}
		return false
	})
	if good < 0 || idx != good {
		return false
	}
	ro, _, _, _ := st.assignRoles(r, counts(good), false)
	return ro.starts() && st.applyRoles(r, ro)
}

// applyRoles carries out a choice for every role: every role's victims
// stop, then each role's pods are placed, in role order; then the run
// starts as one, holding every role's pods. It reports whether it
// did (never leaving victims stopped for nothing).
func (st *state) applyRoles(r *req, ro roleOption) bool {
	// Every victim stops first: they were chosen for the whole workload,
	// so an earlier role may take the place of a later role's victim.
	out := st.stopVictims(ro)
	placed, backfilled, ok := st.placeRoles(r, ro)
	if !ok {
		for j := len(out) - 1; j >= 0; j-- {
			st.putBack(out[j].run)
		}
		return false
	}
	d := &r.decision
	x, borrowing, gpus, pods := st.chargeRoles(r, ro, placed)
	st.runs = append(st.runs, x)
	st.ending = nil
	st.capReasons = nil
	d.Flavor = ro.sets[0].flavor
	d.Borrowed = borrowing
	d.Backfilled = backfilled && len(out) == 0
	d.GPUs = float64(gpus) / wholeGPU
	if d.PodsAsked > 0 {
		d.Pods = pods
	}
	d.Action = berth.ActionAdmit
	if len(out) == 0 {
		return true
	}
	d.Action = berth.ActionPreempt
	st.recordVictims(r, out)
	return true
}

// stopVictims takes out every role's victims, each once.
func (st *state) stopVictims(ro roleOption) []candidate {
	var out []candidate
	seen := map[*run]bool{}
	for _, o := range ro.sets {
		for _, c := range o.victims {
			if !seen[c.run] {
				seen[c.run] = true
				st.takeOut(c.run)
				out = append(out, c)
			}
		}
	}
	return out
}

// placeRoles places every role on its nodes; when one does not fit, the
// roles placed are released and ok is false.
func (st *state) placeRoles(r *req, ro roleOption) (placed [][]berth.Placement, backfilled, ok bool) {
	placed = make([][]berth.Placement, 0, len(ro.sets))
	for i, o := range ro.sets {
		v := r.sets[i]
		ps, ok := st.c.placeRun(st.flavorFor(v, o.flavor), v.shape, o.pods)
		if !ok {
			for j := len(placed) - 1; j >= 0; j-- {
				st.c.release(r.sets[j].shape, placed[j])
			}
			return nil, false, false
		}
		placed = append(placed, ps)
		backfilled = backfilled || o.backfilled
	}
	return placed, backfilled, true
}

// chargeRoles charges each placed role to the team's quota and writes
// its flavor and placements into the decision; x is the run the roles
// make, its first role the run's own part.
func (st *state) chargeRoles(r *req, ro roleOption, placed [][]berth.Placement) (x *run, borrowing bool, gpus int64, pods int) {
	x = &run{id: r.id, runID: r.RunID, team: r.team, kind: r.Workload.Kind, prio: r.prio, tier: r.tier,
		since: st.now, queued: r.Since, maxDuration: r.Workload.MaxDuration.D()}
	d := &r.decision
	d.Placements = nil
	for i, o := range ro.sets {
		v := r.sets[i]
		demand := v.perPod.Scale(int64(len(placed[i])))
		borrowing = borrowing || st.quotas.WouldBorrow(r.team, o.flavor, demand)
		st.quotas.Add(r.team, o.flavor, demand)
		if i == 0 {
			x.role, x.flavor, x.shape, x.res, x.placements, x.demand = v.role, o.flavor, v.shape, v.Workload.Resources, placed[i], demand
		} else {
			x.more = append(x.more, runPart{role: v.role, flavor: o.flavor, shape: v.shape, res: v.Workload.Resources,
				placements: placed[i], demand: demand})
		}
		d.Roles[i].Flavor, d.Roles[i].Placements = o.flavor, placed[i]
		d.Placements = append(d.Placements, placed[i]...)
		gpus += demand[0]
		pods += len(placed[i])
	}
	return x, borrowing, gpus, pods
}

// recordVictims marks the victims gone and lists them in r's decision,
// sorted by workload and run.
func (st *state) recordVictims(r *req, out []candidate) {
	d := &r.decision
	slices.SortFunc(out, func(a, b candidate) int {
		return cmp.Or(
			cmp.Compare(a.run.id, b.run.id),
			cmp.Compare(a.run.runID, b.run.runID),
		)
	})
	for _, c := range out {
		c.run.gone = true
		d.Victims = append(d.Victims, berth.Victim{
			Workload: c.run.id, RunID: c.run.runID, Team: c.run.team, Priority: c.run.prio, PriorityTier: c.run.tier,
			Reason: berth.Reason{Code: c.variant.code(), Message: st.victimMessage(r, c.run.flavor, c)},
		})
	}
	st.resetFailed()
	st.noPreempt = map[preemptKey]bool{}
}
