package status

import (
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// States a merged workload goes through, as the sync comment and status
// name them (the states of WorkloadStatus).
const (
	SyncQueued    = "queued"
	SyncWaiting   = "waiting"
	SyncAdmitted  = "admitted"
	SyncRunning   = "running"
	SyncSucceeded = "succeeded"
	SyncFailed    = "failed"
	SyncPreempted = "preempted"
	SyncRejected  = "rejected"
	SyncStopping  = "stopping"
	SyncStopped   = "stopped"
	// SyncServing is not a state of its own: it counts the running
	// workloads that are services (kept running, so running is their goal).
	SyncServing = "serving"
)

var syncStateOrder = []string{SyncRunning, SyncAdmitted, SyncQueued, SyncWaiting, SyncPreempted, SyncSucceeded,
	SyncFailed, SyncRejected, SyncStopping, SyncStopped}

// SyncView is what a merged pull request's workloads did on one cluster.
type SyncView struct {
	PR        PullRequest
	Cluster   string
	MergeSHA  string
	Time      time.Time
	Err       error
	Workloads []SyncWorkload
}

// SyncWorkload is one merged workload's run and how it got where it is.
type SyncWorkload struct {
	ID             berth.WorkloadID
	RunID          string
	Kind           berth.Kind
	State          string
	Reason         string
	PreemptedBy    berth.WorkloadID
	Position       int
	EstimatedStart *time.Time
	Nodes          []string
	Flavor         string
	// URL is where a service or notebook is reached, once it runs (every
	// replica ready); never with a token.
	URL string
	// History is every state seen, oldest first.
	History []Transition
}

// Transition is a state and when berth first saw it, with why for a
// preemption or a failure ("preempted by serving/chat-api: ...").
type Transition struct {
	State string
	At    time.Time
	Note  string
}

// Replica reports whether the run is a replica of an autoscaled service
// above its minimum (berth.ScaleRunID).
func (w SyncWorkload) Replica() bool {
	_, _, ok := berth.ParseScaleRunID(w.RunID)
	return ok
}

// Final reports whether the workload will not move on by itself: a run
// that ended, or a service that runs.
func (w SyncWorkload) Final() bool {
	if w.Replica() {
		// An autoscaled service's replica above its minimum comes and
		// goes with its autoscaler: the service's own run says whether
		// the merge took.
		return true
	}
	switch w.State {
	case SyncSucceeded, SyncFailed, SyncRejected, SyncStopped:
		return true
	case SyncRunning:
		return !w.Kind.RunsOnce()
	}
	return false
}

// SyncWorkloads picks the given workloads' current runs out of a cluster's
// last plan and runs (see Workloads), with the reason a preempted one was
// preempted.
func SyncWorkloads(cluster string, plan *berth.Plan, runs []reconcile.RunState, ids []berth.WorkloadID) []SyncWorkload {
	want := map[berth.WorkloadID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	byRun := map[berth.RunKey]berth.Decision{}
	if plan != nil {
		for _, d := range plan.Decisions {
			byRun[d.Key()] = *d
		}
	}
	// The plan's runs are the current ones; a run the plan does not
	// mention (an earlier runId) counts only for a workload the plan has
	// no run of.
	inPlan := map[berth.WorkloadID]bool{}
	for _, d := range byRun {
		inPlan[d.Workload] = true
	}
	var out []SyncWorkload
	for _, ws := range Workloads(cluster, plan, runs) {
		if !want[ws.Workload] {
			continue
		}
		if _, planned := byRun[ws.Key()]; !planned && inPlan[ws.Workload] {
			continue
		}
		sw := SyncWorkload{ID: ws.Workload, RunID: ws.RunID, Kind: ws.Kind, State: ws.State, Reason: ws.Reason,
			Position: ws.Position, Nodes: ws.Nodes, Flavor: ws.Flavor}
		if ws.State == SyncRunning {
			sw.URL = ws.URL
		}
		if d, ok := byRun[ws.Key()]; ok {
			sw.PreemptedBy = d.PreemptedBy
			sw.EstimatedStart = d.EstimatedStart
			if d.Action == berth.ActionQueue && d.Reason != nil {
				sw.Reason = d.Reason.Message
			}
		}
		for _, r := range runs {
			if r.Workload == ws.Workload && r.RunID == ws.RunID && r.Phase == reconcile.PhasePreempted && r.Reason != "" {
				sw.State, sw.Reason = SyncPreempted, r.Reason
			}
		}
		out = append(out, sw)
	}
	return out
}
