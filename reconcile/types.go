package reconcile

import (
	"context"
	"time"

	"github.com/berth-gpu/berth"
)

// Cluster is a place berth runs workloads: this machine (reconcile/local)
// or a Kubernetes cluster (reconcile/kube).
type Cluster interface {
	// Name is the cluster's name in the repository's clusters.
	Name() string
	// Observe reports the cluster's state: nodes, what runs where, what is
	// queued since when, what finished, and every run the cluster's ledger
	// knows. It must not write anything. cfg is the configuration being
	// reconciled (nil: none is known): the Kubernetes backend renders a
	// service with its flavor's node labels to tell whether someone else
	// changed its objects.
	Observe(ctx context.Context, cfg *berth.Config) (*Observed, error)
	// Apply carries out changes and reports each one's result. It must be
	// idempotent: applying a change that is already in effect changes
	// nothing and reports OutcomeUnchanged. A change that fails does not
	// stop the others. cfg is the configuration the changes come from: the
	// Kubernetes backend renders each team's ResourceQuota and each
	// flavor's node labels from it.
	Apply(ctx context.Context, cfg *berth.Config, changes []Change) ([]Result, error)
}

// Observed is what a cluster reports.
type Observed struct {
	// Snapshot is the scheduler's view: nodes, running runs (with their
	// placements), queued runs with the time each was first seen, and
	// finished runs (succeeded, or failed with no retry left).
	Snapshot berth.Snapshot
	// Runs is every run the cluster's ledger knows, for diffing, status and
	// retries.
	Runs []RunState
	// Prunable counts what the backend deletes at its next Apply though no
	// change asks for it: the storage of runs that ended. The engine
	// applies when it is not zero, so that happens without a commit.
	Prunable int

	// index maps each run to its place in Runs, built on first use (Runs
	// must not change after).
	index map[berth.RunKey]int
}

// Run finds a run.
func (o *Observed) Run(k berth.RunKey) (RunState, bool) {
	if o.index == nil || len(o.index) != len(o.Runs) {
		o.index = make(map[berth.RunKey]int, len(o.Runs))
		for i, r := range o.Runs {
			o.index[r.Key()] = i
		}
	}
	if i, ok := o.index[k]; ok {
		return o.Runs[i], true
	}
	return RunState{}, false
}

// Phase is where a run is in its life.
type Phase string

const (
	PhaseQueued    Phase = "queued"    // waiting for admission
	PhaseAdmitted  Phase = "admitted"  // admitted, starting
	PhaseRunning   Phase = "running"   // running
	PhaseSucceeded Phase = "succeeded" // finished with success
	PhaseFailed    Phase = "failed"    // finished with failure (Reason says why)
	PhasePreempted Phase = "preempted" // stopped for another run; it will be queued again
	PhaseStopped   Phase = "stopped"   // stopped because it left Git or was superseded
)

// Final reports whether the phase is an end of a run. A failed batch or
// training run with retries left is started again by the engine, and a
// service always is; a succeeded or stopped run-once run never is.
func (p Phase) Final() bool { return p == PhaseSucceeded || p == PhaseFailed || p == PhaseStopped }

// Holds reports whether a run in this phase holds capacity.
func (p Phase) Holds() bool { return p == PhaseAdmitted || p == PhaseRunning }

// RunRecord is what every backend records of a run when it queues or
// starts it: which run, of what spec, where, and how often it started.
// RunState embeds it with what is observed now; the local ledger's records
// embed it with their attempts' processes. (The Kubernetes backend keeps
// it in its objects' annotations, and only a slimmer record in its ledger
// ConfigMap, which has 1 MiB for all of a team's runs.)
type RunRecord struct {
	Workload berth.WorkloadID `json:"workload"`
	RunID    string           `json:"runId"`
	Kind     berth.Kind       `json:"kind"`
	// Digest is berth.SpecDigest of the spec the run was started with.
	Digest   string `json:"digest,omitempty"`
	Flavor   string `json:"flavor,omitempty"`
	Priority int    `json:"priority"`
	// Resources is what one pod asked, as started (the workload may have
	// changed or left Git since).
	Resources   berth.Resources   `json:"resources"`
	MaxDuration berth.Duration    `json:"maxDuration,omitempty"`
	Placements  []berth.Placement `json:"placements,omitempty"`
	// Roles are each role's flavor, resources and placements, for a run of
	// a workload with roles (Placements then holds every role's).
	Roles []berth.RolePlacement `json:"roles,omitempty"`
	// QueuedSince is when the run was first seen waiting.
	QueuedSince time.Time `json:"queuedSince,omitzero"`
	// Attempts counts starts; Preemptions how many of them ended in a
	// preemption. A failed run is retried while Failures() <= the
	// workload's retries: a preemption does not use up a retry.
	Attempts    int `json:"attempts"`
	Preemptions int `json:"preemptions,omitempty"`
}

// Key is the run.
func (r RunRecord) Key() berth.RunKey { return berth.RunKey{Workload: r.Workload, RunID: r.RunID} }

// RunState is one run as the cluster reports it: its record, and its
// phase, times and pods as observed.
type RunState struct {
	RunRecord
	Phase Phase `json:"phase"`
	// Reason says why a run failed or stopped ("OOMKilled", "exit code 2",
	// "deadline exceeded", "preempted by vision/train").
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Pods is how many pods (replicas, workers) the current attempt has;
	// PodsRunning how many of them run. A running service with fewer pods
	// running than it has is restarted; a gang that lost a worker fails.
	// Zero Pods means the backend does not count them.
	Pods        int `json:"pods,omitempty"`
	PodsRunning int `json:"podsRunning,omitempty"`
	// PodFailed says why a pod that ended did so, while others run.
	PodFailed string `json:"podFailed,omitempty"`
	// Note is backend detail for people (a log path, a process id, the
	// objects it owns).
	Note string `json:"note,omitempty"`
	// URL is where people reach a running service or notebook (its
	// proxy, ingress host or notebook server), never with a token.
	URL string `json:"url,omitempty"`
	// Over: the run of a kind that keeps running (a notebook stopped for
	// being idle) is over like a finished batch run: it is not started
	// again until its runId changes.
	Over bool `json:"over,omitempty"`
}

// Failures is how many attempts of the run failed: its starts less those
// that ended in a preemption (and less the attempt running now).
func (r RunState) Failures() int {
	n := r.Attempts - r.Preemptions
	switch {
	case r.Phase.Holds(), r.Phase == PhaseSucceeded, r.Phase == PhaseStopped:
		n-- // the latest attempt runs, succeeded, or was stopped
	}
	return max(n, 0)
}

// Op is what a change does.
type Op string

const (
	// OpQueue records a run as waiting (its first-seen time); the
	// Kubernetes backend creates its objects suspended.
	OpQueue Op = "queue"
	// OpStart starts an admitted run at its placements.
	OpStart Op = "start"
	// OpRestart replaces a running service's replicas with the new spec
	// (its digest changed) or restarts one that died.
	OpRestart Op = "restart"
	// OpStop stops a running run (preempted, left Git, superseded, past
	// maxDuration). Preempted runs go back to the queue.
	OpStop Op = "stop"
	// OpForget drops a queued run that no longer wants to run (rejected,
	// waiting on a dependency, or left Git), and the objects it owns.
	OpForget Op = "forget"
)

// Change is one thing Apply must make true.
type Change struct {
	Op       Op
	Workload berth.Workload // the spec (for OpStop of a run that left Git: only Name and Team)
	RunID    string
	Digest   string
	// Decision is the scheduler's decision that asks for the change.
	Decision berth.Decision
	// Phase is what the run becomes after OpStop: PhasePreempted,
	// PhaseStopped, or PhaseFailed (a gang that lost a worker), with Reason.
	Phase  Phase
	Reason string
	// Revision names the commit the change comes from, for labels and
	// annotations ("main@sha1:...").
	Revision string
}

// Key is the run the change is about.
func (c Change) Key() berth.RunKey { return berth.RunKey{Workload: c.Workload.ID(), RunID: c.RunID} }

// Outcome is what applying a change did.
type Outcome string

const (
	OutcomeCreated    Outcome = "created"
	OutcomeConfigured Outcome = "configured"
	OutcomeUnchanged  Outcome = "unchanged"
	OutcomeDeleted    Outcome = "deleted"
	OutcomeFailed     Outcome = "failed"
)

// Result is one change's outcome.
type Result struct {
	Change  Change
	Outcome Outcome
	Err     error
}
