package status_test

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/status"
)

// TestStatusShowsAMIGSliceAsItsProfile: `berth status` says what a run
// holds, "1g.10gb", not "1" GPU.
func TestStatusShowsAMIGSliceAsItsProfile(t *testing.T) {
	plan := &berth.Plan{Cluster: "box", Decisions: []berth.Decision{
		{Workload: "vision/notebook", RunID: "1", Kind: berth.KindNotebook, Action: berth.ActionAdmit, GPUs: 1, MIG: "1g.10gb",
			Flavor: "h100-1g", Placements: []berth.Placement{{Node: "box", MIG: []berth.MIGSlice{{GPU: 7, Profile: "1g.10gb"}}}}},
		{Workload: "vision/sweep", RunID: "1", Kind: berth.KindBatch, Action: berth.ActionQueue, GPUs: 3, MIG: "1g.10gb", Position: 1},
		{Workload: "vision/train", RunID: "1", Kind: berth.KindTraining, Action: berth.ActionQueue, GPUs: 2, Position: 2},
	}}
	var b strings.Builder
	if err := status.WriteWorkloadsText(&b, status.Workloads("box", plan, nil), time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admitted   1g.10gb", "queued #1  3 x 1g.10gb", "queued #2  2 "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status does not show %q:\n%s", want, b.String())
		}
	}
}
