package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

// status --team keeps one team's rows everywhere the answer has them, and
// leaves the serve's answer itself alone.
func TestStatusOfTeam(t *testing.T) {
	plan := &berth.Plan{Cluster: "box",
		Decisions: []*berth.Decision{{Workload: "a/x", Team: "a"}, {Workload: "b/y", Team: "b"}},
		Quota:     []berth.QuotaUse{{Team: "a", Flavor: "h100"}, {Team: "b", Flavor: "h100"}}}
	resp := statusResponse{
		Revision: "main@sha1:c1",
		Clusters: []clusterStatus{{Name: "box",
			Workloads: []status.WorkloadStatus{{Workload: "a/x", Team: "a"}, {Workload: "b/y", Team: "b"}},
			Runs:      []reconcile.RunState{{RunRecord: reconcile.RunRecord{Workload: "a/x", RunID: "1"}}, {RunRecord: reconcile.RunRecord{Workload: "b/y", RunID: "1"}}}}},
		Plans: map[string]*berth.Plan{"box": plan},
		Usage: &usageResponse{Teams: []history.TeamUsage{{Team: "a"}, {Team: "b"}},
			Rows: []usageRow{{UsageKey: history.UsageKey{Team: "a"}}, {UsageKey: history.UsageKey{Team: "b"}}}},
	}
	got := statusOfTeam(resp, "b")
	want := statusResponse{
		Revision: "main@sha1:c1",
		Clusters: []clusterStatus{{Name: "box",
			Workloads: []status.WorkloadStatus{{Workload: "b/y", Team: "b"}},
			Runs:      []reconcile.RunState{{RunRecord: reconcile.RunRecord{Workload: "b/y", RunID: "1"}}}}},
		Plans: map[string]*berth.Plan{"box": {Cluster: "box",
			Decisions: []*berth.Decision{{Workload: "b/y", Team: "b"}},
			Quota:     []berth.QuotaUse{{Team: "b", Flavor: "h100"}}}},
		Usage: &usageResponse{Teams: []history.TeamUsage{{Team: "b"}},
			Rows: []usageRow{{UsageKey: history.UsageKey{Team: "b"}}}},
	}
	quantities := cmp.Comparer(func(a, b berth.Quantity) bool { return a.Milli() == b.Milli() })
	if d := cmp.Diff(want, got, quantities); d != "" {
		t.Errorf("status of team b (-want +got):\n%s", d)
	}
	if len(resp.Clusters[0].Workloads) != 2 || len(plan.Decisions) != 2 || len(resp.Usage.Teams) != 2 {
		t.Error("filtering changed the answer it filtered")
	}
}
