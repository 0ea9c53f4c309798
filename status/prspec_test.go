package status_test

import (
	"slices"
	"testing"

	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/status"
)

// TestChangedPriorityReadsAsTierAndValue: a reviewer sees what a priority
// change means, "normal (100) -> production (1000)", not two names.
func TestChangedPriorityReadsAsTierAndValue(t *testing.T) {
	base := baseBuilder().Obj()
	head := baseBuilder().Workload(build.Workload("nlp", "sweep").GPUs(4).Priority("production").MaxDuration("6h")).Obj()
	changes := status.ChangedWorkloads(base, head)
	if len(changes) != 1 {
		t.Fatalf("changes: %+v", changes)
	}
	want := "priority low (10) -> production (1000)"
	if !slices.Contains(changes[0].Lines, want) {
		t.Errorf("lines %q do not say %q", changes[0].Lines, want)
	}
}
