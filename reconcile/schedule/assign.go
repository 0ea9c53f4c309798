package schedule

import (
	"sort"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// This file is Kueue's flavor assigner and partial admission, as of Kueue
// v0.12.10 (pkg/scheduler/flavorassigner/flavorassigner.go,
// podset_reducer.go and getInitialAssignments in pkg/scheduler/scheduler.go),
// with one addition: a flavor whose quota fits but whose nodes do not is
// treated as Kueue treats a topology that does not fit, as one that needs
// preemption.

// mode is how a flavor can take a request, worst first (Kueue's
// granularMode): a better mode wins when the team tries every flavor.
type mode int

const (
	modeNoFit mode = iota
	// modeNoCandidates: preemption could make room, but no victim was
	// found.
	modeNoCandidates
	// modePreempt: it fits after preempting, some of its own team's runs
	// among the victims.
	modePreempt
	// modeReclaim: it fits after reclaiming from other teams only.
	modeReclaim
	// modeFit: it fits now.
	modeFit
)

// option is one flavor's answer for a request of some pods.
type option struct {
	flavor string
	shape  shape
	pods   int
	demand policy.Demand
	mode   mode
	// borrows: the team would borrow to take it, as the quota stands
	// before any preemption (Kueue's needsBorrowing).
	borrows bool
	// reason is why it does not fit now; for a quota that is short, sf
	// says what, and the reason is written only where it is shown.
	reason *berth.Reason
	sf     *policy.Shortfall
	// placements (modeFit) are charged to the nodes until the option is
	// applied or dropped.
	placements []berth.Placement
	backfilled bool
	// victims (modePreempt, modeReclaim), and whether the team is within
	// its nominal quota once they are gone and the request runs.
	victims       []candidate
	withinNominal bool
}

// starts reports whether the option starts the run now.
func (o option) starts() bool { return o.mode >= modePreempt }

// assign chooses the flavor for n pods of r as Kueue's flavor assigner
// does: the team's flavors in order; a flavor where it fits without
// borrowing is taken; one where it fits by borrowing is taken unless the
// team's whenCanBorrow is TryNextFlavor; one where it must preempt is taken
// only with whenCanPreempt Preempt; otherwise the best of the flavors
// tried (fit, then reclaim, then preempt), the first of equals. It also
// returns the first flavor's reason for not fitting now.
//
// withinNominal is the first pass, which decides only what starts within
// the team's nominal quota: a flavor whose quota fits only by borrowing
// ends it (the flavor the assigner takes would borrow) or, where the team
// tries the next flavor first, is passed over, without placing the pods.
func (st *state) assign(r *req, n int, withinNominal bool) (best option, block *berth.Reason, blockFlavor string) {
	fung := st.cfg.Teams[r.team].FlavorFungibility
	have := false
	for _, f := range r.flavors {
		if _, ok := st.c.flavors[f]; !ok {
			continue
		}
		if withinNominal {
			demand := r.demand(n)
			if ok, _ := st.quotas.Fits(r.team, f, demand); ok && st.quotas.WouldBorrow(r.team, f, demand) {
				if fung.Borrows() {
					if have {
						st.drop(best)
					}
					return option{flavor: f, shape: r.shape, pods: n, borrows: true}, block, blockFlavor
				}
				continue
			}
		}
		o := st.evalFlavor(r, f, n)
		if blockFlavor == "" && (o.reason != nil || o.sf != nil) {
			block, blockFlavor = o.reason, f
			if o.sf != nil && !withinNominal {
				// The first pass shows no reason: what it leaves, the
				// second decides again.
				block = st.quotaReason(r, f, *o.sf)
			}
		}
		if !tryNextFlavor(o, fung) {
			if have {
				st.drop(best)
			}
			return o, block, blockFlavor
		}
		if !have || o.mode > best.mode {
			if have {
				st.drop(best)
			}
			best, have = o, true
		} else {
			st.drop(o)
		}
	}
	return best, block, blockFlavor
}

// tryNextFlavor is Kueue's shouldTryNextFlavor.
func tryNextFlavor(o option, fung berth.FlavorFungibility) bool {
	switch o.mode {
	case modePreempt, modeReclaim:
		return !fung.Preempts() || (o.borrows && !fung.Borrows())
	case modeFit:
		return o.borrows && !fung.Borrows()
	}
	return true
}

// drop releases what an option not taken holds.
func (st *state) drop(o option) {
	if o.placements != nil {
		st.c.release(o.shape, o.placements)
	}
}

// evalFlavor is what flavor f offers n pods of r now (Kueue's
// fitsResourceQuota, with the nodes checked as well).
func (st *state) evalFlavor(r *req, f string, n int) option {
	fi := st.flavorFor(r, f)
	demand := r.demand(n)
	o := option{flavor: f, shape: r.shape, pods: n, demand: demand}
	// Kueue's needsBorrowing: a borrowing level above 0.
	o.borrows = st.quotas.InCohort(r.team) && st.quotas.WouldBorrow(r.team, f, demand)
	short := st.quotas.Short(r.team, f, demand)
	var need [policy.NumResources]bool // resources that need preemption
	if short != need {
		_, mayReclaim := st.quotas.BorrowLevel(r.team, f, demand)
		_, sf := st.quotas.Fits(r.team, f, demand)
		o.sf = &sf
		need = short
		// Kueue preempts for a workload that would borrow only where the
		// demand alone is within the team's nominal quota, where a cohort
		// below the root could hold it, or where the team may preempt
		// while borrowing.
		for res, x := range need {
			if x && !st.quotas.WithinNominalAlone(r.team, f, res, demand) && !mayReclaim[res] && !st.preemptsWhileBorrowing(r.team) {
				return o
			}
		}
	} else {
		key := failKey{flavor: f, sel: r.selKey, shape: r.shape, pods: n}
		if !st.failed[key] {
			if ps, ok := st.c.placeRun(fi, r.shape, n); ok {
				if res := st.heads[f]; res != nil && res.owner != r.top() {
					if !st.backfillOK(r, f, ps, demand, res) {
						// Reserved for the first in line: wait, do not
						// preempt around it.
						st.c.release(r.shape, ps)
						o.reason = &berth.Reason{Code: berth.ReasonBehindHead, Message: res.message()}
						return o
					}
					o.backfilled = true
				}
				o.mode, o.placements = modeFit, ps
				return o
			}
			st.failed[key] = true
		}
		o.reason = st.cachedCapacityReason(r, fi, n, key)
		for res := range need {
			need[res] = demand[res] > 0
		}
	}
	if !r.canPreempt {
		return o
	}
	o.mode = modeNoCandidates
	victims, within, ok := st.tryTargets(r, f, n, demand, need)
	if !ok {
		return o
	}
	o.victims, o.withinNominal = victims, within
	o.mode = modeReclaim
	for _, v := range victims {
		if v.run.team == r.team {
			o.mode = modePreempt
		}
	}
	return o
}

// preemptsWhileBorrowing is Kueue's canPreemptWhileBorrowing.
func (st *state) preemptsWhileBorrowing(team string) bool {
	pol := st.cfg.Teams[team].Preemption
	return pol.BorrowWithinCohort.Policy == berth.PreemptLowerPriority ||
		(st.cfg.Policy.FairSharing && pol.ReclaimWithinCohort != berth.PreemptNever)
}

// apply carries out an option that starts the run, and reports whether it
// did.
func (st *state) apply(r *req, o option) bool {
	switch o.mode {
	case modeFit:
		st.admit(r, o.flavor, o.placements, o.demand)
		r.decision.Action = berth.ActionAdmit
		r.decision.Backfilled = o.backfilled
		return true
	case modePreempt, modeReclaim:
		return st.preempt(r, o)
	}
	return false
}

// admitPartial admits r with fewer pods than it asks, at least its
// minimum: the largest count that fits, found by binary search between the
// full count and the minimum as Kueue's PodSetReducer does (it assumes
// that a count that fits means every smaller one fits too).
func (st *state) admitPartial(r *req) bool {
	delta := r.pods - r.minPods
	good := -1
	idx := sort.Search(delta+1, func(i int) bool {
		o, _, _ := st.assign(r, r.pods-i, false)
		st.drop(o)
		if o.starts() {
			good = i
			return true
		}
		return false
	})
	if good < 0 || idx != good {
		return false
	}
	o, _, _ := st.assign(r, r.pods-good, false)
	if !o.starts() {
		st.drop(o)
		return false
	}
	return st.apply(r, o)
}

// borrowLevel is how far up the cohort tree r would borrow, for the order
// of the second pass: on the first flavor where its quota fits now, or on
// its first flavor (where no cohort holds it, the root's height).
func (st *state) borrowLevel(r *req) int {
	if r.sets != nil {
		// A workload with roles borrows as far up as its farthest role.
		level := 0
		for _, v := range r.sets {
			level = max(level, st.borrowLevel(v))
		}
		return level
	}
	demand := r.demand(r.pods)
	if !st.quotas.InCohort(r.team) {
		return 0
	}
	first := ""
	for _, f := range r.flavors {
		if _, ok := st.c.flavors[f]; !ok {
			continue
		}
		if first == "" {
			first = f
		}
		if ok, _ := st.quotas.Fits(r.team, f, demand); ok {
			if !st.quotas.WouldBorrow(r.team, f, demand) {
				return 0
			}
			level, _ := st.quotas.BorrowLevel(r.team, f, demand)
			return level
		}
	}
	if first == "" {
		return 0
	}
	level, _ := st.quotas.BorrowLevel(r.team, first, demand)
	return level
}
