package dash

import (
	"fmt"
	"io"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

// event is one step of a run's life that berth knows the time of.
type event struct {
	Time   string
	What   string
	Detail string
}

// runView is one run of the workload on one cluster.
type runView struct {
	Cluster  string
	RunID    string
	Selected bool
	State    string
	GPUs     string
	Flavor   string
	Nodes    string
	Attempts int
	Runtime  string
	Events   []event
	// Decision is what the scheduler decides for the run now.
	Decision []field
}

type field struct{ Name, Value string }

type workloadView struct {
	page
	Workload string
	Team     string
	Kind     string
	Source   link
	Runs     []runView
	Logs     LogTail
	HasLogs  bool
}

// WorkloadPage names the workload page's subject: a workload, and the
// cluster and run its log tail is of ("" for any).
type WorkloadPage struct {
	Workload berth.WorkloadID
	Cluster  string
	RunID    string
	// History is what the history holds of the workload, oldest first:
	// where it has a run's lifecycle, the page shows it (every attempt,
	// preemption and decision) instead of the run's latest times.
	History []history.Event
}

// ErrNoWorkload is returned by Workload for a workload no cluster knows.
type ErrNoWorkload struct{ Workload berth.WorkloadID }

func (e ErrNoWorkload) Error() string {
	return fmt.Sprintf("workload %s: no cluster this berth serve runs has a run of it", e.Workload)
}

// Workload writes the page of one workload: each of its runs on each
// cluster, with the steps of its life berth knows the times of, what the
// scheduler decides for it now, and the tail of its output.
func Workload(w io.Writer, d Data, p WorkloadPage, logs LogTail) error {
	v := workloadView{page: newPage(d, "workloads", string(p.Workload)), Workload: string(p.Workload), Team: p.Workload.Team(),
		Source: d.source(p.Workload), Logs: logs, HasLogs: len(logs.Lines) > 0}
	for _, c := range sortedClusters(d.Clusters) {
		var decisions map[berth.RunKey]*berth.Decision
		if c.Plan != nil {
			decisions = map[berth.RunKey]*berth.Decision{}
			for _, dd := range c.Plan.Decisions {
				if dd.Workload == p.Workload {
					decisions[dd.Key()] = dd
				}
			}
		}
		runs := map[berth.RunKey]*reconcile.RunState{}
		for i := range c.Runs {
			if r := &c.Runs[i]; r.Workload == p.Workload {
				runs[r.Key()] = r
			}
		}
		for i := range c.Workloads {
			ws := &c.Workloads[i]
			if ws.Workload != p.Workload {
				continue
			}
			v.Kind = string(ws.Kind)
			run := runs[ws.Key()]
			rv := runView{Cluster: c.Name, RunID: ws.RunID, State: ws.State, GPUs: gpusText(ws), Flavor: ws.Flavor,
				Nodes: strings.Join(ws.Nodes, ", "), Attempts: ws.Attempts, Runtime: runtime(d.Now, ws, run),
				Selected: (p.Cluster == "" || p.Cluster == c.Name) && (p.RunID == "" || p.RunID == ws.RunID)}
			rv.Events = recorded(p.History, c.Name, ws.RunID)
			if len(rv.Events) == 0 {
				rv.Events = lifecycle(ws, run)
			}
			rv.Decision = decisionFields(decisions[ws.Key()])
			v.Runs = append(v.Runs, rv)
		}
	}
	if len(v.Runs) == 0 {
		return ErrNoWorkload{p.Workload}
	}
	return render(w, "workload", v)
}

// recorded is a run's lifecycle and the decisions about it as the history
// kept them, oldest first.
func recorded(evs []history.Event, cluster, runID string) []event {
	var out []event
	lastPR := 0
	for _, e := range evs {
		if e.Cluster != cluster || e.RunID != runID || e.Type == history.EventChange {
			continue
		}
		ev := event{Time: timeText(e.Time), What: e.What, Detail: e.Reason}
		if e.Type == history.EventDecision {
			ev.What = "decided: " + e.What
		}
		if e.Type == history.EventLifecycle && e.Attempt > 0 && e.What != string(reconcile.PhaseQueued) {
			ev.Detail = strings.TrimPrefix(fmt.Sprintf("attempt %d; %s", e.Attempt, e.Reason), "; ")
			ev.Detail = strings.TrimSuffix(ev.Detail, "; ")
		}
		// The pull request the revision in force came from, when it changes.
		if e.PR > 0 && e.PR != lastPR {
			ev.Detail = strings.TrimPrefix(ev.Detail+fmt.Sprintf(" (pull request #%d)", e.PR), " ")
		}
		lastPR = e.PR
		out = append(out, ev)
	}
	return out
}

// lifecycle lists what berth recorded of a run, oldest first: when it
// was first seen waiting, when its latest attempt started, and how it
// ended.
func lifecycle(ws *status.WorkloadStatus, run *reconcile.RunState) []event {
	var out []event
	if run == nil {
		if ws.Since != nil {
			out = append(out, event{Time: timeText(*ws.Since), What: ws.State, Detail: ws.Reason})
		}
		return out
	}
	if !run.QueuedSince.IsZero() {
		out = append(out, event{Time: timeText(run.QueuedSince), What: "queued"})
	}
	if !run.StartedAt.IsZero() {
		e := event{Time: timeText(run.StartedAt), What: "started", Detail: fmt.Sprintf("attempt %d", run.Attempts)}
		if run.Preemptions > 0 {
			e.Detail += fmt.Sprintf(" (%d preempted before)", run.Preemptions)
		}
		if len(run.Placements) > 0 {
			e.Detail += " on " + strings.Join(status.NodePlacementNames(run.Placements), ", ")
		}
		out = append(out, e)
	}
	switch {
	case !run.FinishedAt.IsZero():
		out = append(out, event{Time: timeText(run.FinishedAt), What: string(run.Phase), Detail: run.Reason})
	case run.Phase != "" && run.Phase != reconcile.PhaseQueued:
		e := event{Time: "now", What: string(run.Phase), Detail: run.Reason}
		if run.Pods > 0 {
			e.Detail = strings.TrimSpace(fmt.Sprintf("%d of %d pods running %s", run.PodsRunning, run.Pods, run.Reason))
		}
		if run.PodFailed != "" {
			e.Detail += "; a pod ended: " + run.PodFailed
		}
		out = append(out, e)
	}
	return out
}

// decisionFields is the scheduler's decision for the run, field by field.
func decisionFields(d *berth.Decision) []field {
	if d == nil {
		return nil
	}
	out := []field{{"action", string(d.Action)}, {"priority", berth.PriorityText(d.PriorityTier, d.Priority)}}
	add := func(name, value string) {
		if value != "" {
			out = append(out, field{name, value})
		}
	}
	if d.Reason != nil {
		add("reason", string(d.Reason.Code)+": "+d.Reason.Message)
	}
	if d.Position > 0 {
		add("position", fmt.Sprintf("#%d", d.Position))
	}
	if d.EstimatedStart != nil {
		add("estimated start", timeText(*d.EstimatedStart))
	}
	add("flavor", d.Flavor)
	if d.Borrowed {
		add("borrowed", "yes: it uses quota lent by the cohort")
	}
	if d.Backfilled {
		add("backfilled", "yes: it starts ahead of a blocked workload it does not delay")
	}
	for _, vi := range d.Victims {
		add("preempts", fmt.Sprintf("%s run %s (%s: %s)", vi.Workload, vi.RunID, vi.Reason.Code, vi.Reason.Message))
	}
	add("preempted by", string(d.PreemptedBy))
	if !d.Since.IsZero() {
		add("since", timeText(d.Since))
	}
	return out
}
