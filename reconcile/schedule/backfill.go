package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// reservation is the capacity the first blocked run of a flavor will get:
// when it can start (its shadow time) if runs end at their maxDuration, and
// which runs must end first. For a workload with roles it covers every
// role, each on the flavor it waits for: the gang starts only when all fit.
type reservation struct {
	head     *req // the request (or role) that blocked
	owner    *req // the workload's request: its own roles do not wait for it
	flavor   string
	parts    []resPart
	shadow   time.Time // zero: unknown (something it waits for never ends)
	released []*run
}

// resPart is one pod set a reservation holds room for, on its flavor.
type resPart struct {
	r      *req
	flavor string
}

// message says whom r would delay. When the head is due to start is r's
// estimated start (estimate sets it for every run waiting behind a head),
// so the reason does not say it again.
func (res *reservation) message() string {
	return fmt.Sprintf("would delay %s, first in line for %s", res.head.id, res.flavor)
}

// reserve computes the shadow time of r on flavor f: replay the running
// runs' ends in order, in a copy of the state, until r fits.
func (st *state) reserve(r *req, f string) *reservation {
	return st.reserveParts(r, r, f, []resPart{{r, f}})
}

// reserveParts is reserve for the parts of owner (every role of a
// workload with roles), head the one that blocked on f.
func (st *state) reserveParts(owner, head *req, f string, parts []resPart) *reservation {
	res := &reservation{head: head, owner: owner, flavor: f, parts: parts}
	res.shadow, res.released = st.shadowParts(parts, nil)
	return res
}

// shadow is when r would fit on f if runs end at their maxDuration, and the
// runs that must end first. extra, if set, is a run assumed to be running
// as well (a backfill candidate).
func (st *state) shadow(r *req, f string, extra *run) (time.Time, []*run) {
	return st.shadowParts([]resPart{{r, f}}, extra)
}

// shadowParts is shadow for pod sets that start together.
func (st *state) shadowParts(parts []resPart, extra *run) (time.Time, []*run) {
	ending := st.endingRuns()
	c := st.c.scratch()
	q := st.quotas.Clone()
	for i, x := range ending {
		if x == extra {
			continue
		}
		releaseRun(c, q, x)
		if st.partsFit(c, q, parts) {
			return x.end(), ending[:i+1]
		}
	}
	return time.Time{}, nil
}

// partsFit reports whether every part fits the quota and nodes of c and q
// (copies of the state's) together, each seeing those before it, on its
// flavor's nodes that its node selector picks; it leaves them as they were.
func (st *state) partsFit(c *cluster, q *policy.Quotas, parts []resPart) bool {
	type held struct {
		p     resPart
		ps    []berth.Placement
		added bool
	}
	var done []held
	ok := true
	for i, p := range parts {
		fi := st.flavorFor(p.r, p.flavor)
		demand := p.r.demand(p.r.pods)
		if fits, _ := q.Fits(p.r.team, p.flavor, demand); !fits || fi == nil {
			ok = false
			break
		}
		ps, fit := c.placeRun(fi, p.r.shape, p.r.pods)
		if !fit {
			ok = false
			break
		}
		last := i == len(parts)-1
		if !last {
			// Only a later part needs to see this one's quota (this is
			// the hot loop of every shadow replay).
			q.Add(p.r.team, p.flavor, demand)
		}
		done = append(done, held{p, ps, !last})
	}
	for i := len(done) - 1; i >= 0; i-- {
		h := done[i]
		c.release(h.p.r.shape, h.ps)
		if h.added {
			q.Remove(h.p.r.team, h.p.flavor, h.p.r.demand(h.p.r.pods))
		}
	}
	return ok
}

// endingRuns lists the live runs with a known end, soonest first.
func (st *state) endingRuns() []*run {
	if st.ending != nil {
		return st.ending
	}
	type item struct {
		r   *run
		end time.Time
	}
	var items []item
	for _, x := range st.runs {
		if e := x.end(); !x.gone && !e.IsZero() {
			items = append(items, item{x, e})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(a.end.Compare(b.end), cmp.Compare(a.r.id, b.r.id), cmp.Compare(a.r.runID, b.r.runID))
	})
	st.ending = make([]*run, len(items))
	for i, it := range items {
		st.ending[i] = it.r
	}
	return st.ending
}

// backfillOK reports whether b, placed at ps on f, cannot delay the
// reservation: it ends before the head's shadow time, or the head still
// fits at its shadow time with b running.
func (st *state) backfillOK(b *req, f string, ps []berth.Placement, demand policy.Demand, res *reservation) bool {
	if res.shadow.IsZero() {
		return true
	}
	if d := b.Workload.MaxDuration.D(); d > 0 && b.Workload.Kind.RunsOnce() && !st.now.Add(d).After(res.shadow) {
		return true
	}
	// Does the head (every part of it) still fit at its shadow time with
	// b running?
	c := st.c.scratch() // b's placement is already charged
	q := st.quotas.Clone()
	q.Add(b.team, f, demand)
	for _, x := range res.released {
		releaseRun(c, q, x)
	}
	return st.partsFit(c, q, res.parts)
}

// estimate sets EstimatedStart for queued runs: the first EstimateLimit in
// line and those Options.Estimate names.
func (st *state) estimate(order []*req) {
	n := 0
	for _, r := range order {
		d := &r.decision
		if d.Action != berth.ActionQueue {
			continue
		}
		n++
		if d.Reason != nil && (d.Reason.Code == berth.ReasonBehindHead) {
			// It fits now but waits for the head: it starts when the head
			// has (known already, so whatever its place in line).
			if res := st.heads[firstFlavor(st, r)]; res != nil && !res.shadow.IsZero() {
				t := res.shadow
				d.EstimatedStart = &t
			}
			continue
		}
		if n > st.opts.EstimateLimit && !st.opts.Estimate[r.id] {
			continue
		}
		// A workload with roles starts when its last role can.
		var start time.Time
		for _, v := range r.parts() {
			var best time.Time
			for _, f := range v.flavors {
				if _, ok := st.c.flavors[f]; !ok {
					continue
				}
				if t, _ := st.shadow(v, f, nil); !t.IsZero() && (best.IsZero() || t.Before(best)) {
					best = t
				}
			}
			if best.IsZero() {
				start = time.Time{}
				break
			}
			if best.After(start) {
				start = best
			}
		}
		if !start.IsZero() {
			d.EstimatedStart = &start
		}
	}
}

func firstFlavor(st *state, r *req) string {
	for _, f := range r.flavors {
		if _, ok := st.c.flavors[f]; ok {
			return f
		}
	}
	return ""
}
