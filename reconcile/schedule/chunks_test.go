package schedule_test

import (
	"encoding/json"
	"testing"

	"github.com/berth-gpu/berth/reconcile/schedule"
)

// TestChunkedPlanIsSerialPlan: preparing the workloads and the requests
// in a chunk per core decides exactly what one pass does: the same plan,
// decision for decision, with running runs, borrowing and preemption in
// play, for a first plan and for a cache's next cycle.
func TestChunkedPlanIsSerialPlan(t *testing.T) {
	cfg, snap := bigCase(40, 60, 3000, 400)
	plan := func(chunkMin int) string {
		defer schedule.SetChunkMin(chunkMin)()
		c := schedule.NewCache()
		first := c.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		next := c.Schedule(schedule.Input{Config: cfg, Snapshot: snap}, schedule.Options{})
		b, err := json.Marshal([]any{first, next})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	serial, chunked := plan(1<<30), plan(8)
	if serial != chunked {
		t.Errorf("the chunked plan differs from the serial one (%d and %d bytes)", len(serial), len(chunked))
	}
	if len(serial) < 100000 {
		t.Errorf("the plan is too small to show anything: %d bytes", len(serial))
	}
}
