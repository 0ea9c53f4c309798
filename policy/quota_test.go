package policy_test

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/policy"
)

// TestJoinedFlavors: a pod that takes from two resource groups
// ("cpu-nodes+h100") is charged and checked per flavor and resource: its
// GPUs on h100, its cpu and memory on cpu-nodes, and nothing else.
func TestJoinedFlavors(t *testing.T) {
	cfg := build.Config().CPUFlavor("cpu-nodes").GPUFlavor("h100", "H100").
		Team(build.Team("vision").
			ResourceGroup(build.In("cpu-nodes", build.CPU("8"), build.Memory("64Gi"))).
			ResourceGroup(build.In("h100", build.GPU("8")))).Obj()
	q := policy.NewQuotas(cfg, []string{"cpu-nodes", "h100"})
	const joined = "cpu-nodes+h100"
	pod := policy.Demand{8000, 4000, 1 << 30}
	if ok, sf := q.Fits("vision", joined, pod); !ok {
		t.Fatalf("8 GPUs and 4 cpu do not fit nominal 8 and 8: %+v", sf)
	}
	q.Add("vision", joined, pod)
	for _, tc := range []struct {
		flavor string
		r      berth.Resource
		want   int64
	}{
		{"h100", berth.ResourceGPU, 8000}, {"cpu-nodes", berth.ResourceCPU, 4000},
		{"cpu-nodes", berth.ResourceMemory, 1 << 30}, {"h100", berth.ResourceCPU, 0}, {"cpu-nodes", berth.ResourceGPU, 0},
	} {
		if got := q.Used("vision", tc.flavor, tc.r); got != tc.want {
			t.Errorf("%s %s used %d, want %d", tc.flavor, tc.r, got, tc.want)
		}
	}
	// Another pod of 1 cpu and no GPU fits; one more GPU does not, and the
	// shortfall names the GPUs.
	if ok, _ := q.Fits("vision", joined, policy.Demand{0, 1000, 0}); !ok {
		t.Error("1 cpu more does not fit 4 of 8")
	}
	ok, sf := q.Fits("vision", joined, policy.Demand{1000, 1000, 0})
	if ok || sf.Resource != berth.ResourceGPU || sf.Need != 1000 {
		t.Errorf("one GPU more: fits %v, %+v; want short of 1 GPU", ok, sf)
	}
	if f := q.FlavorOf("vision", joined, berth.ResourceMemory); f != "cpu-nodes" {
		t.Errorf("memory of %s is from %q, want cpu-nodes", joined, f)
	}
	q.Remove("vision", joined, pod)
	if got := q.Used("vision", "h100", berth.ResourceGPU) + q.Used("vision", "cpu-nodes", berth.ResourceCPU); got != 0 {
		t.Errorf("after removing the pod, %d still used", got)
	}
}
