package sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	goldens "github.com/berth-gpu/berth/fixtures/golden"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fullTraceDir is the whole Alibaba 2023 trace in the workspace, beside
// the repository; tests that need it skip when it is not there.
const fullTraceDir = "../../../../shared/data/traces/alibaba-gpu-v2023"

func readTrace(t testing.TB, nodesFile, podsFile string) *Trace {
	t.Helper()
	nf, err := os.Open(nodesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	nodes, err := ReadNodes(nodesFile, nf)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(podsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	pods, err := ReadPods(podsFile, pf)
	if err != nil {
		t.Fatal(err)
	}
	return &Trace{Nodes: nodes, Pods: pods}
}

// slice is the first 50 nodes and 200 pods of the trace (testdata).
func slice(t testing.TB) *Trace {
	return readTrace(t, "testdata/nodes50.csv", "testdata/pods200.csv")
}

func fullTrace(t testing.TB) *Trace {
	nodes := filepath.Join(fullTraceDir, "openb_node_list_gpu_node.csv")
	if _, err := os.Stat(nodes); err != nil {
		t.Skipf("the whole trace is not at %s", fullTraceDir)
	}
	return readTrace(t, nodes, filepath.Join(fullTraceDir, "openb_pod_list_default.csv"))
}

// contended replays the slice with pods arriving 10,000 times faster on a
// fifth of its nodes, so pods wait.
var contended = ReplayOptions{Speedup: 10000, NodeShare: 0.2, SampleEvery: 3600}

func render(t *testing.T, tr *Trace, mode string) (text, js []byte) {
	t.Helper()
	var buf bytes.Buffer
	var v any
	switch mode {
	case "paper":
		rep, err := Paper(tr, PaperOptions{Seeds: []uint64{42, 43}})
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePaperText(&buf, rep); err != nil {
			t.Fatal(err)
		}
		v = rep
	case "replay":
		rep, err := Replay(tr, ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteReplayText(&buf, rep); err != nil {
			t.Fatal(err)
		}
		v = rep
	case "contended":
		rep, err := Replay(tr, contended)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteReplayText(&buf, rep); err != nil {
			t.Fatal(err)
		}
		v = rep
	}
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), js
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldens.Check(t, filepath.Join("testdata", name), got, *update)
}

func TestGolden(t *testing.T) {
	for _, mode := range []string{"replay", "contended", "paper"} {
		t.Run(mode, func(t *testing.T) {
			text, js := render(t, slice(t), mode)
			golden(t, mode+".golden", text)
			if mode != "replay" { // its JSON is mostly samples
				golden(t, mode+".json.golden", js)
			}
		})
	}
}

// Same input, same bytes; and the order of the rows does not matter.
func TestDeterministic(t *testing.T) {
	for _, mode := range []string{"contended", "paper"} {
		t.Run(mode, func(t *testing.T) {
			tr := slice(t)
			text1, js1 := render(t, tr, mode)
			text2, js2 := render(t, slice(t), mode)
			if !bytes.Equal(text1, text2) || !bytes.Equal(js1, js2) {
				t.Fatal("two runs on the same input differ")
			}
			rev := &Trace{}
			for i := len(tr.Nodes) - 1; i >= 0; i-- {
				rev.Nodes = append(rev.Nodes, tr.Nodes[i])
			}
			for i := len(tr.Pods) - 1; i >= 0; i-- {
				rev.Pods = append(rev.Pods, tr.Pods[i])
			}
			text3, js3 := render(t, rev, mode)
			if diff := cmp.Diff(string(js1), string(js3)); diff != "" || !bytes.Equal(text1, text3) {
				t.Fatalf("reversing the rows changes the result:\n%s", diff)
			}
		})
	}
}

// sequence places pods one at a time, in order, nothing departing, and
// returns where each went ("a", "b", ...; "" when it fit nowhere).
func sequence(t *testing.T, nodes []Node, pods []Pod, policy string) []string {
	t.Helper()
	w := Build(nodes, pods, Setup{})
	s := w.NewScheduler(policy)
	s.SetTypicalShapes(TypicalShapes(pods), 1)
	var out []string
	for i := range pods {
		d := s.Decide(At(int64(i)), []schedule.Request{{Workload: &w.Workloads[i], RunID: runID, Since: At(int64(i))}})[0]
		where := ""
		if d.Action == berth.ActionAdmit {
			where = d.Placements[0].Node
		}
		out = append(out, where)
	}
	return out
}

func TestPoliciesDiffer(t *testing.T) {
	node := func(name string, gpus int, cpu int64) Node {
		return Node{Name: name, CPUMilli: cpu, MemoryMiB: 1 << 20, GPUs: gpus, Model: "T4"}
	}
	pod := func(name string, gpus int, milli, cpu int64) Pod {
		return Pod{Name: name, CPUMilli: cpu, MemoryMiB: 1024, NumGPU: gpus, GPUMilli: milli}
	}
	tests := []struct {
		name  string
		nodes []Node
		pods  []Pod
		want  map[string][]string
	}{{
		// A half GPU, then a pod that needs two whole GPUs. First fit puts
		// the half on a, the only node with two GPUs, and the pair fits
		// nowhere. Best fit puts the half where the least is left (b);
		// berth where it fragments least: on b, whose one GPU no pair could
		// use anyway, while on a it would take a GPU from the pair.
		name:  "a half GPU where it does not break a pair",
		nodes: []Node{node("a", 2, 64000), node("b", 1, 64000)},
		pods:  []Pod{pod("half", 1, 500, 1000), pod("pair", 2, 1000, 1000)},
		want: map[string][]string{
			berth.PlacementFirstFit:    {"a", ""},
			berth.PlacementTightestFit: {"b", "a"},
			berth.PlacementBerth:       {"b", "a"},
		},
	}, {
		// A CPU-only pod that takes all of a's 8 cores, then a GPU, then a
		// pair. First fit and best fit (the least cpu left) put the CPU pod
		// on a, stranding a's two GPUs: the pair fits nowhere. berth sees
		// that a without cpu leaves its GPUs unusable and puts it on b.
		name:  "a CPU pod that would strand GPUs",
		nodes: []Node{node("a", 2, 8000), node("b", 2, 64000)},
		pods:  []Pod{pod("cpu", 0, 0, 8000), pod("one", 1, 1000, 4000), pod("pair", 2, 1000, 4000)},
		want: map[string][]string{
			berth.PlacementFirstFit:    {"a", "b", ""},
			berth.PlacementTightestFit: {"a", "b", ""},
			berth.PlacementBerth:       {"b", "a", "b"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, policy := range Policies {
				if got := sequence(t, tt.nodes, tt.pods, policy); !cmp.Equal(got, tt.want[policy]) {
					t.Errorf("%s placed on %q, want %q", policy, got, tt.want[policy])
				}
			}
		})
	}
}

// Whatever arrives and leaves, no GPU holds more than a whole GPU, no node
// more cpu or memory than it has, and the scheduler's count of allocated
// GPUs agrees with the placements it handed out.
func TestNeverOvercommitted(t *testing.T) {
	tr := slice(t)
	nodes := sortedNodes(tr.Nodes)[:12] // a small cluster, so it fills up
	byName := map[string]Node{}
	var capacity int64
	for _, n := range nodes {
		byName[n.Name] = n
		capacity += int64(n.GPUs) * 1000
	}
	for _, policy := range PaperPolicies {
		for seed := uint64(1); seed <= 3; seed++ {
			rng := NewSplitMix64(seed)
			w := Build(nodes, tr.Pods, Setup{})
			s := w.NewScheduler(policy)
			s.SetTypicalShapes(TypicalShapes(tr.Pods), 0.95)
			gpu := map[string][]int64{}
			cpu, mem := map[string]int64{}, map[string]int64{}
			running := map[int][]berth.Placement{}
			var order []int
			for step := 0; step < 600; step++ {
				now := At(int64(step))
				if len(running) > 0 && rng.Below(3) == 0 {
					// Finish a random running pod.
					order = order[:0]
					for i := range running {
						order = append(order, i)
					}
					sortIntsInt(order)
					i := order[rng.Below(len(order))]
					if !s.Finish(w.Workloads[i].ID(), runID) {
						t.Fatalf("%s: finish %d: not running", policy, i)
					}
					for _, p := range running[i] {
						release(gpu, cpu, mem, tr.Pods[i], p, -1)
					}
					delete(running, i)
					continue
				}
				i := rng.Below(len(tr.Pods))
				if _, ok := running[i]; ok {
					continue
				}
				d := s.Decide(now, []schedule.Request{{Workload: &w.Workloads[i], RunID: runID, Since: now}})[0]
				if !d.Starts() {
					continue
				}
				running[i] = d.Placements
				for _, p := range d.Placements {
					if gpu[p.Node] == nil {
						gpu[p.Node] = make([]int64, byName[p.Node].GPUs)
					}
					release(gpu, cpu, mem, tr.Pods[i], p, +1)
					n := byName[p.Node]
					for g, used := range gpu[p.Node] {
						if used > 1000 {
							t.Fatalf("%s seed %d step %d: %s GPU %d holds %d thousandths", policy, seed, step, p.Node, g, used)
						}
					}
					if cpu[p.Node] > n.CPUMilli || mem[p.Node] > n.MemoryMiB {
						t.Fatalf("%s seed %d step %d: %s holds cpu %d of %d, memory %d of %d MiB",
							policy, seed, step, p.Node, cpu[p.Node], n.CPUMilli, mem[p.Node], n.MemoryMiB)
					}
				}
				var sum int64
				for _, gs := range gpu {
					for _, u := range gs {
						sum += u
					}
				}
				c, a := s.GPUStats()
				if c != capacity || a != sum || a > c {
					t.Fatalf("%s seed %d step %d: GPUStats %d of %d, placements hold %d of %d", policy, seed, step, a, c, sum, capacity)
				}
			}
		}
	}
}

// release adds (sign +1) or removes (-1) pod p's placement on one node.
func release(gpu map[string][]int64, cpu, mem map[string]int64, p Pod, pl berth.Placement, sign int64) {
	cpu[pl.Node] += sign * p.CPUMilli
	mem[pl.Node] += sign * p.MemoryMiB
	per := int64(1000)
	if p.Fractional() {
		per = p.GPUMilli
	}
	for _, g := range pl.GPUs {
		gpu[pl.Node][g] += sign * per
	}
}

func sortIntsInt(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j-1] > a[j]; j-- {
			a[j-1], a[j] = a[j], a[j-1]
		}
	}
}

// Seeds run at once give what they give one after another.
func TestPaperWorkers(t *testing.T) {
	tr := slice(t)
	seeds := []uint64{42, 43, 44, 45, 46}
	one, err := Paper(tr, PaperOptions{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	three, err := Paper(tr, PaperOptions{Seeds: seeds, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(one, three); diff != "" {
		t.Errorf("3 workers differ from 1 (-1 +3):\n%s", diff)
	}
}
