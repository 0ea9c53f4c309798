package status_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/status"
)

// TestStatusShowsAMIGSliceAsItsProfile: `berth status` says what a run
// holds, "1g.10gb", not "1" GPU.
func TestStatusShowsAMIGSliceAsItsProfile(t *testing.T) {
	plan := &berth.Plan{Cluster: "box", Decisions: []*berth.Decision{
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

// TestStatusListsURLs: `berth status` lists where the running services
// and notebooks are reached, below the table, and only theirs: a run that
// no longer runs has no URL, and a notebook's line says how its owner
// gets its token.
func TestStatusListsURLs(t *testing.T) {
	plan := &berth.Plan{Cluster: "box", Decisions: []*berth.Decision{
		{Workload: "serving/chat-api", RunID: "1", Kind: berth.KindService, Action: berth.ActionKeep, Since: build.T0},
		{Workload: "vision/explore", RunID: "1", Kind: berth.KindNotebook, Action: berth.ActionKeep, GPUs: 1, Since: build.T0},
		{Workload: "vision/label", RunID: "1", Kind: berth.KindNotebook, Action: berth.ActionDone, GPUs: 1, Since: build.T0,
			Reason: &berth.Reason{Code: berth.ReasonIdleStopped, Message: "idle for 2h0m0s (limit 2h): stopped and its GPUs freed; bump runId to start it again"}},
		{Workload: "vision/train", RunID: "1", Kind: berth.KindTraining, Action: berth.ActionKeep, GPUs: 2, Since: build.T0},
	}}
	runs := []reconcile.RunState{
		{RunRecord: reconcile.RunRecord{Workload: "serving/chat-api", RunID: "1"}, Phase: reconcile.PhaseRunning, URL: "http://127.0.0.1:8480/"},
		{RunRecord: reconcile.RunRecord{Workload: "vision/explore", RunID: "1"}, Phase: reconcile.PhaseRunning, URL: "http://127.0.0.1:41234/"},
		{RunRecord: reconcile.RunRecord{Workload: "vision/label", RunID: "1"}, Phase: reconcile.PhaseStopped, URL: "http://127.0.0.1:41235/",
			Reason: "idle for 2h0m0s (limit 2h): stopped and its GPUs freed", FinishedAt: build.T0.Add(3 * time.Hour)},
		{RunRecord: reconcile.RunRecord{Workload: "vision/train", RunID: "1"}, Phase: reconcile.PhaseRunning},
	}
	var b strings.Builder
	if err := status.WriteWorkloadsText(&b, status.Workloads("box", plan, runs), time.Time{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "status-urls.golden", b.String())
}

// writeCounter counts the writes that reach it: each is a system call on
// a terminal or a pipe.
type writeCounter struct {
	writes, bytes int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

// TestStatusTextWritesThroughABuffer: `berth status` of a thousand runs
// reaches the terminal in a write per 64 KiB, not a write per cell and
// padding (the plan text's writer cost a second of CPU at 50,000 lines).
func TestStatusTextWritesThroughABuffer(t *testing.T) {
	plan := &berth.Plan{Cluster: "box"}
	for i := range 1000 {
		plan.Decisions = append(plan.Decisions, &berth.Decision{Workload: berth.WorkloadID(fmt.Sprintf("vision/w%04d", i)),
			RunID: "1", Kind: berth.KindService, Action: berth.ActionQueue, GPUs: 1, Position: i + 1})
	}
	var c writeCounter
	if err := status.WriteWorkloadsText(&c, status.Workloads("box", plan, nil), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if most := c.bytes/(64<<10) + 1; c.writes > most {
		t.Errorf("%d bytes in %d writes, want at most %d", c.bytes, c.writes, most)
	}
}
