package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
)

// maxCatchUpWindow bounds how far back a periodic job's missed ticks are
// looked for: a minutely job of a berth that was down for a year still
// costs one bounded scan.
const maxCatchUpWindow = 366 * 24 * time.Hour

// tickPlan is what a periodic job does with its ticks due at now: the
// ticks that run (oldest first) and the missed ones that do not.
type tickPlan struct {
	run                     []time.Time
	missed                  int
	firstMissed, lastMissed time.Time
}

// planTicks decides a periodic job's due ticks: those after last (the
// newest tick the snapshot knows of this job; zero for none, when only the
// tick deadline's window is looked at), up to now, as catchUp says.
func planTicks(w *berth.Workload, last, now time.Time, deadline time.Duration) tickPlan {
	from := last
	if from.IsZero() {
		from = now.Add(-deadline).Add(-time.Second)
	}
	from = maxTime(from, now.Add(-maxCatchUpWindow))
	keep := 1
	if w.CatchUp == berth.CatchUpAll {
		keep = max(w.CatchUpLimit, 1)
	}
	// Scan the ticks in (from, now], keeping the newest keep+1: those
	// that run, and the newest of those that do not.
	var p tickPlan
	ring := make([]time.Time, keep+1) // tick i at ring[i%len(ring)]
	total := 0
	for t, err := NextTick(w.Schedule, from); err == nil && !t.After(now); t, err = NextTick(w.Schedule, t) {
		if total == 0 {
			p.firstMissed = t
		}
		ring[total%len(ring)] = t
		total++
	}
	if total == 0 {
		return p
	}
	recent := make([]time.Time, 0, min(total, len(ring)))
	for i := max(total-len(ring), 0); i < total; i++ {
		recent = append(recent, ring[i%len(ring)])
	}
	p.run = recent[max(len(recent)-keep, 0):]
	if w.CatchUp == "" || w.CatchUp == berth.CatchUpNone {
		if now.Sub(p.run[0]) > deadline {
			p.run = nil
		}
	}
	p.missed = total - len(p.run)
	switch {
	case p.missed == 0:
		p.firstMissed = time.Time{}
	case len(p.run) == 0:
		p.lastMissed = recent[len(recent)-1]
	default:
		p.lastMissed = recent[len(recent)-len(p.run)-1]
	}
	return p
}

// supersededByTick is why a run of a periodic job with concurrency replace
// stops: a newer tick is due that prepare starts (the same planTicks), or
// nil.
func supersededByTick(w *berth.Workload, runID string, now time.Time, deadline time.Duration) *berth.Reason {
	t, ok := tickOf(runID, w.RunID)
	if !ok {
		return nil
	}
	p := planTicks(w, t, now, deadline)
	if len(p.run) == 0 {
		return nil
	}
	newer := p.run[len(p.run)-1]
	return &berth.Reason{Code: berth.ReasonSupersededByTick,
		Message: fmt.Sprintf("tick %s is due: concurrency replace stops this run of tick %s",
			newer.UTC().Format("2006-01-02 15:04 MST"), t.UTC().Format("2006-01-02 15:04 MST"))}
}

// missedMessage says which ticks will not run and why, so a tick is never
// dropped without a word.
func missedMessage(w *berth.Workload, p tickPlan, deadline time.Duration) string {
	span := p.firstMissed.UTC().Format("2006-01-02 15:04 MST")
	if p.missed > 1 {
		span += " .. " + p.lastMissed.UTC().Format("2006-01-02 15:04 MST")
	}
	ticks := "tick"
	if p.missed > 1 {
		ticks = fmt.Sprintf("%d ticks", p.missed)
	}
	switch w.CatchUp {
	case berth.CatchUpLatest:
		return fmt.Sprintf("missed %s (%s): catchUp latest runs only the latest", ticks, span)
	case berth.CatchUpAll:
		return fmt.Sprintf("missed %s (%s): catchUp all runs at most catchUpLimit %d, the newest", ticks, span, w.CatchUpLimit)
	}
	return fmt.Sprintf("missed %s (%s) by more than the tick deadline %s: catchUp none does not run them; set catchUp latest or all to run them", ticks, span, deadline)
}

// IsRunOf reports whether runID is a run of w as the configuration has it
// now: its runId, or, for a periodic job, a tick of it (TickRunID).
func IsRunOf(w berth.Workload, runID string) bool {
	if runID == w.RunID {
		return true
	}
	_, tick := tickOf(runID, w.RunID)
	return tick && w.Schedule != ""
}

// tickOf is the tick a run of a periodic job stands for, from its run id
// (TickRunID); false for a run of another runId or no tick.
func tickOf(runID, workloadRunID string) (time.Time, bool) {
	s, ok := strings.CutPrefix(runID, workloadRunID+"-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102t1504", s)
	return t, err == nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
