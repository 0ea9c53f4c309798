package schedule_test

import (
	"testing"

	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// TestPaperBaselines places one pod beside others on three 8-GPU nodes, as
// the FGD paper's artifact scores each baseline:
//   - node a: two 1-GPU pods and a share pod on half of a third GPU (5.5
//     GPUs free, pods of two kinds);
//   - node b: one 4-GPU pod (4 GPUs free, one kind);
//   - node c: idle.
func TestPaperBaselines(t *testing.T) {
	one := build.Workload("s", "one").GPUs(1).CPU("1")
	one2 := build.Workload("s", "one2").GPUs(1).CPU("1")
	share := build.Workload("s", "share").Fraction(0.5).CPU("1")
	four := build.Workload("s", "four").GPUs(4).CPU("1")
	snap := build.Snapshot().Node(
		build.Node("a").GPUs(8, "H100").CPU("64"), build.Node("b").GPUs(8, "H100").CPU("64"),
		build.Node("c").GPUs(8, "H100").CPU("64")).
		Running(build.Running(one, "h100", 100).On("a", 0), build.Running(one2, "h100", 100).On("a", 1),
			build.Running(share, "h100", 100).OnFraction("a", 2, 0.5), build.Running(four, "h100", 100).On("b", 0, 1, 2, 3))
	for _, tc := range []struct {
		name, policy string
		pod          *build.WorkloadBuilder
		want         string
	}{
		// The least left after it, 0.5 cpu/128 + 0.5 GPUs/8: b (62 cores
		// and 3 GPUs: 0.43) before a (60 and 4.5: 0.52).
		{"best fit takes the least left", schedule.PlacementPaperBestFit, build.Workload("s", "new").GPUs(1).CPU("1"), "b"},
		// The smallest dot product of free and asked: b (4 GPUs free).
		{"dot product takes the least free", schedule.PlacementPaperDotProd, build.Workload("s", "new").GPUs(2).CPU("1"), "b"},
		// A share pod: a GPU already shared first (a).
		{"packing shares a used GPU", schedule.PlacementPaperPacking, build.Workload("s", "new").Fraction(0.25).CPU("1"), "a"},
		// Two whole GPUs on a node in use: score 50-2 on a and b alike, a
		// first in order; the idle c scores 33-8.
		{"packing prefers a node in use", schedule.PlacementPaperPacking, build.Workload("s", "new").GPUs(2).CPU("1"), "a"},
		// A 4-GPU pod: b holds only 4-GPU pods.
		{"clustering groups like pods", schedule.PlacementPaperClustering, build.Workload("s", "new").GPUs(4).CPU("1"), "b"},
		// A 2-GPU pod: no node holds 2-GPU pods; the idle c beats a and
		// b, which hold others.
		{"clustering takes an idle node next", schedule.PlacementPaperClustering, build.Workload("s", "new").GPUs(2).CPU("1"), "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("s").Quota("h100", build.GPU("24"), build.CPU("192"))).
				Workload(one, one2, share, four, tc.pod)
			p := planWith(t, cfg, snap, tc.policy)
			d := decision(t, p, "s/new")
			if len(d.Placements) != 1 || d.Placements[0].Node != tc.want {
				t.Fatalf("%s placed %s on %v, want %s", tc.policy, d.Action, nodesOf(d), tc.want)
			}
		})
	}
}
