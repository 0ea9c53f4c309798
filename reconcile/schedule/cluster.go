package schedule

import (
	"cmp"
	"slices"

	"github.com/berth-gpu/berth"
)

// cluster is the node-level state of one cluster during a cycle.
type cluster struct {
	name   string
	nodes  []*node
	byName map[string]int
	// notReady: some node is not ready (its runs may be lost).
	notReady bool
	flavors  map[string]*flavorInfo
	// narrowed holds flavors' nodes narrowed by a role's node selector.
	narrowed map[string]*flavorInfo
	policy   string
	placer   placer
	frag     *fragModel

	// sigs caches each node's signature under the fragmentation model;
	// touch invalidates it when the node changes.
	sigs   []nodeSig
	sigOK  []bool
	sigBig []bool // too many GPUs to memoise

	// gen counts each node's changes (from 1); picks caches, per shape,
	// the best way to place one pod on each node as of a generation, so a
	// pod's pick looks at an array instead of hashing every node's
	// signature.
	gen   []uint32
	picks map[shape]*pickCache

	// gangCands and gangOut are gangOrder's buffers.
	gangCands []gangCand
	gangOut   []int

	// shared marks, in a scratch copy, the nodes it still shares with
	// the cluster it was copied from (nil: it owns every node).
	shared []bool

	// logMut has mut record each node it hands out in mutated: what a
	// Cache rebuilds after a cycle.
	logMut  bool
	mutated []int

	// rng is the generator of the paper's Random baseline (SetSeed).
	rng splitMix64
}

// pickCache is one shape's pick on each node, valid while the node's
// generation is the one recorded (0: none).
type pickCache []pickEntry

// pickEntry is whether one pod fits a node, and if so the best way to place
// it there, as of the node's generation gen.
type pickEntry struct {
	gen  uint32
	fits bool
	pm   pickMemo
}

// flavorInfo is a flavor of the cluster and the nodes it selects, in node
// order.
type flavorInfo struct {
	flavor berth.Flavor
	nodes  []int
	// sel is the node selector that narrowed nodes (a role's), as a key.
	sel string
}

func newCluster(name string, snapNodes []berth.Node, flavors map[string]berth.Flavor, policy string) *cluster {
	ns := append([]berth.Node(nil), snapNodes...)
	slices.SortStableFunc(ns, func(a, b berth.Node) int {
		return cmp.Compare(a.Name, b.Name)
	})
	c := &cluster{name: name, byName: map[string]int{}, flavors: map[string]*flavorInfo{}, policy: policy}
	for i, n := range ns {
		c.nodes = append(c.nodes, newNode(i, n))
		c.byName[n.Name] = i
		c.notReady = c.notReady || !n.Ready
	}
	c.sigs = make([]nodeSig, len(c.nodes))
	c.sigOK = make([]bool, len(c.nodes))
	c.sigBig = make([]bool, len(c.nodes))
	c.gen = make([]uint32, len(c.nodes))
	for i := range c.gen {
		c.gen[i] = 1
	}
	names := make([]string, 0, len(flavors))
	for n := range flavors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, fn := range names {
		f := flavors[fn]
		fi := &flavorInfo{flavor: f}
		for i, x := range c.nodes {
			if flavorSelects(f, x) {
				fi.nodes = append(fi.nodes, i)
			}
		}
		c.flavors[fn] = fi
	}
	return c
}

// setOrder replaces the order nodes are tried in (the simulator shuffles
// it, as the paper's experiment does).
func (c *cluster) setOrder(order []int) {
	rank := make([]int, len(order))
	for r, i := range order {
		rank[i] = r
	}
	for _, fi := range c.flavors {
		slices.SortStableFunc(fi.nodes, func(a, b int) int { return cmp.Compare(rank[a], rank[b]) })
	}
	c.narrowed = nil
}

func (c *cluster) setFrag(m *fragModel) {
	if c.frag != nil && c.frag.sameMix(m) {
		// The same mix scores the same: keep what is memoised (a what-if
		// of one request against many runs derives the same mix each
		// time).
		return
	}
	c.frag = m
	c.placer = newPlacer(c.policy, m)
	for i := range c.sigOK {
		c.sigOK[i] = false
	}
	c.picks = nil
}

// touch marks a node's cached signature and picks stale.
func (c *cluster) touch(i int) {
	c.sigOK[i] = false
	c.gen[i]++
}

// pickCacheFor is shape s's cache of picks.
func (c *cluster) pickCacheFor(s shape) *pickCache {
	pc := c.picks[s]
	if pc == nil {
		if c.picks == nil {
			c.picks = map[shape]*pickCache{}
		}
		x := make(pickCache, len(c.nodes))
		pc = &x
		c.picks[s] = pc
	}
	return pc
}

// sigOf is node i's signature under the fragmentation model; false when
// the node is too large to memoise.
func (c *cluster) sigOf(i int) (nodeSig, bool) {
	if !c.sigOK[i] {
		c.sigs[i], c.sigBig[i] = c.frag.signature(c.nodes[i])
		c.sigBig[i] = !c.sigBig[i]
		c.sigOK[i] = true
	}
	return c.sigs[i], !c.sigBig[i]
}

// release frees a run's placements.
func (c *cluster) release(s shape, ps []berth.Placement) {
	for _, p := range ps {
		if i, ok := c.byName[p.Node]; ok {
			c.mut(i).release(s, p)
			c.touch(i)
		}
	}
}

// charge applies a run's placements.
func (c *cluster) charge(s shape, ps []berth.Placement) {
	for _, p := range ps {
		if i, ok := c.byName[p.Node]; ok {
			c.mut(i).charge(s, p)
			c.touch(i)
		}
	}
}

// mut is node i, to be changed: a scratch copy copies a node it shares
// first.
func (c *cluster) mut(i int) *node {
	if c.logMut {
		c.mutated = append(c.mutated, i)
	}
	if c.shared != nil && c.shared[i] {
		c.nodes[i] = c.nodes[i].clone()
		c.shared[i] = false
	}
	return c.nodes[i]
}

// scratch is a copy of c for a question asked and answered while c stays
// as it is (when would a run fit if others ended): it shares c's nodes
// until it changes them, and c's memos of scores. Unlike clone it must
// not outlive a change to c, nor be used beside it concurrently.
func (c *cluster) scratch() *cluster {
	d := *c
	d.nodes = append([]*node(nil), c.nodes...)
	d.shared = make([]bool, len(c.nodes))
	for i := range d.shared {
		d.shared[i] = true
	}
	d.sigs = append([]nodeSig(nil), c.sigs...)
	d.sigOK = append([]bool(nil), c.sigOK...)
	d.sigBig = append([]bool(nil), c.sigBig...)
	d.gen = append([]uint32(nil), c.gen...)
	// Its own picks: its nodes' generations part from c's.
	d.picks = nil
	d.gangCands, d.gangOut = nil, nil
	d.logMut, d.mutated = false, nil
	return &d
}
