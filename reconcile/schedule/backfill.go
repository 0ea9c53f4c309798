package schedule

import (
	"fmt"
	"sort"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// reservation is the capacity the first blocked run of a flavor will get:
// when it can start (its shadow time) if runs end at their maxDuration, and
// which runs must end first.
type reservation struct {
	head     *req
	flavor   string
	shadow   time.Time // zero: unknown (something it waits for never ends)
	released []*run
}

// message says whom r would delay. When the head is due to start is r's
// estimated start (estimate sets it for every run waiting behind a head),
// so the reason does not say it again.
func (res *reservation) message() string {
	return fmt.Sprintf("would delay %s, first in line for %s", res.head.id, res.flavor)
}

// reserve computes r's shadow time on flavor f: replay the running runs'
// ends in order, in a copy of the state, until r fits.
func (st *state) reserve(r *req, f string) *reservation {
	res := &reservation{head: r, flavor: f}
	res.shadow, res.released = st.shadow(r, f, nil)
	return res
}

// shadow is when r would fit on f if runs end at their maxDuration, and the
// runs that must end first. extra, if set, is a run assumed to be running
// as well (a backfill candidate).
func (st *state) shadow(r *req, f string, extra *run) (time.Time, []*run) {
	ending := st.endingRuns()
	c := st.c.scratch()
	q := st.quotas.Clone()
	fi := c.flavors[f]
	demand := r.demand(r.pods)
	fits := func() bool {
		if ok, _ := q.Fits(r.team, f, demand); !ok {
			return false
		}
		ps, ok := c.placeRun(fi, r.shape, r.pods)
		if ok {
			c.release(r.shape, ps)
		}
		return ok
	}
	for i, x := range ending {
		if x == extra {
			continue
		}
		releaseRun(c, q, x)
		if fits() {
			return x.end(), ending[:i+1]
		}
	}
	return time.Time{}, nil
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
	sort.SliceStable(items, func(i, j int) bool {
		if !items[i].end.Equal(items[j].end) {
			return items[i].end.Before(items[j].end)
		}
		if items[i].r.id != items[j].r.id {
			return items[i].r.id < items[j].r.id
		}
		return items[i].r.runID < items[j].r.runID
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
	// Does the head still fit at its shadow time with b running?
	c := st.c.scratch() // b's placement is already charged
	q := st.quotas.Clone()
	q.Add(b.team, f, demand)
	for _, x := range res.released {
		releaseRun(c, q, x)
	}
	h := res.head
	if ok, _ := q.Fits(h.team, res.flavor, h.demand(h.pods)); !ok {
		return false
	}
	_, ok := c.placeRun(c.flavors[res.flavor], h.shape, h.pods)
	return ok
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
