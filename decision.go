package berth

import (
	"strconv"
	"time"
)

// Action is what the scheduler decided for one workload run.
type Action string

const (
	// ActionAdmit: starts now, on Flavor, at Placements.
	ActionAdmit Action = "admit"
	// ActionPreempt: starts now after Victims are stopped.
	ActionPreempt Action = "preempt"
	// ActionQueue: waits, at Position, for Reason.
	ActionQueue Action = "queue"
	// ActionReject: can never start as written (Reason says why).
	ActionReject Action = "reject"
	// ActionKeep: is running and keeps running.
	ActionKeep Action = "keep"
	// ActionPreempted: is running and will be stopped for PreemptedBy.
	ActionPreempted Action = "preempted"
	// ActionStop: is running but has left Git (or its cluster), so it stops.
	ActionStop Action = "stop"
	// ActionWait: is not ready to run: a dependency has not succeeded, or
	// its next cron tick has not come.
	ActionWait Action = "wait"
	// ActionDone: this run already finished; it is not started again.
	ActionDone Action = "done"
)

// ReasonCode names why a workload waits, is rejected or is preempted.
// Programs match on the code; people read the message.
type ReasonCode string

const (
	// Waiting: capacity or quota is in use now.
	ReasonQuota         ReasonCode = "InsufficientQuota"  // the team's unused quota (with borrowing) is short
	ReasonCohort        ReasonCode = "CohortExhausted"    // the team may borrow, but the cohort has nothing left to lend
	ReasonCapacity      ReasonCode = "InsufficientNodes"  // quota allows it, but no node has room for a pod
	ReasonGang          ReasonCode = "GangDoesNotFit"     // not every worker of the gang has a place at once
	ReasonBehindHead    ReasonCode = "ReservedForHead"    // it fits, but would delay the first workload in line (backfill)
	ReasonDependency    ReasonCode = "DependencyPending"  // a dependsOn workload has not succeeded yet
	ReasonSchedule      ReasonCode = "WaitingForSchedule" // a periodic job between ticks
	ReasonNotPreemptive ReasonCode = "CannotPreempt"      // it could fit by preempting, but policy forbids it
	ReasonBackoff       ReasonCode = "RetryBackoff"       // a failed run waits before its next attempt
	ReasonTickWaits     ReasonCode = "TickWaitsForRun"    // a periodic job's tick waits for its running one (concurrency forbid)
	ReasonTicksMissed   ReasonCode = "TicksMissed"        // a periodic job's missed ticks that will not run (catchUp)

	// Never: the spec must change.
	ReasonExceedsQuota     ReasonCode = "ExceedsQuota"       // more than nominal plus borrowing limit
	ReasonNoQuota          ReasonCode = "NoQuotaForFlavor"   // the team has no quota in any flavor that matches
	ReasonNoMatchingNodes  ReasonCode = "NoMatchingNodes"    // no node has the GPU model, MIG profile or labels
	ReasonPodTooLarge      ReasonCode = "PodLargerThanNodes" // one replica or worker is larger than any node
	ReasonExceedsCapacity  ReasonCode = "ExceedsCapacity"    // more pods than the flavor's nodes hold even when idle
	ReasonDependencyFailed ReasonCode = "DependencyFailed"   // a dependsOn workload failed: the chain stops
	ReasonRunFailed        ReasonCode = "RunFailed"          // the run failed and used every retry: bump runId
	ReasonNoCluster        ReasonCode = "NoCluster"          // the workload's flavors belong to no known cluster

	// Preempted.
	ReasonPreemptedInTeam   ReasonCode = "PreemptedWithinTeam"   // by a higher-priority workload of its own team
	ReasonPreemptedReclaim  ReasonCode = "PreemptedToReclaim"    // its team borrowed quota the lender takes back
	ReasonPreemptedBorrow   ReasonCode = "PreemptedByBorrower"   // by a higher-priority borrower (borrowWithinCohort)
	ReasonPreemptedFair     ReasonCode = "PreemptedForFairShare" // its team's share was above the preemptor's
	ReasonRemovedFromGit    ReasonCode = "RemovedFromGit"        // the workload left the repository
	ReasonMaxDurationPassed ReasonCode = "MaxDurationExceeded"   // ran longer than maxDuration
	ReasonSupersededByTick  ReasonCode = "SupersededByTick"      // a newer tick of its periodic job is due (concurrency replace)
	ReasonIdleStopped       ReasonCode = "IdleStopped"           // a notebook idle past its limit was stopped: bump runId
	ReasonNodeLost          ReasonCode = "NodeLost"              // its node is gone or not ready past nodeLostAfter: requeued, no retry used
	ReasonScaledDown        ReasonCode = "ScaledDown"            // an autoscaled service's replica its autoscaler no longer asks for
)

// Never reports whether the code means the spec must change: waiting will
// not help.
func (c ReasonCode) Never() bool {
	switch c {
	case ReasonExceedsQuota, ReasonNoQuota, ReasonNoMatchingNodes, ReasonPodTooLarge, ReasonExceedsCapacity,
		ReasonDependencyFailed, ReasonRunFailed, ReasonNoCluster:
		return true
	}
	return false
}

// Reason is a named reason with a message a person can act on, such as
// "insufficient unused h100 quota in team vision: it asks 8 GPUs; the team
// uses 4 of nominal 8 and has no cohort to borrow from, so it is short by 4
// GPUs".
type Reason struct {
	Code    ReasonCode `json:"code"`
	Message string     `json:"message"`
}

// Victim is a running workload a decision stops. Its reason says why it
// may be preempted; who preempts it is the decision it belongs to (and the
// victim's own decision's PreemptedBy).
type Victim struct {
	Workload     WorkloadID `json:"workload"`
	RunID        string     `json:"runId"`
	Team         string     `json:"team"`
	Priority     int        `json:"priority"`
	PriorityTier string     `json:"priorityTier,omitempty"`
	Reason       Reason     `json:"reason"`
}

// PriorityText is how a priority reads everywhere berth shows one: its
// tier and value, "production (1000)", or the value alone where no tier
// has it.
func PriorityText(tier string, value int) string {
	if tier == "" {
		return strconv.Itoa(value)
	}
	return tier + " (" + strconv.Itoa(value) + ")"
}

// Decision is what happens to one workload run on one cluster.
type Decision struct {
	Workload WorkloadID `json:"workload"`
	RunID    string     `json:"runId"`
	Team     string     `json:"team"`
	Kind     Kind       `json:"kind"`
	Cluster  string     `json:"cluster"`
	Action   Action     `json:"action"`
	// Priority is the numeric priority; PriorityTier its name.
	Priority     int    `json:"priority"`
	PriorityTier string `json:"priorityTier,omitempty"`

	// Admit, preempt, keep: where it runs.
	Flavor string `json:"flavor,omitempty"`
	// Flavors is, where the team's quota has resource groups and the run
	// takes from more than one flavor (Flavor then joins them, "h100+cpu-nodes"),
	// the flavor of each resource it asks, as Kueue's podSetAssignments
	// write it.
	Flavors    map[Resource]string `json:"flavors,omitempty"`
	Placements []Placement         `json:"placements,omitempty"`
	// Borrowed is true when the run uses quota lent by the cohort.
	Borrowed bool `json:"borrowed,omitempty"`
	// Backfilled is true when it starts ahead of a blocked workload it
	// cannot delay.
	Backfilled bool `json:"backfilled,omitempty"`

	// Queue: the 1-based place in line on the cluster, and when it should
	// start if everything running ends at its maxDuration (nil: unknown,
	// e.g. it waits for services that never end).
	Position       int        `json:"position,omitempty"`
	EstimatedStart *time.Time `json:"estimatedStart,omitempty"`

	// Queue, reject, wait, preempted, stop: why.
	Reason *Reason `json:"reason,omitempty"`

	// Preempt: whom it stops. Preempted: by whom.
	Victims     []Victim   `json:"victims,omitempty"`
	PreemptedBy WorkloadID `json:"preemptedBy,omitempty"`

	// Pods is how many replicas or workers start (admit, preempt), for a
	// workload that may start with fewer than it asks (minWorkers);
	// PodsAsked and MinPods are what it asks and the fewest it accepts.
	// All three are zero for a workload without a minimum.
	Pods      int `json:"pods,omitempty"`
	PodsAsked int `json:"podsAsked,omitempty"`
	MinPods   int `json:"minPods,omitempty"`

	// Roles says, for a workload with roles, where each role runs (admit,
	// preempt, keep) or what it asks (queue): its flavor, pods and
	// placements. Flavor and Placements then hold the first role's flavor
	// and every role's placements, in role order.
	Roles []RolePlacement `json:"roles,omitempty"`

	// GPUs is the GPU demand of the whole run (pods x GPUs, fractions and MIG
	// slices counted as they are). MIG is the MIG profile each pod asks
	// for, if any: then GPUs counts slices of that profile.
	GPUs float64 `json:"gpus"`
	MIG  string  `json:"mig,omitempty"`
	// Mounts is the storage the run mounts (its checkpoints and volumes),
	// as the cluster backs it.
	Mounts []Mount `json:"mounts,omitempty"`
	// Since is when the run started (keep) or was first seen waiting.
	Since time.Time `json:"since,omitzero"`
	// ScaleRoom says, for an autoscaled service's run that is admitted or
	// kept, how far it may scale inside its team's quota after this plan:
	// "may scale to 4 replicas: 4 GPUs, within nominal".
	ScaleRoom string `json:"scaleRoom,omitempty"`
}

// Nodes counts the distinct nodes of the placements.
func (d Decision) Nodes() int {
	seen := map[string]bool{}
	for _, p := range d.Placements {
		seen[p.Node] = true
	}
	return len(seen)
}

// Starts reports whether the decision starts the run now.
func (d Decision) Starts() bool { return d.Action == ActionAdmit || d.Action == ActionPreempt }

// QuotaUse is one team's use of one resource of one flavor, before and
// after the plan.
type QuotaUse struct {
	Team     string   `json:"team"`
	Flavor   string   `json:"flavor"`
	Resource Resource `json:"resource"`
	Nominal  int64    `json:"nominal"`
	// BorrowingLimit is nil when the team may borrow without limit.
	BorrowingLimit *int64 `json:"borrowingLimit,omitempty"`
	UsedBefore     int64  `json:"usedBefore"`
	UsedAfter      int64  `json:"usedAfter"`
	// Borrowed is what is used above nominal.
	BorrowedBefore int64 `json:"borrowedBefore"`
	BorrowedAfter  int64 `json:"borrowedAfter"`
}

// Plan is the scheduler's output for one cluster: a decision for every
// workload run, sorted by workload, and the quota arithmetic per team.
//
// A plan's decisions are shared: the scheduler's cache hands the next
// plan the same *Decision for a run whose decision did not change (10,000
// running runs are not copied into each plan). Read them; change a copy.
type Plan struct {
	Cluster   string      `json:"cluster"`
	Time      time.Time   `json:"time"`
	Placement string      `json:"placement"`
	Decisions []*Decision `json:"decisions"`
	Quota     []QuotaUse  `json:"quota"`
}

// Decision returns the decision for a workload, or false.
func (p *Plan) Decision(id WorkloadID) (Decision, bool) {
	for _, d := range p.Decisions {
		if d.Workload == id {
			return *d, true
		}
	}
	return Decision{}, false
}
