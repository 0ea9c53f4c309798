package sim

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// Published are the paper's numbers for its experiment on the Alibaba 2023
// trace: unallocated GPU % at 100% arrived, mean of seeds 42 to 51, from
// the artifact's cached results (Weng et al., USENIX ATC '23).
var Published = []PublishedResult{
	{"Random", schedule.PlacementPaperRandom, 13.70}, {"DotProduct", schedule.PlacementPaperDotProd, 9.38},
	{"Clustering", schedule.PlacementPaperClustering, 8.35}, {"Packing", schedule.PlacementPaperPacking, 8.22},
	{"BestFit", schedule.PlacementPaperBestFit, 7.14}, {"FGD", schedule.PlacementPaperFGD, 4.77},
}

// PublishedResult is one published result.
type PublishedResult struct {
	Policy string `json:"policy"`
	// As is the simulator's policy that scores as the paper's does.
	As          string  `json:"as"`
	Unallocated float64 `json:"unallocatedPct"`
}

// PaperOptions configure the paper's experiment.
type PaperOptions struct {
	// Policies to run (nil: PaperPolicies).
	Policies []string
	// Seeds (nil: 42 to 51).
	Seeds []uint64
	// InflationPct is the total request the pods are inflated to, in
	// percent of the cluster's GPUs (0: 130).
	InflationPct int64
	// Coverage is the share of pods the typical shapes cover (0: 0.95).
	Coverage float64
	// Levels are the arrived levels (percent) reported by level; nil: 80,
	// 90, 95, 100, 105, 110, 120 and 130.
	Levels []int
	// Workers run that many seeds at once (0 or 1: one after another).
	// The result does not depend on it.
	Workers int
	// Progress, when set, is called after each seed's run with how many
	// of the total are done (from the workers: it must be safe for
	// concurrent use).
	Progress func(done, total int)
}

// PaperReport is the result of the paper's experiment.
type PaperReport struct {
	Mode          string   `json:"mode"`
	Nodes         int      `json:"nodes"`
	GPUs          int64    `json:"gpus"`
	Pods          int      `json:"pods"`
	PodsGPUs      float64  `json:"podsGPUs"`
	TypicalShapes int      `json:"typicalShapes"`
	Seeds         []uint64 `json:"seeds"`
	InflationPct  int64    `json:"inflationPct"`
	// Published are the paper's numbers, given only when the trace is the
	// paper's (1,213 nodes, 6,212 GPUs, 8,152 pods).
	Published []PublishedResult `json:"published,omitempty"`
	Policies  []PaperPolicy     `json:"policies"`
}

// PaperPolicy is one policy's result over all seeds.
type PaperPolicy struct {
	Policy string `json:"policy"`
	// Unallocated is the mean over seeds of the unallocated GPU % at 100%
	// arrived; UnallocatedGPUs the same in GPUs.
	Unallocated     float64      `json:"unallocatedPct"`
	UnallocatedGPUs float64      `json:"unallocatedGPUs"`
	Seeds           []PaperSeed  `json:"seeds"`
	Levels          []PaperLevel `json:"levels"`
}

// PaperSeed is one seed's run of one policy.
type PaperSeed struct {
	Seed        uint64  `json:"seed"`
	Pods        int     `json:"pods"`
	Dropped     int     `json:"dropped"`
	Unallocated float64 `json:"unallocatedPct"`
}

// PaperLevel is the unallocated GPU % at one arrived level, mean over the
// seeds that reach it.
type PaperLevel struct {
	Level       int     `json:"levelPct"`
	Unallocated float64 `json:"unallocatedPct"`
}

// PaperPods is the pod sequence of one seed: the pods sorted by name and
// shuffled, then pods drawn uniformly with replacement from the sorted
// list until the next would push the total GPU request above inflationPct
// of capacity; and the node order, shuffled with the same generator after
// the pods. Drawn copies are named NAME-xN (N counts the draws from 1).
func PaperPods(tr *Trace, seed uint64, inflationPct int64) (pods []Pod, nodeOrder []int) {
	sorted := append([]Pod(nil), tr.Pods...)
	slices.SortStableFunc(sorted, func(a, b Pod) int {
		return cmp.Compare(a.Name, b.Name)
	})
	rng := NewSplitMix64(seed)
	pods = append([]Pod(nil), sorted...)
	rng.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
	var total int64
	for _, p := range pods {
		total += p.GPURequest()
	}
	capacity := tr.Capacity()
	for k := 1; ; k++ {
		p := sorted[rng.Below(len(sorted))]
		if (total+p.GPURequest())*100 > inflationPct*capacity {
			break
		}
		total += p.GPURequest()
		p.Name = fmt.Sprintf("%s-x%d", p.Name, k)
		pods = append(pods, p)
	}
	// Node order is shuffled over the nodes sorted by name, the order the
	// scheduler indexes them in.
	nodeOrder = make([]int, len(tr.Nodes))
	for i := range nodeOrder {
		nodeOrder[i] = i
	}
	rng.Shuffle(len(nodeOrder), func(i, j int) { nodeOrder[i], nodeOrder[j] = nodeOrder[j], nodeOrder[i] })
	return pods, nodeOrder
}

// Paper runs the paper's experiment, as the trace's README specifies:
// pods arrive one at a time (each its own scheduling cycle), nothing
// departs, a pod that fits nowhere is dropped; after every pod, arrived is
// the sum of requests so far and allocated what is placed; the level is
// arrived in whole percent of capacity (rounded), and the unallocated GPU
// % at a level is 100 minus the mean allocated share over that level's
// events. The placement of berth judges fragmentation against the typical
// shapes of the original pods (SetTypicalShapes); every policy tries nodes
// in the seed's node order (SetNodeOrder).
func Paper(tr *Trace, opts PaperOptions) (*PaperReport, error) {
	policies, err := checkPolicies(opts.Policies, PaperPolicies)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	nodes := sortedNodes(tr.Nodes)
	shapes := TypicalShapes(tr.Pods)
	capacity := tr.Capacity()
	var podsMilli int64
	for _, p := range tr.Pods {
		podsMilli += p.GPURequest()
	}
	rep := &PaperReport{
		Mode: "paper", Nodes: len(tr.Nodes), GPUs: capacity / 1000, Pods: len(tr.Pods),
		PodsGPUs: float64(podsMilli) / 1000, TypicalShapes: typicalCount(shapes, opts.Coverage),
		Seeds: opts.Seeds, InflationPct: opts.InflationPct,
	}
	if len(nodes) == 1213 && capacity == 6212000 && len(tr.Pods) == 8152 {
		rep.Published = Published
	}
	runs := paperSeeds(tr, nodes, shapes, policies, opts)
	rep.Policies = combinePaper(runs, policies, opts, capacity)
	return rep, nil
}

// withDefaults fills the options left zero.
func (o PaperOptions) withDefaults() PaperOptions {
	if len(o.Seeds) == 0 {
		for s := uint64(42); s <= 51; s++ {
			o.Seeds = append(o.Seeds, s)
		}
	}
	if o.InflationPct <= 0 {
		o.InflationPct = 130
	}
	if o.Coverage <= 0 {
		o.Coverage = 0.95
	}
	if o.Levels == nil {
		o.Levels = []int{80, 90, 95, 100, 105, 110, 120, 130}
	}
	return o
}

// paperSeeds runs every policy on every seed's pods: runs[seed][policy].
// Each seed is one job: its pods, then every policy in turn. Jobs are
// independent, so workers may run them at once; results are combined in
// seed order.
func paperSeeds(tr *Trace, nodes []Node, shapes []schedule.TypicalShape, policies []string, opts PaperOptions) [][]*paperResult {
	seeds, capacity := opts.Seeds, tr.Capacity()
	runs := make([][]*paperResult, len(seeds))
	var g errgroup.Group
	g.SetLimit(max(opts.Workers, 1))
	var done atomic.Int64
	for k := range seeds {
		g.Go(func() error {
			pods, order := PaperPods(tr, seeds[k], opts.InflationPct)
			w := Build(nodes, pods, Setup{Teams: 1})
			for _, policy := range policies {
				runs[k] = append(runs[k], paperRun(w, pods, order, shapes, opts.Coverage, policy, capacity, seeds[k]))
			}
			if opts.Progress != nil {
				opts.Progress(int(done.Add(1)), len(seeds))
			}
			return nil
		})
	}
	_ = g.Wait() // the runs return no errors
	return runs
}

// combinePaper averages each policy's unallocated share over the seeds,
// in all and at each of opts.Levels.
func combinePaper(runs [][]*paperResult, policies []string, opts PaperOptions, capacity int64) []PaperPolicy {
	seeds := opts.Seeds
	type acc struct{ sum, n [levelsMax]float64 }
	res := make([]PaperPolicy, len(policies))
	accs := make([]acc, len(policies))
	sums := make([]float64, len(policies))
	for i, p := range policies {
		res[i].Policy = p
	}
	for k, seed := range seeds {
		for i := range policies {
			r := runs[k][i]
			r.seed.Seed = seed
			sums[i] += r.unalloc(100)
			res[i].Seeds = append(res[i].Seeds, r.seed)
			for l := range levelsMax {
				if r.n[l] > 0 {
					accs[i].sum[l] += r.unalloc(l)
					accs[i].n[l]++
				}
			}
		}
	}
	for i := range res {
		sum := sums[i]
		res[i].Unallocated = round(sum/float64(len(seeds)), 3)
		res[i].UnallocatedGPUs = round(sum/float64(len(seeds))*float64(capacity)/100/1000, 1)
		for _, l := range opts.Levels {
			if l >= 0 && l < levelsMax && accs[i].n[l] > 0 {
				res[i].Levels = append(res[i].Levels, PaperLevel{Level: l, Unallocated: round(accs[i].sum[l]/accs[i].n[l], 3)})
			}
		}
	}
	return res
}

// levelsMax bounds the arrived levels tracked, in percent.
const levelsMax = 1001

type paperResult struct {
	seed PaperSeed
	// per level: sum of allocated shares and number of events
	sum [levelsMax]float64
	n   [levelsMax]int
}

func (r *paperResult) unalloc(l int) float64 {
	if r.n[l] == 0 {
		return 0
	}
	return 100 - 100*r.sum[l]/float64(r.n[l])
}

func paperRun(w *World, pods []Pod, order []int, shapes []schedule.TypicalShape, coverage float64,
	policy string, capacity int64, seed uint64) *paperResult {
	s := w.NewScheduler(policy)
	s.SetSeed(seed)
	s.SetTypicalShapes(shapes, coverage)
	s.SetNodeOrder(order)
	r := &paperResult{seed: PaperSeed{Pods: len(pods)}}
	var arrived, allocated int64
	reqs := make([]schedule.Request, 1)
	for i, p := range pods {
		reqs[0] = schedule.Request{Workload: &w.Workloads[i], RunID: runID, Since: At(int64(i))}
		d := s.Decide(At(int64(i)), reqs)[0]
		arrived += p.GPURequest()
		if d.Action == berth.ActionAdmit {
			allocated += p.GPURequest()
		} else {
			r.seed.Dropped++
		}
		level := int((200*arrived + capacity) / (2 * capacity))
		if level >= levelsMax {
			level = levelsMax - 1
		}
		r.sum[level] += float64(allocated) / float64(capacity)
		r.n[level]++
	}
	if r.n[100] > 0 {
		r.seed.Unallocated = round(r.unalloc(100), 3)
	}
	return r
}

// typicalCount is how many shapes cover the given share of pods, most
// common first (the scheduler keeps the same ones).
func typicalCount(shapes []schedule.TypicalShape, coverage float64) int {
	total := 0
	for _, s := range shapes {
		total += s.Count
	}
	covered, n := 0, 0
	for _, s := range shapes {
		if float64(covered) >= coverage*float64(total) {
			break
		}
		covered += s.Count
		n++
	}
	return n
}

// sortedNodes is a copy of the nodes sorted by name, the order the
// scheduler indexes them in, so a node order means the same to both.
func sortedNodes(nodes []Node) []Node {
	out := append([]Node(nil), nodes...)
	slices.SortStableFunc(out, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}
