package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// Preemption follows Kueue v0.12.10's classical preemptor
// (pkg/scheduler/preemption/preemption.go, classicalPreemptions, and
// pkg/scheduler/preemption/classical): candidates in three groups, each in
// Kueue's CandidatesOrdering (lower priority first, then the most recently
// started first), other teams' before the preemptor's own team's; one or
// two attempts, with and without borrowing, in Kueue's order; in each, the
// candidates taken out in order until the request fits, then every one not
// needed put back, the last taken out kept.

// variant is why a run may be preempted (Kueue's preemptionVariant).
type variant int

const (
	// inTeam: a run of the preemptor's own team its withinTeam policy
	// lets it preempt.
	inTeam variant = iota + 1
	// hierarchical: the preemptor is closer to the quota the run uses (its
	// demand fits the quota of its team, or of a cohort below where the two
	// teams meet): reclaimable whatever its priority.
	hierarchical
	// reclaimNoBorrow: reclaimable only if the preemptor then does not
	// borrow.
	reclaimNoBorrow
	// reclaimWhileBorrow: reclaimable while the preemptor borrows
	// (borrowWithinCohort lowerPriority, below maxPriorityThreshold).
	reclaimWhileBorrow
	// fairShare: with fair sharing, reclaimable when the preemptor's share
	// stays no greater than the victim team's.
	fairShare
)

func (v variant) code() berth.ReasonCode {
	switch v {
	case inTeam:
		return berth.ReasonPreemptedInTeam
	case reclaimWhileBorrow:
		return berth.ReasonPreemptedBorrow
	case fairShare:
		return berth.ReasonPreemptedFair
	}
	return berth.ReasonPreemptedReclaim
}

// candidate is a running run r may preempt, and why it may.
type candidate struct {
	run     *run
	variant variant
}

// tryTargets is targets, remembering within the cycle the requests for
// which no victims were found: candidates only go away within a cycle.
func (st *state) tryTargets(r *req, f string, n int, demand policy.Demand, need [policy.NumResources]bool) ([]candidate, bool, bool) {
	key := preemptKey{team: r.team, flavor: f, sel: r.selKey, shape: r.shape, pods: n, prio: r.prio, need: need}
	if st.cfg.Teams[r.team].Preemption.WithinTeam == berth.PreemptLowerOrNewerEqualPriority ||
		st.cfg.Teams[r.team].Preemption.ReclaimWithinCohort == berth.PreemptLowerOrNewerEqualPriority {
		key.since = r.Since
	}
	if st.noPreempt[key] {
		return nil, false, false
	}
	victims, within, ok := st.targets(r, f, n, demand, need)
	if !ok {
		st.noPreempt[key] = true
	}
	return victims, within, ok
}

// targets finds the victims that make room for n pods of r on flavor f,
// with the resources need short, and whether the team is within its
// nominal quota afterwards. It leaves the state as it was.
func (st *state) targets(r *req, f string, n int, demand policy.Demand, need [policy.NumResources]bool) ([]candidate, bool, bool) {
	pol := st.cfg.Teams[r.team].Preemption
	fair := st.cfg.Policy.FairSharing
	bwcForbidden := pol.BorrowWithinCohort.Policy != berth.PreemptLowerPriority
	hier, prio, same := st.candidates(r, f, demand, need)
	if len(hier)+len(prio)+len(same) == 0 {
		return nil, false, false
	}
	for _, g := range [][]candidate{hier, prio, same} {
		slices.SortFunc(g, func(a, b candidate) int {
			switch {
			case candidateLess(a.run, b.run):
				return -1
			case candidateLess(b.run, a.run):
				return 1
			}
			return 0
		})
	}
	all := make([]candidate, 0, len(hier)+len(prio)+len(same))
	all = append(append(append(all, hier...), prio...), same...)

	// The attempts, as Kueue orders them: borrowing allowed first, except
	// where borrowWithinCohort forbids it and only reclaiming without
	// borrowing can help, and never without borrowing where the team is
	// already at its nominal quota.
	var attempts []bool
	switch {
	case fair:
		attempts = []bool{true}
	case len(hier)+len(prio) == 0 || (bwcForbidden && !st.quotas.UnderNominal(r.team, f, need)):
		attempts = []bool{true}
	case bwcForbidden && len(hier) == 0:
		attempts = []bool{false, true}
	default:
		attempts = []bool{true, false}
	}
	fi := st.flavorFor(r, f)
	for _, borrow := range attempts {
		if chosen, within, ok := st.attempt(r, f, fi, n, demand, need, all, borrow); ok {
			return chosen, within, true
		}
	}
	return nil, false, false
}

// candidates are the runs on flavor f that r may preempt, in Kueue's
// three groups: hierarchical reclaim (r's cohort subtree is owed the
// quota), reclaim by priority (or fair share), and within r's own team.
func (st *state) candidates(r *req, f string, demand policy.Demand, need [policy.NumResources]bool) (hier, prio, same []candidate) {
	pol := st.cfg.Teams[r.team].Preemption
	fair := st.cfg.Policy.FairSharing
	bwcForbidden := pol.BorrowWithinCohort.Policy != berth.PreemptLowerPriority
	var adv []bool
	for _, v := range st.runsOn(f) {
		if v.gone || !v.running || !v.frees(st.quotas, r.team, f, need) || !v.preemptible || (v.id == r.id && v.runID == r.RunID) {
			continue
		}
		if v.team == r.team {
			if policyAllows(pol.WithinTeam, r, v) {
				same = append(same, candidate{v, inTeam})
			}
			continue
		}
		if !policyAllows(pol.ReclaimWithinCohort, r, v) {
			continue
		}
		lca := st.quotas.LCA(r.team, v.team)
		if lca < 0 || !st.quotas.Reclaimable(v.team, r.team, f, need) {
			continue
		}
		if adv == nil {
			adv = st.quotas.Advantage(r.team, f, demand)
		}
		switch {
		case adv[lca]:
			hier = append(hier, candidate{v, hierarchical})
		case bwcForbidden || aboveThreshold(v.prio, r.prio, pol.BorrowWithinCohort.MaxPriorityThreshold):
			if fair {
				prio = append(prio, candidate{v, fairShare})
			} else {
				prio = append(prio, candidate{v, reclaimNoBorrow})
			}
		default:
			prio = append(prio, candidate{v, reclaimWhileBorrow})
		}
	}
	return hier, prio, same
}

// attempt takes out candidates in order until r fits (borrowing or
// not), then puts back every victim not needed, the last taken out
// kept. The state is as it was when it returns; ok is false when r does
// not fit even with every valid candidate out.
func (st *state) attempt(r *req, f string, fi *flavorInfo, n int, demand policy.Demand, need [policy.NumResources]bool, all []candidate, borrow bool) (chosen []candidate, within, ok bool) {
	for _, c := range all {
		if !st.validCandidate(r, f, demand, need, c, borrow) {
			continue
		}
		st.takeOut(c.run)
		chosen = append(chosen, c)
		if !st.fitsNow(r, fi, n, demand, borrow) {
			continue
		}
		for i := len(chosen) - 2; i >= 0; i-- {
			st.putBack(chosen[i].run)
			if st.fitsNow(r, fi, n, demand, borrow) {
				chosen = append(chosen[:i], chosen[i+1:]...)
			} else {
				st.takeOut(chosen[i].run)
			}
		}
		within = !st.quotas.WouldBorrow(r.team, f, demand)
		for _, c := range chosen {
			st.putBack(c.run)
		}
		return chosen, within, true
	}
	for _, c := range chosen {
		st.putBack(c.run)
	}
	return nil, false, false
}

// candidateLess is Kueue's CandidatesOrdering within a group: lower
// priority first, then the most recently started, then by name.
func candidateLess(a, b *run) bool {
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	if !a.since.Equal(b.since) {
		return a.since.After(b.since)
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return a.runID < b.runID
}

// policyAllows reports whether a preemption policy lets r preempt v.
func policyAllows(policy string, r *req, v *run) bool {
	switch policy {
	case berth.PreemptLowerPriority:
		return v.prio < r.prio
	case berth.PreemptLowerOrNewerEqualPriority:
		// Newer is by when each was first seen waiting, not when the
		// victim (re)started: a run preempted and started again is as
		// old as it was, or equal priorities would preempt each other
		// back and forth. Equal times: never.
		return v.prio < r.prio || (v.prio == r.prio && v.queued.After(r.Since))
	case berth.PreemptAny:
		return true
	}
	return false
}

// aboveThreshold is Kueue's isAboveBorrowingThreshold: a run that may not
// be preempted while the preemptor borrows.
func aboveThreshold(cand, incoming int, threshold *int) bool {
	if cand >= incoming {
		return true
	}
	return threshold != nil && cand > *threshold
}

// validCandidate is Kueue's candidateIsValid: another team's run is taken
// only while its team (and the cohorts up to where the teams meet) uses
// more than its quota, and a run reclaimable only without borrowing is
// skipped in the attempt that allows borrowing.
func (st *state) validCandidate(r *req, f string, demand policy.Demand, need [policy.NumResources]bool, c candidate, borrow bool) bool {
	if c.variant == inTeam {
		return true
	}
	if borrow && c.variant == reclaimNoBorrow {
		return false
	}
	if !st.quotas.Reclaimable(c.run.team, r.team, f, need) {
		return false
	}
	return c.variant != fairShare || st.fairShareAllows(r, f, demand, c.run)
}

// preempt stops the option's victims and admits r in their place.
func (st *state) preempt(r *req, o option) bool {
	for _, c := range o.victims {
		st.takeOut(c.run)
	}
	ps, ok := st.c.placeRun(st.flavorFor(r, o.flavor), r.shape, o.pods)
	if !ok {
		// targets said it fits; placement is deterministic, so this does
		// not happen, but never leave victims stopped for nothing.
		for _, c := range o.victims {
			st.putBack(c.run)
		}
		return false
	}
	st.admit(r, o.flavor, ps, o.demand)
	d := &r.decision
	d.Action = berth.ActionPreempt
	victims := append([]candidate(nil), o.victims...)
	slices.SortFunc(victims, func(a, b candidate) int {
		return cmp.Or(
			cmp.Compare(a.run.id, b.run.id),
			cmp.Compare(a.run.runID, b.run.runID),
		)
	})
	st.ending = nil
	for _, v := range victims {
		v.run.gone = true
		d.Victims = append(d.Victims, berth.Victim{
			Workload: v.run.id, RunID: v.run.runID, Team: v.run.team, Priority: v.run.prio, PriorityTier: v.run.tier,
			Reason: berth.Reason{Code: v.variant.code(), Message: st.victimMessage(r, o.flavor, v)},
		})
	}
	st.resetFailed()
	st.noPreempt = map[preemptKey]bool{}
	return true
}

// runsOn lists the runs running before this cycle on flavor f (on any of
// the flavors a name joins, each run once). The index is built on first
// use in a cycle; runs that stop later in the cycle stay in it, marked
// gone.
func (st *state) runsOn(f string) []*run {
	if st.byFlavor == nil {
		st.byFlavor = map[string][]*run{}
		for _, r := range st.runs {
			if r.running && !r.gone {
				for _, f := range r.flavors() {
					st.byFlavor[f] = append(st.byFlavor[f], r)
				}
			}
		}
	}
	if !strings.Contains(f, berth.FlavorSeparator) {
		return st.byFlavor[f]
	}
	var out []*run
	seen := map[*run]bool{}
	for _, part := range berth.SplitFlavors(f) {
		for _, r := range st.byFlavor[part] {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// fairShareAllows reports whether preempting v for r leaves r's team with a
// share no greater than v's team's: otherwise v's team could preempt back
// at once (ping-pong).
//
// It must also stay strictly below the victim team's share before: with
// equal shares (the dominant share on another flavor, say) each team could
// otherwise preempt the other in turn.
func (st *state) fairShareAllows(r *req, f string, demand [3]int64, v *run) bool {
	mine := st.quotas.ShareWith(r.team, f, demand, 1)
	theirs := st.quotas.ShareWith(v.team, v.flavor, v.demand, -1)
	return mine <= theirs && mine < st.quotas.Share(v.team)
}

// fitsNow reports whether n pods of r fit on the flavor now (without
// borrowing unless borrow), without admitting them.
func (st *state) fitsNow(r *req, fi *flavorInfo, n int, demand policy.Demand, borrow bool) bool {
	f := fi.flavor.Name
	if !borrow && st.quotas.WouldBorrow(r.team, f, demand) {
		return false
	}
	if ok, _ := st.quotas.Fits(r.team, f, demand); !ok {
		return false
	}
	ps, ok := st.c.placeRun(fi, r.shape, n)
	if !ok {
		return false
	}
	st.c.release(r.shape, ps)
	return true
}

func (st *state) takeOut(v *run) { releaseRun(st.c, st.quotas, v) }

func (st *state) putBack(v *run) { chargeRun(st.c, st.quotas, v) }

// victimMessage says why c's run may be preempted for r: only why, for
// the plan names the preemptor beside it (and the ledger writes "preempted
// by" before it), and nothing about the victim itself, so the victims of
// one preemption that share a reason share its text and a plan says it
// once.
func (st *state) victimMessage(r *req, f string, c candidate) string {
	v := c.run
	switch c.variant {
	case inTeam:
		if v.prio == r.prio {
			return fmt.Sprintf("equal priority %s in its own team, started after the preemptor was first queued",
				berth.PriorityText(r.tier, r.prio))
		}
		return fmt.Sprintf("outranked by %s of its own team", berth.PriorityText(r.tier, r.prio))
	case hierarchical, reclaimNoBorrow:
		return fmt.Sprintf("its team borrowed %s quota that team %s takes back", f, r.team)
	case reclaimWhileBorrow:
		return fmt.Sprintf("team %s borrows within cohort %s at higher priority %s",
			r.team, st.cfg.Teams[r.team].Cohort, berth.PriorityText(r.tier, r.prio))
	case fairShare:
		return fmt.Sprintf("its team uses more than its fair share of cohort %s; team %s's share stays below it",
			st.cfg.Teams[v.team].Cohort, r.team)
	}
	return "it may be preempted"
}
