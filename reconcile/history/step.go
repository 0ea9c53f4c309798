package history

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Mark is what the store remembers of one run between reconciles: the
// phase and attempt last recorded, the decision last recorded, and how far
// its current attempt is billed.
type Mark struct {
	Cluster  string           `json:"cluster"`
	Workload berth.WorkloadID `json:"workload"`
	RunID    string           `json:"runId"`
	Phase    reconcile.Phase  `json:"phase,omitempty"`
	Attempt  int              `json:"attempt,omitempty"`
	// Decision is the last decision recorded: its action and reason code.
	Decision string `json:"decision,omitempty"`
	// Started is the start of the attempt being billed, Billed the time it
	// is billed up to, Milli its GPUs in thousandths and Flavor the flavor
	// it is billed under.
	Started time.Time `json:"started,omitzero"`
	Billed  time.Time `json:"billed,omitzero"`
	Milli   int64     `json:"milli,omitempty"`
	Flavor  string    `json:"flavor,omitempty"`
	// Seen is the last time a reconcile reported the run (its plan or its
	// cluster): a mark not seen for the retention is dropped.
	Seen time.Time `json:"seen"`
	// Commit and PR name the revision in force when the run was first
	// seen: where it came from.
	Commit string `json:"commit,omitempty"`
	PR     int    `json:"pr,omitempty"`
}

// MarkKey names a mark: the cluster and the run.
type MarkKey struct {
	Cluster string
	Run     berth.RunKey
}

// ID is the mark's key.
func (m Mark) ID() MarkKey { return MarkKey{m.Cluster, m.Run()} }

// Key is the mark's key in the store's file.
func (m Mark) Key() string { return m.Cluster + "\x00" + m.Run().String() }

// Run is the run the mark is about.
func (m Mark) Run() berth.RunKey { return berth.RunKey{Workload: m.Workload, RunID: m.RunID} }

// EventType says what an event records.
type EventType string

const (
	// EventLifecycle: a run changed phase or started another attempt.
	EventLifecycle EventType = "lifecycle"
	// EventDecision: the scheduler's decision for a run changed.
	EventDecision EventType = "decision"
	// EventChange: berth applied a change to a cluster (or pruned a run
	// that left the repository).
	EventChange EventType = "change"
)

// Event is one entry of the history.
type Event struct {
	// Seq orders events written at the same time; the store sets it.
	Seq      uint64           `json:"seq"`
	Time     time.Time        `json:"time"`
	Type     EventType        `json:"type"`
	Cluster  string           `json:"cluster"`
	Team     string           `json:"team"`
	Workload berth.WorkloadID `json:"workload"`
	RunID    string           `json:"runId,omitempty"`
	// What is the phase (lifecycle: "running"), the action (decision:
	// "queue") or the operation and its outcome (change: "start created",
	// "pruned").
	What    string  `json:"what"`
	Reason  string  `json:"reason,omitempty"`
	Attempt int     `json:"attempt,omitempty"`
	GPUs    float64 `json:"gpus,omitempty"`
	Flavor  string  `json:"flavor,omitempty"`
	// The revision in force: its name, commit, pull request (0: unknown)
	// and who merged it (the merge commit's author).
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
	PR       int    `json:"pr,omitempty"`
	MergedBy string `json:"mergedBy,omitempty"`
}

// UsageKey is one cell of the GPU-hours table.
type UsageKey struct {
	Day     string `json:"day"` // UTC, "2026-12-07"
	Team    string `json:"team"`
	Cluster string `json:"cluster"`
	Flavor  string `json:"flavor"`
}

// Usage is GPU time billed to one cell, in thousandths of a GPU times
// milliseconds (exact integers: a sum never drifts).
type Usage struct {
	UsageKey
	MilliGPUMillis int64 `json:"milliGpuMillis"`
}

// GPUHours is the usage in GPU-hours.
func (u Usage) GPUHours() float64 { return GPUHours(u.MilliGPUMillis) }

// GPUHours converts thousandths of a GPU times milliseconds to GPU-hours.
func GPUHours(milliGPUMillis int64) float64 { return float64(milliGPUMillis) / 1000 / 3600e3 }

// Revision is what the history says a revision was.
type Revision struct {
	Name, Commit string
	PR           int
	MergedBy     string
}

// RevisionOf names the report's applied revision, with the pull request
// its subject names and its author as the merger.
func RevisionOf(r reconcile.Revision) Revision {
	return Revision{Name: r.Name, Commit: r.Commit, PR: PullRequest(r.Subject), MergedBy: r.Author}
}

// prSubject matches GitHub's merge ("Merge pull request #12 from ...") and
// squash ("title (#12)") subjects.
var prSubject = regexp.MustCompile(`^Merge pull request #(\d+)\b|\(#(\d+)\)\s*$`)

// PullRequest is the pull request a commit subject names, 0 for none.
func PullRequest(subject string) int {
	m := prSubject.FindStringSubmatch(subject)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(cmp.Or(m[1], m[2]))
	return n
}

// Outcome is what one reconcile adds to the history.
type Outcome struct {
	// Marks are the marks that changed, by key.
	Marks  map[MarkKey]Mark
	Events []Event
	Usage  map[UsageKey]int64
}

// Step is what one reconcile's report adds to the history, given the
// marks of before: lifecycle events of runs whose phase or attempt
// changed, decisions that changed, changes applied, and the GPU time each
// run held since it was last billed. now is when the clusters were
// observed. A run that goes on is billed when billEvery has passed since
// its last bill (each bill is a write; 0: every time); one that ended is
// billed at once. It reads marks and does not change them.
func Step(marks map[MarkKey]Mark, rep reconcile.Report, now time.Time, billEvery time.Duration) Outcome {
	out := Outcome{Marks: map[MarkKey]Mark{}, Usage: map[UsageKey]int64{}}
	rev := RevisionOf(rep.Applied)
	stamp := func(e Event) Event {
		e.Revision, e.Commit, e.PR, e.MergedBy = rev.Name, rev.Commit, rev.PR, rev.MergedBy
		e.Team = e.Workload.Team()
		return e
	}
	get := func(cluster string, k berth.RunKey) Mark {
		m := Mark{Cluster: cluster, Workload: k.Workload, RunID: k.RunID, Commit: rev.Commit, PR: rev.PR}
		id := MarkKey{cluster, k}
		if prev, ok := out.Marks[id]; ok {
			return prev
		}
		if prev, ok := marks[id]; ok {
			return prev
		}
		return m
	}
	for _, c := range rep.Clusters {
		if c.Observed != nil {
			for _, r := range c.Observed.Runs {
				m := get(c.Name, r.Key())
				m.Seen = now
				if ev, ok := lifecycle(m, r, now); ok {
					out.Events = append(out.Events, stamp(ev))
					m.Phase, m.Attempt = r.Phase, r.Attempts
				}
				m = bill(m, r, now, billEvery, out.Usage)
				out.Marks[m.ID()] = m
			}
		}
		if c.Plan != nil {
			for _, d := range c.Plan.Decisions {
				if !recorded(d.Action) {
					continue
				}
				m := get(c.Name, d.Key())
				m.Seen = now
				if what := decisionKey(*d); what != m.Decision {
					m.Decision = what
					out.Events = append(out.Events, stamp(Event{Time: now, Type: EventDecision, Cluster: c.Name,
						Workload: d.Workload, RunID: d.RunID, What: string(d.Action), Reason: decisionReason(*d), GPUs: d.GPUs, Flavor: d.Flavor}))
				}
				out.Marks[m.ID()] = m
			}
		}
		for _, res := range c.Results {
			if res.Outcome == reconcile.OutcomeUnchanged {
				continue
			}
			ch := res.Change
			what := string(ch.Op) + " " + string(res.Outcome)
			if (ch.Op == reconcile.OpStop || ch.Op == reconcile.OpForget) && ch.Decision.Action == "" {
				what = "pruned"
			}
			reason := ch.Reason
			if res.Err != nil {
				reason = res.Err.Error()
			}
			out.Events = append(out.Events, stamp(Event{Time: now, Type: EventChange, Cluster: c.Name,
				Workload: ch.Key().Workload, RunID: ch.RunID, What: what, Reason: reason, GPUs: ch.Decision.GPUs, Flavor: ch.Decision.Flavor}))
		}
	}
	// Deterministic order: by time, then type, cluster and run.
	slices.SortStableFunc(out.Events, func(a, b Event) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Cluster, b.Cluster),
			berth.RunKey{Workload: a.Workload, RunID: a.RunID}.Compare(berth.RunKey{Workload: b.Workload, RunID: b.RunID}))
	})
	return out
}

// recorded says which decisions the history keeps: those that say what
// happens to a run, not that it goes on (keep) or is over (done).
func recorded(a berth.Action) bool {
	switch a {
	case berth.ActionKeep, berth.ActionDone:
		return false
	}
	return true
}

// decisionKey is what must change for a decision to be recorded again: a
// queued run's position and estimate move every cycle, its reason's code
// does not.
func decisionKey(d berth.Decision) string {
	if d.Reason == nil {
		return string(d.Action)
	}
	return string(d.Action) + " " + string(d.Reason.Code)
}

func decisionReason(d berth.Decision) string {
	r := ""
	if d.Reason != nil {
		r = d.Reason.Message
	}
	if d.PreemptedBy != "" {
		r = "by " + string(d.PreemptedBy) + ": " + r
	}
	if len(d.Victims) > 0 {
		names := make([]string, len(d.Victims))
		for i, v := range d.Victims {
			names[i] = berth.RunKey{Workload: v.Workload, RunID: v.RunID}.String()
		}
		r = fmt.Sprintf("stops %v", names)
	}
	return r
}

// lifecycle is the event of a run whose phase or attempt changed since
// the mark, timed by the run's own times where it has them.
func lifecycle(m Mark, r reconcile.RunState, now time.Time) (Event, bool) {
	if m.Phase == r.Phase && m.Attempt == r.Attempts {
		return Event{}, false
	}
	at := now
	switch {
	case r.Phase.Holds() && !r.StartedAt.IsZero():
		at = r.StartedAt
	case r.Phase == reconcile.PhaseQueued && !r.QueuedSince.IsZero():
		at = r.QueuedSince
	case !r.FinishedAt.IsZero() && !r.Phase.Holds():
		at = r.FinishedAt
	}
	return Event{Time: at.UTC(), Type: EventLifecycle, Cluster: m.Cluster, Workload: r.Workload, RunID: r.RunID,
		What: string(r.Phase), Reason: r.Reason, Attempt: r.Attempts, GPUs: float64(runMilli(r)) / 1000, Flavor: r.Flavor}, true
}

// runMilli is the GPUs a run holds, in thousandths: each placement's
// whole GPUs, fraction or MIG slices (a slice is its share of a GPU), or,
// where the backend reports no placements, its pods' demand.
func runMilli(r reconcile.RunState) int64 {
	var n int64
	for _, p := range r.Placements {
		switch {
		case p.GPUFraction > 0:
			n += int64(p.GPUFraction*1000 + 0.5)
		case len(p.MIG) > 0:
			for _, s := range p.MIG {
				if per := berth.MIGSlicesPerGPU(s.Profile); per > 0 {
					n += int64(1000 / per)
				}
			}
		default:
			n += int64(len(p.GPUs)) * 1000
		}
	}
	if n == 0 && len(r.Placements) == 0 {
		n = r.Resources.GPUMilli() * int64(max(r.Pods, 1))
	}
	return n
}

// bill adds the GPU time r held since m was billed to usage, split at UTC
// midnights, and returns the mark billed up to: now for a run that holds
// its GPUs, its end for one that ended. Amounts are measured from the
// attempt's start (f(t) = milli x whole milliseconds since the start), so
// the pieces of an attempt always add up to milli x its duration exactly,
// however many reconciles, restarts and days it spans. A run seen holding
// its GPUs past the end it reports later is billed back to that end.
func bill(m Mark, r reconcile.RunState, now time.Time, every time.Duration, usage map[UsageKey]int64) Mark {
	if r.StartedAt.IsZero() {
		return m
	}
	if !m.Started.Equal(r.StartedAt) {
		// Another attempt (or the first seen): billed from its start.
		m.Started, m.Billed = r.StartedAt, r.StartedAt
		m.Milli, m.Flavor = runMilli(r), r.Flavor
	}
	var end time.Time
	switch {
	case r.Phase.Holds():
		if now.Sub(m.Billed) < every {
			return m
		}
		end = now
	case !r.FinishedAt.IsZero():
		end = r.FinishedAt
	default:
		return m
	}
	if end.Before(m.Started) {
		end = m.Started
	}
	if end.Equal(m.Billed) || m.Milli == 0 {
		m.Billed = end
		return m
	}
	f := func(t time.Time) int64 { return m.Milli * t.Sub(m.Started).Milliseconds() }
	from, to, sign := m.Billed, end, int64(1)
	if to.Before(from) {
		from, to, sign = to, from, -1
	}
	for a := from; a.Before(to); {
		y, mo, d := a.UTC().Date()
		midnight := time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
		b := to
		if midnight.Before(b) {
			b = midnight
		}
		k := UsageKey{Day: a.UTC().Format(time.DateOnly), Team: m.Workload.Team(), Cluster: m.Cluster, Flavor: m.Flavor}
		usage[k] += sign * (f(b) - f(a))
		a = b
	}
	m.Billed = end
	return m
}
