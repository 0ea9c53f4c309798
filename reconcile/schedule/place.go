package schedule

import (
	"cmp"
	"slices"

	"github.com/berth-gpu/berth"
)

// choice is where one pod goes on a node.
type choice struct {
	node int   // index into cluster.nodes
	gpus []int // whole GPUs, or the one GPU of a fraction
	slot int   // MIG slot
}

// placer picks a node (and GPUs) for one pod among candidate nodes.
type placer interface {
	pick(c *cluster, cands []int, s shape) (choice, bool)
}

// PlacementPaperFGD places as the artifact of the FGD paper (Weng et al.,
// USENIX ATC '23) scores, so the simulator can show its published numbers
// are reproduced. It is not a policy users choose: berth's own placement
// (PlacementBerth) starts from it and does better.
const PlacementPaperFGD = "paperFGD"

func newPlacer(policy string, frag *fragModel) placer {
	switch policy {
	case berth.PlacementFirstFit:
		return firstFit{}
	case berth.PlacementTightestFit:
		return tightestFit{}
	case PlacementPaperFGD:
		return &fgd{model: frag, paper: true}
	case PlacementPaperBestFit:
		return paperPlacer{bestFitScore}
	case PlacementPaperDotProd:
		return paperPlacer{dotProdScore}
	case PlacementPaperPacking:
		return paperPlacer{packingScore}
	case PlacementPaperClustering:
		return paperPlacer{clusteringScore}
	case PlacementPaperRandom:
		return paperRandom{}
	default:
		return &fgd{model: frag}
	}
}

// lowestGPUs picks the lowest-indexed GPUs with room for s on x (first fit
// within a node).
func lowestGPUs(x *node, s shape) (gpus []int, slot int) {
	switch {
	case s.mig != "":
		for i, m := range x.mig {
			if !m.used && m.profile == s.mig {
				return nil, i
			}
		}
	case s.milli > 0:
		for g, f := range x.gpuFree {
			if f >= s.milli {
				return []int{g}, 0
			}
		}
	default:
		for g, f := range x.gpuFree {
			if len(gpus) == s.gpus {
				break
			}
			if f == wholeGPU {
				gpus = append(gpus, g)
			}
		}
	}
	return gpus, 0
}

// tightestGPUs picks, for a fraction, the GPU with the least room that
// still fits; for a MIG slice, a slot on the GPU with the fewest free
// slots; whole GPUs as lowestGPUs.
func tightestGPUs(x *node, s shape) (gpus []int, slot int) {
	switch {
	case s.mig != "":
		free := map[int]int{}
		for _, m := range x.mig {
			if !m.used {
				free[m.gpu]++
			}
		}
		best := -1
		for i, m := range x.mig {
			if m.used || m.profile != s.mig {
				continue
			}
			if best < 0 || free[m.gpu] < free[x.mig[best].gpu] {
				best = i
			}
		}
		return nil, best
	case s.milli > 0:
		best := -1
		for g, f := range x.gpuFree {
			if f >= s.milli && (best < 0 || f < x.gpuFree[best]) {
				best = g
			}
		}
		if best >= 0 {
			return []int{best}, 0
		}
		return nil, 0
	default:
		return lowestGPUs(x, s)
	}
}

type firstFit struct{}

func (firstFit) pick(c *cluster, cands []int, s shape) (choice, bool) {
	for _, i := range cands {
		x := c.nodes[i]
		if x.fits(s) {
			g, slot := lowestGPUs(x, s)
			return choice{node: i, gpus: g, slot: slot}, true
		}
	}
	return choice{}, false
}

type tightestFit struct{}

// leftover scores what a node keeps free after taking s: GPU thousandths
// first (for GPU pods), then cpu. Lower is a better fit.
func leftover(x *node, s shape) (int64, int64) {
	gpu := x.freeGPUMilli()
	switch {
	case s.milli > 0:
		gpu -= int64(s.milli)
	case s.gpus > 0:
		gpu -= int64(s.gpus) * wholeGPU
	case s.mig != "":
		gpu = 0
		for _, m := range x.mig {
			if !m.used {
				gpu++
			}
		}
	}
	return gpu, x.cpuFree - s.cpu
}

func (tightestFit) pick(c *cluster, cands []int, s shape) (choice, bool) {
	best := -1
	var bg, bc int64
	for _, i := range cands {
		x := c.nodes[i]
		if !x.fits(s) {
			continue
		}
		g, cpu := leftover(x, s)
		if best < 0 || g < bg || (g == bg && cpu < bc) {
			best, bg, bc = i, g, cpu
		}
	}
	if best < 0 {
		return choice{}, false
	}
	g, slot := tightestGPUs(c.nodes[best], s)
	return choice{node: best, gpus: g, slot: slot}, true
}

// podsFit is how many more pods of shape s fit on x now.
func podsFit(x *node, s shape) int {
	if !x.usable {
		return 0
	}
	n := 1 << 30
	if s.cpu > 0 {
		n = min(n, int(x.cpuFree/s.cpu))
	}
	if s.mem > 0 {
		n = min(n, int(x.memFree/s.mem))
	}
	switch {
	case s.mig != "":
		k := 0
		for _, m := range x.mig {
			if !m.used && m.profile == s.mig {
				k++
			}
		}
		n = min(n, k)
	case s.milli > 0:
		k := 0
		for _, f := range x.gpuFree {
			if f > 0 {
				k += int(f / s.milli)
			}
		}
		n = min(n, k)
	case s.gpus > 0:
		n = min(n, x.wholeFree/s.gpus)
	}
	if n == 1<<30 {
		n = 1 << 20
	}
	return max(n, 0)
}

// placeRun places count pods of shape s on the flavor's nodes, all or
// nothing. A gang (several pods with GPUs) under berth's placement is
// packed into the fewest nodes, within one topology group where one can
// hold it; otherwise pods go one at a time through the placer.
func (c *cluster) placeRun(f *flavorInfo, s shape, count int) ([]berth.Placement, bool) {
	cands := f.nodes
	if count > 1 && s.usesGPU() && c.policy == berth.PlacementBerth {
		cands = c.gangOrder(f, s, count)
		if cands == nil {
			return nil, false
		}
		return c.placeEach(cands, s, count, firstFit{})
	}
	return c.placeEach(cands, s, count, c.placer)
}

func (c *cluster) placeEach(cands []int, s shape, count int, p placer) ([]berth.Placement, bool) {
	out := make([]berth.Placement, 0, count)
	var taken []choice
	for range count {
		ch, ok := p.pick(c, cands, s)
		if !ok {
			// undo: all or nothing
			for i := len(taken) - 1; i >= 0; i-- {
				c.mut(taken[i].node).release(s, out[i])
				c.touch(taken[i].node)
			}
			return nil, false
		}
		out = append(out, c.mut(ch.node).take(s, ch.gpus, ch.slot))
		c.touch(ch.node)
		taken = append(taken, ch)
	}
	return out, true
}

// gangOrder orders the flavor's nodes so that a first-fit pass packs the
// gang into the fewest nodes: nodes that hold the most pods first, taken
// from the tightest topology group that holds the whole gang. It returns
// nil when the flavor cannot hold the gang now. The order lives in a
// buffer of c's that the next call reuses.
func (c *cluster) gangOrder(f *flavorInfo, s shape, count int) []int {
	cands := c.gangCands[:0]
	total := 0
	var groups map[string]int
	if f.flavor.TopologyLabel != "" {
		groups = map[string]int{}
	}
	for _, i := range f.nodes {
		n := podsFit(c.nodes[i], s)
		if n == 0 {
			continue
		}
		g := ""
		if groups != nil {
			g = c.nodes[i].labels[f.flavor.TopologyLabel]
			groups[g] += n
		}
		cands = append(cands, gangCand{idx: i, fit: n, group: g})
		total += n
	}
	c.gangCands = cands // kept for the next call
	if total < count {
		return nil
	}
	// The tightest group that holds the gang alone, if any.
	chosen, have := "", false
	if f.flavor.TopologyLabel != "" {
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		slices.Sort(names)
		for _, g := range names {
			if groups[g] >= count && (!have || groups[g] < groups[chosen]) {
				chosen, have = g, true
			}
		}
	}
	// A total order (node indexes differ), so an unstable sort will do.
	slices.SortFunc(cands, func(a, b gangCand) int {
		if have && (a.group == chosen) != (b.group == chosen) {
			if a.group == chosen {
				return -1
			}
			return 1
		}
		// Fewest nodes: the nodes that hold the most first; among nodes
		// that hold the whole remainder, the tightest.
		if a.fit != b.fit {
			if a.fit >= count && b.fit >= count {
				return cmp.Compare(a.fit, b.fit)
			}
			return cmp.Compare(b.fit, a.fit)
		}
		return cmp.Compare(a.idx, b.idx)
	})
	out := c.gangOut[:0]
	for _, x := range cands {
		out = append(out, x.idx)
	}
	c.gangOut = out
	return out
}

// gangCand is a node that holds some pods of a gang.
type gangCand struct {
	idx, fit int
	group    string
}
