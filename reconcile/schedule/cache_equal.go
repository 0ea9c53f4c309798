package schedule

import (
	"maps"
	"slices"

	"github.com/berth-gpu/berth"
)

// The equalities a Cache finds changes with. They compare every field
// (a test sets each field in turn and checks it is seen), so that a field
// added later cannot be forgotten; only a workload's position in its file
// is left out, which no decision reads. Times compare with ==, not Equal:
// a decision copies them, so the same instant in another location is a
// change of output.

func sameWorkload(a, b *berth.Workload) bool {
	return a.Name == b.Name && a.Team == b.Team && a.Kind == b.Kind && a.Priority == b.Priority &&
		a.Image == b.Image && slices.Equal(a.Command, b.Command) && slices.Equal(a.Args, b.Args) &&
		maps.Equal(a.Env, b.Env) && a.Resources == b.Resources && a.Replicas == b.Replicas &&
		a.Workers == b.Workers && a.MinWorkers == b.MinWorkers && a.Parallelism == b.Parallelism &&
		a.Completions == b.Completions && a.MaxDuration == b.MaxDuration && a.Retries == b.Retries &&
		samePtr(a.Checkpoint, b.Checkpoint) && a.Schedule == b.Schedule && slices.Equal(a.DependsOn, b.DependsOn) &&
		a.RunID == b.RunID && slices.Equal(a.Ports, b.Ports) && samePtr(a.Health, b.Health) &&
		maps.EqualFunc(a.Roles, b.Roles, sameRole) &&
		(a.Command == nil) == (b.Command == nil) && (a.Args == nil) == (b.Args == nil) &&
		(a.DependsOn == nil) == (b.DependsOn == nil) && (a.Ports == nil) == (b.Ports == nil) &&
		(a.Env == nil) == (b.Env == nil) && (a.Roles == nil) == (b.Roles == nil)
}

func sameRole(a, b berth.Role) bool {
	return a.Name == b.Name && a.Count == b.Count && a.MinCount == b.MinCount && a.Resources == b.Resources &&
		maps.Equal(a.NodeSelector, b.NodeSelector) && slices.Equal(a.Command, b.Command) &&
		slices.Equal(a.Args, b.Args) && maps.Equal(a.Env, b.Env)
}

func samePtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
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
