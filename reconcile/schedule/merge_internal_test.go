package schedule

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/berth-gpu/berth"
)

// TestMergeDecisionsIsAStableSort: mergeDecisions orders decisions as a
// stable sort by workload and run of extra, kept and decided, in that
// order, would: random lists, sorted or not (kept always is), with runs
// repeated within and across them.
func TestMergeDecisionsIsAStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(n int, tag string) []berth.Decision {
		out := make([]berth.Decision, n)
		for i := range out {
			out[i] = berth.Decision{Workload: berth.WorkloadID(fmt.Sprintf("t/w%d", rng.IntN(8))), RunID: fmt.Sprint(rng.IntN(3)), Reason: &berth.Reason{Message: fmt.Sprint(tag, i)}}
		}
		return out
	}
	byRun := func(a, b *berth.Decision) int {
		return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.RunID, b.RunID))
	}
	ptrs := func(ds []berth.Decision) []*berth.Decision {
		out := make([]*berth.Decision, len(ds))
		for i := range ds {
			out[i] = &ds[i]
		}
		return out
	}
	for round := range 300 {
		extra, kept, decided := mk(rng.IntN(10), "e"), mk(rng.IntN(10), "k"), mk(rng.IntN(10), "d")
		keptPtrs := ptrs(kept)
		slices.SortStableFunc(keptPtrs, byRun) // the runs are sorted
		extraPtrs := ptrs(extra)
		if round%2 == 0 {
			slices.SortStableFunc(extraPtrs, byRun)
			slices.SortStableFunc(decided, func(a, b berth.Decision) int { return byRun(&a, &b) })
		}
		want := slices.Concat(slices.Clone(extraPtrs), keptPtrs, ptrs(decided))
		slices.SortStableFunc(want, byRun)
		got := mergeDecisions(extraPtrs, keptPtrs, decided)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: got %v, want %v", round, messages(got), messages(want))
		}
	}
}

func messages(ds []*berth.Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Workload) + "@" + d.RunID + ":" + d.Reason.Message
	}
	return out
}
