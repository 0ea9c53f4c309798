package schedule

import (
	"maps"
	"slices"

	"github.com/berth-gpu/berth"
)

// The equalities a Cache finds changes with. They compare every field
// that a decision reads (a test sets each field in turn and checks it is
// seen, or listed in notScheduled), so that a field added later cannot be
// forgotten. Times compare with ==, not Equal: a decision copies them, so
// the same instant in another location is a change of output.

// notScheduled are the fields of a workload that no decision reads: what
// runs (image, command, env, ports, health), how a service's
// change is rolled out and how it is reached (rollout, expose), when an
// idle notebook is stopped (the backend watches it), how often a
// failed run is retried (the engine's normalization reads it, before the
// snapshot), and where it is written. A change of only these keeps the
// workload's state. Checkpoint and volumes are compared: a decision says
// what its run mounts.
var notScheduled = []string{"Image", "Command", "Args", "Env", "Retries", "Ports", "Health", "Rollout", "Expose", "Idle", "Pos"}

// notScheduledRole are the fields of a role that no decision reads.
var notScheduledRole = []string{"Command", "Args", "Env"}

func sameWorkload(a, b *berth.Workload) bool {
	return a.Name == b.Name && a.Team == b.Team && a.Kind == b.Kind && a.Priority == b.Priority &&
		a.Resources == b.Resources && a.Replicas == b.Replicas && a.Workers == b.Workers &&
		a.MinWorkers == b.MinWorkers && a.Parallelism == b.Parallelism && a.Completions == b.Completions &&
		a.MaxDuration == b.MaxDuration && a.Schedule == b.Schedule && a.RunID == b.RunID &&
		a.CatchUp == b.CatchUp && a.CatchUpLimit == b.CatchUpLimit && a.Concurrency == b.Concurrency &&
		samePtr(a.Autoscale, b.Autoscale) && samePtr(a.Checkpoint, b.Checkpoint) &&
		maps.Equal(a.Volumes, b.Volumes) && (a.Volumes == nil) == (b.Volumes == nil) &&
		samePtr(a.Outputs, b.Outputs) && slices.Equal(a.Inputs, b.Inputs) && (a.Inputs == nil) == (b.Inputs == nil) &&
		slices.Equal(a.DependsOn, b.DependsOn) && (a.DependsOn == nil) == (b.DependsOn == nil) &&
		maps.EqualFunc(a.Roles, b.Roles, sameRole) && (a.Roles == nil) == (b.Roles == nil)
}

func samePtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sameRole(a, b berth.Role) bool {
	return a.Name == b.Name && a.Count == b.Count && a.MinCount == b.MinCount && a.Resources == b.Resources &&
		maps.Equal(a.NodeSelector, b.NodeSelector) && (a.NodeSelector == nil) == (b.NodeSelector == nil)
}

func sameRunning(a, b *berth.RunningWorkload) bool {
	return a.Workload == b.Workload && a.RunID == b.RunID && a.Kind == b.Kind && a.Priority == b.Priority &&
		a.Flavor == b.Flavor && a.Since == b.Since && a.QueuedSince == b.QueuedSince &&
		a.Resources == b.Resources && slices.EqualFunc(a.Placements, b.Placements, samePlacement) &&
		a.MaxDuration == b.MaxDuration && slices.EqualFunc(a.Roles, b.Roles, sameRolePlacement) &&
		(a.Placements == nil) == (b.Placements == nil) && (a.Roles == nil) == (b.Roles == nil)
}

func samePlacement(a, b berth.Placement) bool {
	return a.Node == b.Node && slices.Equal(a.GPUs, b.GPUs) && a.GPUFraction == b.GPUFraction &&
		slices.Equal(a.MIG, b.MIG) && (a.GPUs == nil) == (b.GPUs == nil) && (a.MIG == nil) == (b.MIG == nil)
}

func sameRolePlacement(a, b berth.RolePlacement) bool {
	return a.Role == b.Role && a.Flavor == b.Flavor && a.Resources == b.Resources &&
		slices.EqualFunc(a.Placements, b.Placements, samePlacement) && a.PodsAsked == b.PodsAsked &&
		a.MinPods == b.MinPods && (a.Placements == nil) == (b.Placements == nil)
}

func sameNode(a, b berth.Node) bool {
	return a.Name == b.Name && maps.Equal(a.Labels, b.Labels) && a.Ready == b.Ready &&
		a.Unschedulable == b.Unschedulable && a.CPU == b.CPU && a.Memory == b.Memory && a.GPUs == b.GPUs &&
		a.GPUModel == b.GPUModel && slices.Equal(a.MIG, b.MIG)
}
