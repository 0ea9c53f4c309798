package policy

import (
	"fmt"
	"strconv"

	"github.com/berth-gpu/berth"
)

// ScaleRoom is how far an autoscaled service may scale inside its team's
// quota now: what a pull request's plan says of it ("may scale to 4
// replicas: 4 GPUs, within nominal").
type ScaleRoom struct {
	// Replicas is the most replicas, up to Max, whose demand fits the
	// quota beside everything the team runs (the service's own running
	// replicas included).
	Replicas, Max int
	// GPUs is what Replicas replicas take, in thousandths.
	GPUs int64
	// Borrowed is how far the team would be above its nominal GPU quota at
	// Replicas replicas (0: within nominal), in thousandths.
	Borrowed int64
	// Short is why one more replica would not fit, when fewer than Max do.
	Short *Shortfall
	// NoCohort: the team is in no cohort, so it cannot borrow at all.
	NoCohort bool
}

// ServiceScaleRoom adds replicas of demand replica, one at a time, to the
// team's usage of flavor, beyond the running ones (already in q's usage),
// until the next does not fit or max is reached. q is not changed.
func ServiceScaleRoom(q *Quotas, team, flavor string, replica Demand, running, most int) ScaleRoom {
	c := q.Clone()
	room := ScaleRoom{Replicas: running, Max: most, NoCohort: !q.InCohort(team)}
	for room.Replicas < most {
		ok, sf := c.Fits(team, flavor, replica)
		if !ok {
			room.Short = &sf
			break
		}
		c.Add(team, flavor, replica)
		room.Replicas++
	}
	gpu := ResourceIndex(berth.ResourceGPU)
	room.GPUs = int64(room.Replicas) * replica[gpu]
	if nominal, ok := c.Nominal(team, flavor, berth.ResourceGPU); ok {
		room.Borrowed = max(0, c.Used(team, flavor, berth.ResourceGPU)-nominal)
	}
	return room
}

// String is the plan's line: "may scale to 4 replicas: 4 GPUs, within
// nominal", "may scale to 6 replicas: 6 GPUs, 2 borrowed from the
// cohort", "may scale to 3 of max 6 replicas: 3 GPUs, within nominal;
// replica 4 needs 1 GPU more than the cohort can lend".
func (r ScaleRoom) String() string {
	s := fmt.Sprintf("may scale to %d replicas", r.Replicas)
	if r.Replicas < r.Max {
		s = fmt.Sprintf("may scale to %d of max %d replicas", r.Replicas, r.Max)
	}
	s += ": " + plural(r.GPUs, "GPU")
	if r.Borrowed > 0 {
		s += ", " + strconv.FormatFloat(float64(r.Borrowed)/1000, 'f', -1, 64) + " borrowed from the cohort"
	} else {
		s += ", within nominal"
	}
	if sf := r.Short; sf != nil {
		what := "the team's quota has"
		switch {
		case r.NoCohort:
		case sf.AtLimit:
			what = "its borrowing limit allows"
		case sf.Borrowing:
			what = "the cohort can lend"
		}
		need := milli(sf.Need) + " " + string(sf.Resource)
		if sf.Resource == berth.ResourceGPU {
			need = plural(sf.Need, "GPU")
		}
		s += fmt.Sprintf("; replica %d needs %s more than %s", r.Replicas+1, need, what)
	}
	return s
}

// plural is n thousandths of a unit as people count them: "1 GPU", "0.5
// GPUs", "4 GPUs".
func plural(n int64, unit string) string {
	if n == 1000 {
		return "1 " + unit
	}
	return strconv.FormatFloat(float64(n)/1000, 'f', -1, 64) + " " + unit + "s"
}

func milli(n int64) string { return berth.MilliQuantity(n).String() }
