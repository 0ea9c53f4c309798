package schedule

import "sort"

// fragModel is the workload mix placement is judged against: the typical
// pod shapes, each weighted by how often it occurs. It follows Weng et al.,
// "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
// Fragmentation Gradient Descent" (USENIX ATC '23): a node's idle GPU
// capacity is fragmented, for one shape, when that shape cannot use it; the
// node's fragmentation is the expectation over the mix; a pod goes where it
// increases fragmentation least.
type fragModel struct {
	shapes  []shape
	weights []float64
}

// TypicalShape is one pod shape of a workload mix and its weight.
type TypicalShape struct {
	CPU      int64 // millicores
	Memory   int64 // bytes
	GPUs     int   // whole GPUs
	GPUMilli int32 // share of one GPU in thousandths (0 when whole)
	Count    int
}

// newFragModel keeps the most common shapes that together cover coverage
// (0..1] of all pods, as the paper does (95%).
func newFragModel(shapes []TypicalShape, coverage float64) *fragModel {
	s := append([]TypicalShape(nil), shapes...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Count != s[j].Count {
			return s[i].Count > s[j].Count
		}
		a, b := s[i], s[j]
		if a.GPUs != b.GPUs {
			return a.GPUs < b.GPUs
		}
		if a.GPUMilli != b.GPUMilli {
			return a.GPUMilli < b.GPUMilli
		}
		if a.CPU != b.CPU {
			return a.CPU < b.CPU
		}
		return a.Memory < b.Memory
	})
	total := 0
	for _, x := range s {
		total += x.Count
	}
	m := &fragModel{}
	if total == 0 {
		return m
	}
	covered := 0
	for _, x := range s {
		if float64(covered) >= coverage*float64(total) {
			break
		}
		m.shapes = append(m.shapes, shape{cpu: x.CPU, mem: x.Memory, gpus: x.GPUs, milli: x.GPUMilli})
		m.weights = append(m.weights, float64(x.Count)/float64(total))
		covered += x.Count
	}
	return m
}

// nodeFrag is the expected fragmented GPU capacity of x, in thousandths.
func (m *fragModel) nodeFrag(x *node) float64 {
	var idle int64
	for _, f := range x.gpuFree {
		if f > 0 {
			idle += int64(f)
		}
	}
	if idle == 0 {
		return 0
	}
	var sum float64
	for i, s := range m.shapes {
		sum += m.weights[i] * float64(fragFor(x, s, idle))
	}
	return sum
}

// fragFor is the idle GPU capacity of x the shape s cannot use: all of it
// when s needs no GPU or x lacks the cpu, memory or GPUs with room for s;
// otherwise the idle capacity of GPUs with less room than s needs.
func fragFor(x *node, s shape, idle int64) int64 {
	if s.mig != "" || (s.gpus == 0 && s.milli == 0) {
		return idle
	}
	if s.cpu > x.cpuFree || s.mem > x.memFree {
		return idle
	}
	need := int32(wholeGPU)
	if s.milli > 0 {
		need = s.milli
	}
	var frag int64
	room := 0
	for _, f := range x.gpuFree {
		if f <= 0 {
			continue
		}
		if f >= need {
			room++
		} else {
			frag += int64(f)
		}
	}
	if (s.gpus > 0 && room < s.gpus) || (s.milli > 0 && room == 0) {
		return idle
	}
	return frag
}

// fgd places each pod where it increases fragmentation least; ties go to
// the tighter fit, then to the earlier node.
type fgd struct {
	model *fragModel
}

func (p *fgd) pick(c *cluster, cands []int, s shape) (choice, bool) {
	if s.mig != "" || len(p.model.shapes) == 0 {
		return bestFit{}.pick(c, cands, s)
	}
	best := choice{node: -1}
	var bestDelta float64
	var bestG, bestC int64
	for _, i := range cands {
		x := c.nodes[i]
		if !x.fits(s) {
			continue
		}
		before := c.fragOf(i)
		delta, gpus := p.bestOnNode(x, s, before)
		g, cpu := leftover(x, s)
		if best.node < 0 || delta < bestDelta-1e-9 ||
			(delta < bestDelta+1e-9 && (g < bestG || (g == bestG && cpu < bestC))) {
			best = choice{node: i, gpus: gpus}
			bestDelta, bestG, bestC = delta, g, cpu
		}
	}
	return best, best.node >= 0
}

// bestOnNode tries s on x's GPUs and returns the least increase in
// fragmentation and the GPUs that give it.
func (p *fgd) bestOnNode(x *node, s shape, before float64) (float64, []int) {
	x.cpuFree -= s.cpu
	x.memFree -= s.mem
	defer func() {
		x.cpuFree += s.cpu
		x.memFree += s.mem
	}()
	if s.milli == 0 {
		// Whole GPUs (or none): every choice of fully free GPUs leaves the
		// node in the same state.
		gpus, _ := lowestGPUs(x, s)
		saved := make([]int32, len(gpus))
		for k, g := range gpus {
			saved[k] = x.gpuFree[g]
			x.gpuFree[g] = 0
		}
		after := p.model.nodeFrag(x)
		for k, g := range gpus {
			x.gpuFree[g] = saved[k]
		}
		return after - before, gpus
	}
	bestG := -1
	var best float64
	tried := map[int32]bool{}
	for g, f := range x.gpuFree {
		if f < s.milli || tried[f] {
			continue
		}
		tried[f] = true // GPUs with the same room leave the same state
		x.gpuFree[g] -= s.milli
		after := p.model.nodeFrag(x)
		x.gpuFree[g] += s.milli
		if d := after - before; bestG < 0 || d < best-1e-9 || (d < best+1e-9 && f < x.gpuFree[bestG]) {
			bestG, best = g, d
		}
	}
	return best, []int{bestG}
}
