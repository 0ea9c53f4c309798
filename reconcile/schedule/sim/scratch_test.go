package sim

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const traceDir = "/work/shared/data/traces/alibaba-gpu-v2023/"

func loadTrace(t testing.TB) *Trace {
	nf, _ := os.Open(traceDir + "openb_node_list_gpu_node.csv")
	defer nf.Close()
	nodes, err := ReadNodes("nodes.csv", nf)
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := os.Open(traceDir + "openb_pod_list_default.csv")
	defer pf.Close()
	pods, err := ReadPods("pods.csv", pf)
	if err != nil {
		t.Fatal(err)
	}
	return &Trace{Nodes: nodes, Pods: pods}
}

func TestScratchPaper(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	tr := loadTrace(t)
	start := time.Now()
	n, _ := strconv.Atoi(os.Getenv("SEEDS"))
	if n == 0 {
		n = 10
	}
	var seeds []uint64
	for i := 0; i < n; i++ {
		seeds = append(seeds, uint64(42+i))
	}
	var pols []string
	if p := os.Getenv("POLICY"); p != "" {
		pols = strings.Split(p, ",")
	}
	rep, err := Paper(tr, PaperOptions{Seeds: seeds, Policies: pols})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Policies {
		var s []string
		for _, x := range p.Seeds {
			s = append(s, strconv.FormatFloat(x.Unallocated, 'f', 2, 64))
		}
		t.Logf("%-9s mean %.3f  seeds %s", p.Policy, p.Unallocated, strings.Join(s, " "))
	}
	t.Logf("%v", time.Since(start))
}
