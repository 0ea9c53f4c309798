package schedule

import (
	"fmt"
	"sort"

	"github.com/berth-gpu/berth"
)

// candidate is a running run r may preempt, and why it may.
type candidate struct {
	run    *run
	reason berth.ReasonCode
}

// tryPreempt admits r on flavor f by stopping the fewest runs policy lets
// it stop: candidates lowest priority and most recently started first are
// added until r fits, then every one not needed is dropped again.
func (st *state) tryPreempt(r *req, f string) bool {
	key := preemptKey{team: r.team, flavor: f, shape: r.shape, pods: r.pods, prio: r.prio,
		withinNominal: !st.quotas.WouldBorrow(r.team, f, r.demand(r.pods))}
	if st.cfg.Teams[r.team].Preemption.WithinTeam == berth.PreemptLowerOrNewerEqualPriority {
		key.since = r.Since
	}
	if st.noPreempt[key] {
		return false
	}
	if !st.preempt(r, f) {
		st.noPreempt[key] = true
		return false
	}
	st.noPreempt = map[preemptKey]bool{}
	return true
}

func (st *state) preempt(r *req, f string) bool {
	fi := st.c.flavors[f]
	demand := r.demand(r.pods)
	withinNominal := !st.quotas.WouldBorrow(r.team, f, demand)
	cands := st.candidates(r, f, withinNominal)
	if len(cands) == 0 {
		return false
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i].run, cands[j].run
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
	})

	var chosen []candidate
	fits := false
	for _, c := range cands {
		v := c.run
		// Another team's run is taken only while that team is above its
		// nominal quota: reclaiming stops at nominal.
		if v.team != r.team && st.quotas.Borrowed(v.team, f, berth.ResourceGPU) == 0 &&
			st.quotas.Borrowed(v.team, f, berth.ResourceCPU) == 0 && st.quotas.Borrowed(v.team, f, berth.ResourceMemory) == 0 {
			continue
		}
		if c.reason == berth.ReasonPreemptedFair && !st.fairShareAllows(r, f, demand, v) {
			continue
		}
		st.takeOut(v)
		chosen = append(chosen, c)
		if st.fitsNow(r, f, fi, demand) {
			fits = true
			break
		}
	}
	if !fits {
		for i := len(chosen) - 1; i >= 0; i-- {
			st.putBack(chosen[i].run)
		}
		return false
	}
	// Drop every victim not needed, the last chosen (highest priority,
	// longest running) first.
	var victims []candidate
	for i := len(chosen) - 1; i >= 0; i-- {
		st.putBack(chosen[i].run)
		if st.fitsNow(r, f, fi, demand) {
			continue
		}
		st.takeOut(chosen[i].run)
		victims = append(victims, chosen[i])
	}
	ps, ok := st.c.placeRun(fi, r.shape, r.pods)
	if !ok {
		// fitsNow said yes; placement is deterministic, so this does not
		// happen, but never leave victims stopped for nothing.
		for _, v := range victims {
			st.putBack(v.run)
		}
		return false
	}
	st.admit(r, f, ps, demand)
	d := &r.decision
	d.Action = berth.ActionPreempt
	sort.SliceStable(victims, func(i, j int) bool {
		if victims[i].run.id != victims[j].run.id {
			return victims[i].run.id < victims[j].run.id
		}
		return victims[i].run.runID < victims[j].run.runID
	})
	st.ending = nil
	for _, v := range victims {
		v.run.gone = true
		d.Victims = append(d.Victims, berth.Victim{
			Workload: v.run.id, RunID: v.run.runID, Team: v.run.team, Priority: v.run.prio,
			Reason: berth.Reason{Code: v.reason, Message: st.victimMessage(r, f, v)},
		})
	}
	st.resetFailed()
	return true
}

// runsOn lists the runs running before this cycle on flavor f. The index
// is built on first use in a cycle; runs that stop later in the cycle stay
// in it, marked gone.
func (st *state) runsOn(f string) []*run {
	if st.byFlavor == nil {
		st.byFlavor = map[string][]*run{}
		for _, r := range st.runs {
			if r.running && !r.gone {
				st.byFlavor[r.flavor] = append(st.byFlavor[r.flavor], r)
			}
		}
	}
	return st.byFlavor[f]
}

// candidates lists the running runs on flavor f that policy lets r
// preempt.
func (st *state) candidates(r *req, f string, withinNominal bool) []candidate {
	team := st.cfg.Teams[r.team]
	pol := team.Preemption
	fair := st.cfg.Policy.FairSharing
	var out []candidate
	for _, v := range st.runsOn(f) {
		if v.gone || !v.running || v.flavor != f || !v.preemptible || (v.id == r.id && v.runID == r.RunID) {
			continue
		}
		if v.team == r.team {
			switch pol.WithinTeam {
			case berth.PreemptLowerPriority:
				if v.prio < r.prio {
					out = append(out, candidate{v, berth.ReasonPreemptedInTeam})
				}
			case berth.PreemptLowerOrNewerEqualPriority:
				// Newer is by when each was first seen waiting, not when the
				// victim (re)started: a run preempted and started again is
				// as old as it was, or equal priorities would preempt each
				// other back and forth. Equal times: never.
				if v.prio < r.prio || (v.prio == r.prio && v.queued.After(r.Since)) {
					out = append(out, candidate{v, berth.ReasonPreemptedInTeam})
				}
			}
			continue
		}
		if !st.quotas.SameCohortTree(r.team, v.team) {
			continue
		}
		if withinNominal {
			switch pol.ReclaimWithinCohort {
			case berth.PreemptAny:
				out = append(out, candidate{v, berth.ReasonPreemptedReclaim})
				continue
			case berth.PreemptLowerPriority:
				if v.prio < r.prio {
					out = append(out, candidate{v, berth.ReasonPreemptedReclaim})
					continue
				}
			}
		} else if pol.BorrowWithinCohort.Policy == berth.PreemptLowerPriority && v.prio < r.prio {
			if t := pol.BorrowWithinCohort.MaxPriorityThreshold; t == nil || v.prio <= *t {
				out = append(out, candidate{v, berth.ReasonPreemptedBorrow})
				continue
			}
		}
		if fair {
			out = append(out, candidate{v, berth.ReasonPreemptedFair})
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

// fitsNow reports whether r fits on f now, without admitting it.
func (st *state) fitsNow(r *req, f string, fi *flavorInfo, demand [3]int64) bool {
	if ok, _ := st.quotas.Fits(r.team, f, demand); !ok {
		return false
	}
	ps, ok := st.c.placeRun(fi, r.shape, r.pods)
	if !ok {
		return false
	}
	st.c.release(r.shape, ps)
	return true
}

func (st *state) takeOut(v *run) {
	st.c.release(v.shape, v.placements)
	st.quotas.Remove(v.team, v.flavor, v.demand)
}

func (st *state) putBack(v *run) {
	st.c.charge(v.shape, v.placements)
	st.quotas.Add(v.team, v.flavor, v.demand)
}

func (st *state) victimMessage(r *req, f string, c candidate) string {
	v := c.run
	switch c.reason {
	case berth.ReasonPreemptedInTeam:
		if v.prio == r.prio {
			return fmt.Sprintf("preempted by %s of its own team: equal priority %s, and it started after %s was queued", r.id, r.tier, r.id)
		}
		return fmt.Sprintf("preempted by %s of its own team: priority %s (%d) over %s (%d)", r.id, r.tier, r.prio, orTier(v.tier, v.prio), v.prio)
	case berth.ReasonPreemptedReclaim:
		return fmt.Sprintf("team %s borrowed %s quota that team %s takes back for %s", v.team, f, r.team, r.id)
	case berth.ReasonPreemptedBorrow:
		return fmt.Sprintf("preempted by %s, which borrows in the cohort at priority %s (%d) over %d", r.id, r.tier, r.prio, v.prio)
	case berth.ReasonPreemptedFair:
		return fmt.Sprintf("team %s uses more than its fair share of cohort %s; team %s's share stays below it with %s admitted",
			v.team, st.cfg.Teams[v.team].Cohort, r.team, r.id)
	}
	return "preempted by " + string(r.id)
}

func orTier(tier string, prio int) string {
	if tier != "" {
		return tier
	}
	return fmt.Sprint(prio)
}
