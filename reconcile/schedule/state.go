package schedule

import (
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/berth-gpu/berth"
)

// wholeGPU is a GPU's capacity in thousandths.
const wholeGPU = 1000

// migMode marks a GPU carved into MIG slices: not schedulable whole.
const migMode = -1

// node is one machine's free capacity during a cycle.
type node struct {
	idx    int
	name   string
	labels map[string]string
	model  string
	usable bool // ready and schedulable
	// notReady is when the node stopped being ready (zero: ready, or
	// not known): past the cluster's grace its runs are lost.
	notReady time.Time
	ready    bool

	cpuCap, memCap   int64 // millicores, bytes
	cpuFree, memFree int64
	gpuFree          []int32 // thousandths free per GPU, or migMode
	wholeFree        int     // GPUs entirely free
	mig              []migSlot
	// tags counts the pods on the node by how they ask GPUs (affinityOf):
	// what the paper's Clustering baseline groups by.
	tags [10]int32
}

type migSlot struct {
	gpu     int
	profile string
	used    bool
}

func newNode(i int, n berth.Node) *node {
	x := &node{idx: i, name: n.Name, labels: n.Labels, model: n.GPUModel,
		usable: n.Ready && !n.Unschedulable, ready: n.Ready, notReady: n.NotReadySince,
		cpuCap: n.CPU.Milli(), memCap: n.Memory.Value()}
	x.cpuFree, x.memFree = x.cpuCap, x.memCap
	x.gpuFree = make([]int32, n.GPUs)
	for g := range x.gpuFree {
		x.gpuFree[g] = wholeGPU
	}
	for _, m := range n.MIG {
		if m.GPU >= 0 && m.GPU < len(x.gpuFree) {
			x.gpuFree[m.GPU] = migMode
		}
		for range max(m.Count, 1) {
			x.mig = append(x.mig, migSlot{gpu: m.GPU, profile: m.Profile})
		}
	}
	slices.SortStableFunc(x.mig, func(a, b migSlot) int {
		return cmp.Compare(a.gpu, b.gpu)
	})
	x.recount()
	return x
}

func (x *node) recount() {
	x.wholeFree = 0
	for _, f := range x.gpuFree {
		if f == wholeGPU {
			x.wholeFree++
		}
	}
}

func (x *node) clone() *node {
	y := *x
	y.gpuFree = append([]int32(nil), x.gpuFree...)
	y.mig = append([]migSlot(nil), x.mig...)
	return &y
}

// freeGPUMilli is the idle GPU capacity outside MIG, in thousandths.
func (x *node) freeGPUMilli() int64 {
	var s int64
	for _, f := range x.gpuFree {
		if f > 0 {
			s += int64(f)
		}
	}
	return s
}

// shape is what one pod (replica or worker) asks of a node.
type shape struct {
	cpu, mem int64
	gpus     int   // whole GPUs
	milli    int32 // a share of one GPU (0 when whole or none)
	mig      string
}

func shapeOf(r berth.Resources) shape {
	s := shape{cpu: r.CPU.Milli(), mem: r.Memory.Value()}
	switch {
	case r.MIG != "":
		s.mig = r.MIG
	case r.GPUFraction > 0:
		s.milli = int32(r.GPUMilli())
	default:
		s.gpus = r.GPU
	}
	return s
}

func (s shape) usesGPU() bool { return s.gpus > 0 || s.milli > 0 || s.mig != "" }

// fits reports whether one pod of shape s fits on x now.
func (x *node) fits(s shape) bool {
	if !x.usable || s.cpu > x.cpuFree || s.mem > x.memFree {
		return false
	}
	switch {
	case s.mig != "":
		for _, m := range x.mig {
			if !m.used && m.profile == s.mig {
				return true
			}
		}
		return false
	case s.milli > 0:
		for _, f := range x.gpuFree {
			if f >= s.milli {
				return true
			}
		}
		return false
	default:
		return x.wholeFree >= s.gpus
	}
}

// take charges one pod of shape s to x, on the given GPUs (whole), GPU
// (fraction) or MIG slot, and returns the placement.
func (x *node) take(s shape, gpus []int, slot int) berth.Placement {
	x.tag(s, 1)
	x.cpuFree -= s.cpu
	x.memFree -= s.mem
	p := berth.Placement{Node: x.name, GPUs: []int{}, MIG: []berth.MIGSlice{}}
	switch {
	case s.mig != "":
		x.mig[slot].used = true
		p.MIG = append(p.MIG, berth.MIGSlice{GPU: x.mig[slot].gpu, Profile: s.mig})
	case s.milli > 0:
		x.gpuFree[gpus[0]] -= s.milli
		p.GPUs = append(p.GPUs, gpus[0])
		p.GPUFraction = float64(s.milli) / wholeGPU
	default:
		for _, g := range gpus {
			x.gpuFree[g] = 0
		}
		p.GPUs = append(p.GPUs, gpus...)
	}
	x.recount()
	return p
}

// release returns a placement's capacity to x. It tolerates placements that
// do not match the node (a stale snapshot): what it cannot find it skips.
func (x *node) release(s shape, p berth.Placement) {
	x.tag(s, -1)
	x.cpuFree = min(x.cpuCap, x.cpuFree+s.cpu)
	x.memFree = min(x.memCap, x.memFree+s.mem)
	switch {
	case len(p.MIG) > 0:
		for _, m := range p.MIG {
			for i := range x.mig {
				if x.mig[i].used && x.mig[i].gpu == m.GPU && x.mig[i].profile == m.Profile {
					x.mig[i].used = false
					break
				}
			}
		}
	case p.GPUFraction > 0:
		for _, g := range p.GPUs {
			if g >= 0 && g < len(x.gpuFree) && x.gpuFree[g] != migMode {
				x.gpuFree[g] = min(wholeGPU, x.gpuFree[g]+int32(p.GPUFraction*wholeGPU+0.5))
			}
		}
	default:
		for _, g := range p.GPUs {
			if g >= 0 && g < len(x.gpuFree) && x.gpuFree[g] != migMode {
				x.gpuFree[g] = wholeGPU
			}
		}
	}
	x.recount()
}

// charge applies a running placement to x (the inverse of release).
func (x *node) charge(s shape, p berth.Placement) {
	x.tag(s, 1)
	x.cpuFree -= s.cpu
	x.memFree -= s.mem
	switch {
	case len(p.MIG) > 0:
		for _, m := range p.MIG {
			for i := range x.mig {
				if !x.mig[i].used && x.mig[i].gpu == m.GPU && x.mig[i].profile == m.Profile {
					x.mig[i].used = true
					break
				}
			}
		}
	case p.GPUFraction > 0:
		for _, g := range p.GPUs {
			if g >= 0 && g < len(x.gpuFree) && x.gpuFree[g] != migMode {
				x.gpuFree[g] = max(0, x.gpuFree[g]-int32(p.GPUFraction*wholeGPU+0.5))
			}
		}
	default:
		for _, g := range p.GPUs {
			if g >= 0 && g < len(x.gpuFree) && x.gpuFree[g] != migMode {
				x.gpuFree[g] = 0
			}
		}
	}
	x.recount()
}

// tag counts a pod of shape s on x (n = 1) or off it (n = -1).
func (x *node) tag(s shape, n int32) {
	if t := affinityOf(s); t >= 0 {
		x.tags[t] = max(x.tags[t]+n, 0)
	}
}

// ModelMatches reports whether a flavor's GPU model names a node's: equal,
// or contained as a whole token ignoring case and separators, so "H100"
// matches "NVIDIA-H100-80GB-HBM3" and "NVIDIA H100 80GB HBM3" but not
// "H1000".
func ModelMatches(flavorModel, nodeModel string) bool {
	if flavorModel == "" || nodeModel == "" {
		return false
	}
	if strings.EqualFold(flavorModel, nodeModel) {
		return true
	}
	want := tokens(flavorModel)
	have := tokens(nodeModel)
	for i := 0; i+len(want) <= len(have); i++ {
		ok := true
		for j := range want {
			if have[i+j] != want[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// flavorSelects reports whether a node is of the flavor: it carries the
// flavor's node labels, and for a GPU flavor has GPUs of its model (with
// slices of its MIG profile for a MIG flavor).
func flavorSelects(f berth.Flavor, n *node) bool {
	for k, v := range f.NodeLabels {
		if n.labels[k] != v {
			return false
		}
	}
	if f.GPUModel == "" {
		return true
	}
	if !ModelMatches(f.GPUModel, n.model) {
		return false
	}
	if f.MIG != "" {
		for _, m := range n.mig {
			if m.profile == f.MIG {
				return true
			}
		}
		return false
	}
	for _, g := range n.gpuFree {
		if g != migMode {
			return true
		}
	}
	return false
}
