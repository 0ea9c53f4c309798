package cue_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
)

// groupsRepo is a platform with a CPU pool and two GPU flavors, and team
// vision whose resource groups are src (the value of resourceGroups).
func groupsRepo(src string) *repoBuilder {
	return newRepo().file("platform/platform.cue", `package platform

clusters: box: {}
flavors: {
	"cpu-nodes": nodeLabels: pool: "general"
	h100: {gpuModel: "H100", nodeLabels: {}}
	a100: {gpuModel: "A100", nodeLabels: {}}
}
`).file("teams/vision/team.cue", `package vision

teams: vision: {
	owners: ["@ana"]
	resourceGroups: `+src+`
}
`)
}

func TestResourceGroups(t *testing.T) {
	cfg := mustLoad(t, groupsRepo(`[
		{coveredResources: ["cpu", "memory"], flavors: [{name: "cpu-nodes", resources: [
			{name: "cpu", nominalQuota: 64}, {name: "memory", nominalQuota: "256Gi"}]}]},
		{coveredResources: ["gpu"], flavors: [
			{name: "h100", resources: [{name: "gpu", nominalQuota: 8, borrowingLimit: 0}]},
			{name: "a100", resources: [{name: "gpu", nominalQuota: 4, lendingLimit: 2}]}]},
	]`).fs(), cue.Options{})
	team := cfg.Teams["vision"]
	var got []string
	for _, q := range team.Quotas() {
		s := q.Flavor
		for _, r := range berth.ResourceNames {
			if rq := q.Resource(r); rq != nil {
				s += fmt.Sprintf(" %s=%s", r, rq.Nominal)
				if rq.BorrowingLimit != nil {
					s += "/b" + rq.BorrowingLimit.String()
				}
				if rq.LendingLimit != nil {
					s += "/l" + rq.LendingLimit.String()
				}
			}
		}
		got = append(got, s)
	}
	want := "cpu-nodes cpu=64 memory=256Gi; h100 gpu=8/b0; a100 gpu=4/l2"
	if strings.Join(got, "; ") != want {
		t.Errorf("quotas: %s\nwant    %s", strings.Join(got, "; "), want)
	}
}

// TestResourceGroupRules: Kueue's rules for resource groups, each error at
// the file, line and column of what breaks it (and of what it clashes with).
func TestResourceGroupRules(t *testing.T) {
	for _, tc := range []struct {
		name, groups string
		path, msg    string
		lines        []int // team.cue lines of the positions
	}{
		{"resource in two groups", `[
	{coveredResources: ["cpu"], flavors: [{name: "cpu-nodes", resources: [{name: "cpu", nominalQuota: 1}]}]},
	{coveredResources: ["gpu", "cpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 1}, {name: "cpu", nominalQuota: 1}]}]},
]`, "teams.vision.resourceGroups.1.coveredResources.1", "resource cpu is covered by more than one resource group", []int{6, 7}},
		{"flavor in two groups", `[
	{coveredResources: ["cpu"], flavors: [{name: "h100", resources: [{name: "cpu", nominalQuota: 1}]}]},
	{coveredResources: ["gpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 1}]}]},
]`, "teams.vision.resourceGroups.1.flavors.0.name", "flavor h100 is listed twice in the resource groups", []int{6, 7}},
		{"flavor lacks a covered resource", `[
	{coveredResources: ["cpu", "memory"], flavors: [{name: "cpu-nodes", resources: [{name: "cpu", nominalQuota: 1}]}]},
]`, "teams.vision.resourceGroups.0.flavors.0.name", "flavor cpu-nodes gives no quota for memory, which its group covers", []int{6}},
		{"flavor gives an uncovered resource", `[
	{coveredResources: ["gpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 1}, {name: "cpu", nominalQuota: 1}]}]},
]`, "teams.vision.resourceGroups.0.flavors.0.resources.1.name", "flavor h100 gives resource cpu, which its group does not cover (gpu)", []int{6}},
		{"unknown flavor", `[
	{coveredResources: ["gpu"], flavors: [{name: "h200", resources: [{name: "gpu", nominalQuota: 1}]}]},
]`, "teams.vision.resourceGroups.0.flavors.0.name", `flavor "h200" does not exist`, []int{6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := loadErrors(t, groupsRepo(tc.groups).fs(), cue.Options{})
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
			}
			e := errs[0]
			if e.Path != tc.path || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("got %s: %s\nwant %s: %s", e.Path, e.Message, tc.path, tc.msg)
			}
			var lines []int
			for _, p := range e.Positions {
				if !strings.HasSuffix(p.File, "teams/vision/team.cue") {
					t.Errorf("position %v: want teams/vision/team.cue", p)
				}
				lines = append(lines, p.Line)
			}
			if fmt.Sprint(lines) != fmt.Sprint(tc.lines) {
				t.Errorf("lines %v, want %v (%v)", lines, tc.lines, e)
			}
		})
	}
}

func TestResourceGroupsAndQuota(t *testing.T) {
	errs := loadErrors(t, groupsRepo(`[{coveredResources: ["gpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 1}]}]}]
	quota: [{flavor: "a100", gpu: nominal: 1}]`).fs(), cue.Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "a team has quota or resourceGroups, not both") || len(errs[0].Positions) != 2 {
		t.Errorf("got %v, want one error with two positions: quota or resourceGroups, not both", errs)
	}
}
