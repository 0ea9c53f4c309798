package sim

import (
	"fmt"
	"os"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

func TestScratchDrops(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	tr := loadTrace(t)
	nodes := sortedNodes(tr.Nodes)
	pods, order := PaperPods(tr, 42, 130)
	w := Build(nodes, pods, Setup{Teams: 1})
	shapes := TypicalShapes(tr.Pods)
	capacity := tr.Capacity()
	pols := Policies
	if p := os.Getenv("POLICY"); p != "" {
		pols = []string{p}
	}
	for _, policy := range pols {
		s := w.NewScheduler(policy)
		s.SetTypicalShapes(shapes, 0.95)
		s.SetNodeOrder(order)
		var arrived, allocated int64
		drops := map[string][2]int64{}
		firstDrop := -1
		for i, p := range pods {
			d := s.Decide(At(int64(i)), []schedule.Request{{Workload: w.Workloads[i], RunID: "1", Since: At(int64(i))}})[0]
			arrived += p.GPURequest()
			if d.Action == berth.ActionAdmit {
				allocated += p.GPURequest()
			} else if arrived*100 <= capacity*100 {
				k := fmt.Sprintf("g%d", p.NumGPU)
				if p.Fractional() {
					k = "frac"
				}
				x := drops[k]
				x[0]++
				x[1] += p.GPURequest()
				drops[k] = x
				if firstDrop < 0 {
					firstDrop = i
				}
			}
		}
		t.Logf("%s: drops before 100%%: %v first drop at pod %d", policy, drops, firstDrop)
	}
}
