package schedule

import "math"

// The baselines of the FGD paper (Weng et al., USENIX ATC '23), scored as
// its artifact (github.com/hkust-adsl/kubernetes-scheduler-simulator,
// pkg/simulator/plugin) scores them, for `berth simulate --mode paper`
// only: no user chooses them. Each scores every node the pod fits on and
// takes the highest score; a tie goes to the first node in the seed's node
// order (the artifact's kube-scheduler picks among ties at random). On the
// chosen node a GPU is chosen as the artifact's experiment configures each
// (its run scripts): the tightest GPU that fits for all but Random, which
// picks one at random.
const (
	// PlacementPaperBestFit: the least weighted free cpu and GPU left
	// after the pod, 0.5 (cpu left)/128 cores + 0.5 (GPU left)/8 GPUs.
	PlacementPaperBestFit = "paperBestFit"
	// PlacementPaperDotProd: Tetris's alignment, the smallest dot product
	// of the node's free (cpu, GPUs) and the pod's request, each divided
	// by 128 cores and 8 GPUs (the artifact's "merge" and "max").
	PlacementPaperDotProd = "paperDotProd"
	// PlacementPaperPacking: a GPU already shared first (the fuller the
	// better), then free GPUs of a node in use (the fewer the better),
	// then an idle node.
	PlacementPaperPacking = "paperPacking"
	// PlacementPaperClustering: a node whose pods all ask GPUs as this one
	// does (a share of one GPU, or k whole GPUs), then one with such pods
	// among others, then an idle node, then any; the fuller the better
	// within each.
	PlacementPaperClustering = "paperClustering"
	// PlacementPaperRandom: any node the pod fits on, at random.
	PlacementPaperRandom = "paperRandom"
)

// PaperPlacements are the paper's baselines, in the order its tables list
// them.
var PaperPlacements = []string{PlacementPaperRandom, PlacementPaperDotProd, PlacementPaperClustering,
	PlacementPaperPacking, PlacementPaperBestFit, PlacementPaperFGD}

// The artifact's normalising constants: 128 cores and 8 GPUs.
const (
	maxSpecCPU = 128000
	maxSpecGPU = 8000
)

// paperScorer is one baseline's score of a node for one pod (higher is
// better); the pod fits on the node.
type paperScorer func(c *cluster, x *node, s shape) int64

// paperPlacer picks the node with the highest score, the first in order
// among equals.
type paperPlacer struct{ score paperScorer }

func (p paperPlacer) pick(c *cluster, cands []int, s shape) (choice, bool) {
	if s.mig != "" {
		return tightestFit{}.pick(c, cands, s) // the paper's trace has no MIG
	}
	best, bs := -1, int64(math.MinInt64)
	for _, i := range cands {
		x := c.nodes[i]
		if !x.fits(s) {
			continue
		}
		if sc := p.score(c, x, s); best < 0 || sc > bs {
			best, bs = i, sc
		}
	}
	if best < 0 {
		return choice{}, false
	}
	g, slot := tightestGPUs(c.nodes[best], s)
	return choice{node: best, gpus: g, slot: slot}, true
}

// gpuAsk is the GPU thousandths a pod asks in all.
func (s shape) gpuAsk() int64 {
	if s.milli > 0 {
		return int64(s.milli)
	}
	return int64(s.gpus) * wholeGPU
}

func bestFitScore(_ *cluster, x *node, s shape) int64 {
	left := 0.5*float64(x.cpuFree-s.cpu)/maxSpecCPU + 0.5*float64(x.freeGPUMilli()-s.gpuAsk())/maxSpecGPU
	return int64((1 - left) * 100)
}

func dotProdScore(_ *cluster, x *node, s shape) int64 {
	dot := float64(x.cpuFree)/maxSpecCPU*float64(s.cpu)/maxSpecCPU +
		float64(x.freeGPUMilli())/maxSpecGPU*float64(s.gpuAsk())/maxSpecGPU
	return int64(100 * (1 - dot/2))
}

func packingScore(_ *cluster, x *node, s shape) int64 {
	if s.gpuAsk() <= 0 {
		return 0
	}
	gpus := 0
	for _, f := range x.gpuFree {
		if f != migMode {
			gpus++
		}
	}
	if x.wholeFree == gpus { // an idle node
		return max(100/3-int64(x.wholeFree), int64(x.wholeFree))
	}
	// The GPUs it would take, least room first.
	need, milli := max(s.gpus, 1), int32(wholeGPU)
	if s.milli > 0 {
		milli = s.milli
	}
	order := make([]int, 0, len(x.gpuFree))
	for g, f := range x.gpuFree {
		if f != migMode {
			order = append(order, g)
		}
	}
	sortStableBy(order, func(g int) int32 { return x.gpuFree[g] })
	var used []int
	fresh := 0
	for _, g := range order {
		if need == 0 {
			break
		}
		if x.gpuFree[g] >= milli {
			need--
			used = append(used, g)
			if x.gpuFree[g] == wholeGPU {
				fresh++
			}
		}
	}
	if fresh > 0 {
		return max(100/2-int64(fresh), 100/3)
	}
	var ratio int64
	for _, g := range used {
		ratio += int64(x.gpuFree[g]) * 100 / wholeGPU
	}
	return max(100-ratio/10, 100/2)
}

func clusteringScore(_ *cluster, x *node, s shape) int64 {
	tag := affinityOf(s)
	if tag < 0 {
		return 0
	}
	kinds := 0
	for _, n := range x.tags {
		if n > 0 {
			kinds++
		}
	}
	full := 100 / 4 * (maxSpecGPU - x.freeGPUMilli()) / maxSpecGPU
	switch {
	case x.tags[tag] > 0 && kinds == 1:
		return full + 100*3/4
	case x.tags[tag] > 0:
		return full + 100*2/4
	case kinds == 0:
		return full + 100/4
	}
	return full
}

// affinityOf is the artifact's GPU affinity of a pod, as an index into
// node.tags: 0 for a share of one GPU, k for k whole GPUs (the last index
// for more), -1 for none.
func affinityOf(s shape) int {
	switch {
	case s.mig != "":
		return -1
	case s.milli > 0:
		return 0
	case s.gpus > 0:
		return min(s.gpus, len(node{}.tags)-1)
	}
	return -1
}

// paperRandom picks a node the pod fits on at random, and a GPU on it at
// random, from the cluster's generator (seeded per run: SetSeed).
type paperRandom struct{}

func (paperRandom) pick(c *cluster, cands []int, s shape) (choice, bool) {
	if s.mig != "" {
		return tightestFit{}.pick(c, cands, s)
	}
	n, best := 0, -1
	for _, i := range cands {
		if c.nodes[i].fits(s) {
			n++
			if c.rng.Below(n) == 0 { // reservoir sampling, as the artifact picks GPUs
				best = i
			}
		}
	}
	if best < 0 {
		return choice{}, false
	}
	x := c.nodes[best]
	if s.milli > 0 {
		k, g := 0, -1
		for i, f := range x.gpuFree {
			if f >= s.milli {
				k++
				if c.rng.Below(k) == 0 {
					g = i
				}
			}
		}
		return choice{node: best, gpus: []int{g}}, true
	}
	g, slot := lowestGPUs(x, s)
	return choice{node: best, gpus: g, slot: slot}, true
}

// sortStableBy sorts xs by key, keeping the order of equal keys.
func sortStableBy(xs []int, key func(int) int32) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && key(xs[j]) < key(xs[j-1]); j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// splitMix64 is SplitMix64, the generator the simulator seeds everything
// with.
type splitMix64 struct{ s uint64 }

func (r *splitMix64) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Below is a number in [0, n).
func (r *splitMix64) Below(n int) int { return int(r.next() % uint64(n)) }
