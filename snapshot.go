package berth

import (
	"cmp"
	"slices"
	"time"
)

// Snapshot is a cluster's observed state at one time: its nodes, what runs
// on them, and what waits. `berth snapshot` writes one; `berth plan
// --snapshot` reads one; the schema's #Snapshot defines the file.
type Snapshot struct {
	Cluster string            `json:"cluster"`
	Time    time.Time         `json:"time"`
	Nodes   []Node            `json:"nodes"`
	Running []RunningWorkload `json:"running"`
	Queue   []QueuedWorkload  `json:"queue"`
	// Finished runs of run-once workloads: they are not started again, and
	// their success or failure decides whether dependents may start.
	Finished []FinishedRun `json:"finished"`
	// Scale is, per autoscaled service run, how many replicas its
	// autoscaler asks for now: each replica above the minimum is a run the
	// scheduler admits within quota or queues.
	Scale []ScaleWant `json:"scale,omitempty"`
}

// ScaleWant is how many replicas an autoscaler asks of a service run.
type ScaleWant struct {
	Workload WorkloadID `json:"workload"`
	RunID    string     `json:"runId"`
	Replicas int        `json:"replicas"`
}

// ScaleOf is how many replicas the snapshot says an autoscaler asks of a
// service run; ok is false when it says nothing.
func (s *Snapshot) ScaleOf(k RunKey) (int, bool) {
	for _, sw := range s.Scale {
		if sw.Workload == k.Workload && sw.RunID == k.RunID {
			return sw.Replicas, true
		}
	}
	return 0, false
}

// Sort puts every list in a canonical order so a snapshot's encoding does
// not depend on the order it was observed in.
func (s *Snapshot) Sort() {
	slices.SortFunc(s.Nodes, cmpNode)
	slices.SortFunc(s.Running, cmpRunning)
	slices.SortFunc(s.Queue, cmpQueued)
	slices.SortFunc(s.Finished, cmpFinished)
	slices.SortFunc(s.Scale, cmpScale)
}

// Sorted reports whether every list is in Sort's order already, which
// costs a pass over each, not a sort.
func (s *Snapshot) Sorted() bool {
	return slices.IsSortedFunc(s.Nodes, cmpNode) && runningSorted(s.Running) &&
		slices.IsSortedFunc(s.Queue, cmpQueued) && slices.IsSortedFunc(s.Finished, cmpFinished) &&
		slices.IsSortedFunc(s.Scale, cmpScale)
}

// runningSorted is slices.IsSortedFunc(rs, cmpRunning) without copying
// each run (a large struct; a cluster may run 10,000) into the comparison.
func runningSorted(rs []RunningWorkload) bool {
	for i := 1; i < len(rs); i++ {
		a, b := &rs[i-1], &rs[i]
		if cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID)) > 0 {
			return false
		}
	}
	return true
}

func cmpNode(a, b Node) int { return cmp.Compare(a.Name, b.Name) }

func cmpRunning(a, b RunningWorkload) int {
	return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID))
}

func cmpQueued(a, b QueuedWorkload) int {
	return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID))
}

func cmpFinished(a, b FinishedRun) int {
	return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID))
}

func cmpScale(a, b ScaleWant) int {
	return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID))
}

// Node is one machine.
type Node struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Ready  bool              `json:"ready"`
	// NotReadySince is when a node that is not Ready became so (zero:
	// ready, or not known). Past the cluster's NodeLostAfter its runs are
	// requeued.
	NotReadySince time.Time   `json:"notReadySince,omitzero"`
	Unschedulable bool        `json:"unschedulable"`
	CPU           Quantity    `json:"cpu"`
	Memory        Quantity    `json:"memory"`
	GPUs          int         `json:"gpus"`
	GPUModel      string      `json:"gpuModel,omitempty"`
	MIG           []MIGSlices `json:"mig"`
}

// MIGSlices are Count slices of one profile carved out of GPU.
type MIGSlices struct {
	GPU     int    `json:"gpu"`
	Profile string `json:"profile"`
	Count   int    `json:"count"`
}

// Placement is where one replica or worker runs.
type Placement struct {
	Node        string     `json:"node"`
	GPUs        []int      `json:"gpus"`
	GPUFraction float64    `json:"gpuFraction,omitempty"`
	MIG         []MIGSlice `json:"mig"`
}

// MIGSlice is one MIG slice of a GPU.
type MIGSlice struct {
	GPU     int    `json:"gpu"`
	Profile string `json:"profile"`
}

// RunningWorkload is a run that holds capacity now. It carries its own
// resources because the workload may have left Git since it started.
type RunningWorkload struct {
	Workload WorkloadID `json:"workload"`
	RunID    string     `json:"runId"`
	Kind     Kind       `json:"kind"`
	Priority int        `json:"priority"`
	Flavor   string     `json:"flavor"`
	Since    time.Time  `json:"since"`
	// QueuedSince is when the run was first seen waiting (before it
	// started, or before it was preempted and started again): what
	// "newer" means when equal priorities preempt each other. Zero: Since.
	QueuedSince time.Time   `json:"queuedSince,omitzero"`
	Resources   Resources   `json:"resources"`
	Placements  []Placement `json:"placements"`
	MaxDuration Duration    `json:"maxDuration,omitempty"`
	// Roles are the pod sets of a run of a workload with roles: each
	// role's flavor, resources and placements. Flavor is then the first
	// role's, and Resources and Placements are empty.
	Roles []RolePlacement `json:"roles,omitempty"`
}

// RolePlacement is one role of a run of a workload with roles: the flavor
// its pods take, what each asks, and where each runs (one placement per
// pod).
type RolePlacement struct {
	Role       string      `json:"role"`
	Flavor     string      `json:"flavor"`
	Resources  Resources   `json:"resources"`
	Placements []Placement `json:"placements"`
	// PodsAsked and MinPods are what the role asks and the fewest it
	// accepts, in a decision about a role with a minimum (zero otherwise).
	PodsAsked int `json:"podsAsked,omitempty"`
	MinPods   int `json:"minPods,omitempty"`
}

// GPUMilli is the GPU demand of the role's pods, in thousandths.
func (r RolePlacement) GPUMilli() int64 {
	return r.Resources.GPUMilli() * int64(len(r.Placements))
}

// QueuedWorkload is a workload waiting for capacity, and when berth first
// saw it waiting: equal priorities are served in that order.
type QueuedWorkload struct {
	Workload WorkloadID `json:"workload"`
	// RunID is the run waiting (a periodic job's tick has its own); empty
	// means the workload's current runId.
	RunID string    `json:"runId,omitempty"`
	Since time.Time `json:"since"`
	// Failures counts the attempts of this run that failed (a preemption
	// is not a failure). A run that failed waits out its backoff after
	// FailedAt before its next attempt; Failure says why it failed.
	Failures int       `json:"failures,omitempty"`
	FailedAt time.Time `json:"failedAt,omitzero"`
	Failure  string    `json:"failure,omitempty"`
}

// FinishedRun is a run that ended.
type FinishedRun struct {
	Workload  WorkloadID `json:"workload"`
	RunID     string     `json:"runId"`
	Succeeded bool       `json:"succeeded"`
	// Reason says why a failed run failed (OOM, deadline, ...).
	Reason string `json:"reason,omitempty"`
	// Attempts is how many attempts the run took.
	Attempts int       `json:"attempts,omitempty"`
	At       time.Time `json:"at"`
}
