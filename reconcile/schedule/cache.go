package schedule

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/berth-gpu/berth"
)

// Cache keeps one cluster's scheduling state between cycles: its nodes,
// what runs on them charged to nodes and quotas, and the configuration's
// workloads with their candidate flavors. Each Schedule compares its input
// with the last one and updates the state with what changed (workloads
// added, removed or changed; runs started, ended or changed) instead of
// building it anew, so a cycle beside 10,000 running runs costs what
// changed and the decisions, not the cluster. A change of nodes, teams,
// cohorts, flavors, clusters, policy or placement rebuilds it.
//
// Its plans are Schedule's, decision for decision: Schedule is a Cache
// used once, the cycle is the same code, and after each cycle the state
// goes back to what the snapshot observed (what a plan admits runs only
// once the next snapshot says so).
//
// The engine keeps one per cluster and the pull-request planner one per
// cluster for the plans of every pull request. It is safe for concurrent
// use; cycles run one at a time. A Config or Snapshot handed to it must not
// change afterwards: the next cycle compares with it.
type Cache struct {
	mu sync.Mutex
	// oneShot: Schedule's own, used once; nothing is kept for later.
	oneShot bool

	st        *state // nil until the first cycle
	cfg       *berth.Config
	cluster   string
	placement string
	nodes     []berth.Node

	wls  []*wlInfo // by workload id
	byID map[berth.WorkloadID]*wlInfo
	// pristine holds each node with nothing running, and onNode the runs
	// with a placement on each node, by node index: a node that changed is
	// rebuilt from them (charges commute; a release clamps, so it is not
	// always a charge's inverse).
	pristine []*node
	onNode   [][]*run
}

// wlInfo is one workload of the configuration and what the cycle derives
// from it alone.
type wlInfo struct {
	id      berth.WorkloadID
	w       berth.Workload
	flavors []string
	cluster string
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

// Schedule decides every run of the cluster of in.Snapshot, as the
// package's Schedule does, from the state kept since the last call.
func (c *Cache) Schedule(in Input, opts Options) *berth.Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.EstimateLimit == 0 {
		opts.EstimateLimit = 50
	}
	c.sync(in.Config, in.Snapshot, opts)
	plan := c.cycle(in.Snapshot)
	if !c.oneShot {
		c.undo()
	}
	return plan
}

// placementOf is the placement a cycle uses.
func placementOf(cfg *berth.Config, opts Options) string {
	p := opts.Placement
	if p == "" {
		p = cfg.Policy.Placement
	}
	if p == "" {
		p = berth.PlacementBerth
	}
	return p
}

// sync brings the state to what cfg and snap describe.
func (c *Cache) sync(cfg *berth.Config, snap *berth.Snapshot, opts Options) {
	placement := placementOf(cfg, opts)
	if c.st == nil || c.oneShot || c.cluster != snap.Cluster || c.placement != placement ||
		!sameSetting(c.cfg, cfg) || !slices.EqualFunc(c.nodes, snap.Nodes, sameNode) || !c.update(cfg, snap) {
		c.rebuild(cfg, snap, placement)
	}
	c.cfg, c.nodes = cfg, snap.Nodes
	c.st.cfg, c.st.opts, c.st.now = cfg, opts, snap.Time
}

// rebuild builds the state from nothing.
func (c *Cache) rebuild(cfg *berth.Config, snap *berth.Snapshot, placement string) {
	c.cluster, c.placement = snap.Cluster, placement
	c.st = newState(cfg, snap, placement, Options{})
	ids := cfg.WorkloadIDs()
	all := make([]wlInfo, len(ids))
	c.wls = make([]*wlInfo, len(ids))
	inChunks(len(ids), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			wl := &all[i] // filled in place: a Workload is 552 bytes
			wl.id, wl.w = ids[i], cfg.Workloads[ids[i]]
			wl.flavors = candidateFlavorsOf(cfg, &wl.w)
			wl.cluster = clusterOf(cfg, wl.flavors)
			c.wls[i] = wl
		}
	})
	// Link each run to its workload: runs and workloads are both sorted.
	w := 0
	for _, r := range c.st.runs {
		for w < len(c.wls) && c.wls[w].id < r.id {
			w++
		}
		if w < len(c.wls) && c.wls[w].id == r.id {
			r.wl = c.wls[w]
		}
	}
	if c.oneShot {
		return
	}
	c.byID = make(map[berth.WorkloadID]*wlInfo, len(ids))
	for _, wl := range c.wls {
		c.byID[wl.id] = wl
	}
	fresh := newCluster(snap.Cluster, snap.Nodes, nil, placement)
	c.pristine = fresh.nodes
	c.onNode = make([][]*run, len(c.pristine))
	for _, r := range c.st.runs {
		c.index(r, true)
	}
}

func newWLInfo(cfg *berth.Config, id berth.WorkloadID, w berth.Workload) wlInfo {
	flavors := CandidateFlavors(cfg, w)
	return wlInfo{id: id, w: w, flavors: flavors, cluster: clusterOf(cfg, flavors)}
}

// index adds r to (or removes it from) the runs of each node it is placed
// on.
func (c *Cache) index(r *run, add bool) {
	each := func(ps []berth.Placement) {
		for _, p := range ps {
			i, ok := c.st.c.byName[p.Node]
			if !ok {
				continue
			}
			switch {
			case add && !slices.Contains(c.onNode[i], r):
				c.onNode[i] = append(c.onNode[i], r)
			case !add:
				c.onNode[i] = slices.DeleteFunc(c.onNode[i], func(x *run) bool { return x == r })
			}
		}
	}
	each(r.placements)
	for _, p := range r.more {
		each(p.placements)
	}
}

// update applies what changed since the last cycle to the state: the
// workloads of cfg, and the runs of snap. It reports false when a rebuild
// is the better way (a snapshot listing a run twice, or most of it
// changed).
func (c *Cache) update(cfg *berth.Config, snap *berth.Snapshot) bool {
	// 1. Workloads added, changed, removed (none when the configuration
	// is the last one: the engine's resyncs of one revision).
	var dirty []berth.WorkloadID
	if cfg != c.cfg {
		var ok bool
		if dirty, ok = c.changedByPackage(cfg); !ok {
			dirty = c.changedByWorkload(cfg)
		}
		if len(dirty) > len(c.wls)/4+16 {
			return false
		}
	}
	c.updateWorkloads(cfg, dirty)
	// 2. Runs started, ended, changed (or of a workload that changed: a
	// run takes its tier and bounds from the spec).
	slices.Sort(dirty)
	runs, gone, added, ok := c.diffRuns(cfg, snap, dirty)
	if !ok || len(gone)+len(added) > len(runs)/4+16 {
		return false
	}
	for _, r := range slices.Concat(gone, added) {
		if joined(r) {
			return false // the flavors of resource groups a run joins are the cluster's while it runs
		}
	}
	c.st.runs = runs
	if len(gone)+len(added) == 0 {
		return true
	}
	// 3. Charge the quotas with the difference; rebuild the nodes it
	// touched.
	c.recharge(gone, added)
	return true
}

// updateWorkloads replaces, adds and removes the dirty workloads'
// entries, keeping c.wls sorted by id.
func (c *Cache) updateWorkloads(cfg *berth.Config, dirty []berth.WorkloadID) {
	for _, id := range dirty {
		w, inCfg := cfg.Workloads[id]
		wl, known := c.byID[id]
		i, _ := slices.BinarySearchFunc(c.wls, id, func(x *wlInfo, id berth.WorkloadID) int { return cmp.Compare(x.id, id) })
		switch {
		case inCfg && known:
			*wl = newWLInfo(cfg, id, w)
		case inCfg:
			x := newWLInfo(cfg, id, w)
			c.wls = slices.Insert(c.wls, i, &x)
			c.byID[id] = &x
		case known:
			c.wls = slices.Delete(c.wls, i, i+1)
			delete(c.byID, id)
		}
	}
}

// diffRuns is the snapshot's runs, reusing the cached run of each that
// did not change (and whose workload is not dirty, which is sorted),
// with the cached runs that went and the runs that came. Both lists are
// sorted by workload and run: it walks them side by side. ok is false
// when the snapshot has a run twice: only a rebuild orders them as
// Schedule does.
func (c *Cache) diffRuns(cfg *berth.Config, snap *berth.Snapshot, dirty []berth.WorkloadID) (runs, gone, added []*run, ok bool) {
	isDirty := func(id berth.WorkloadID) bool {
		_, ok := slices.BinarySearch(dirty, id)
		return ok
	}
	order := runOrder(snap.Running)
	runs = make([]*run, 0, len(order))
	old := c.st.runs
	j := 0
	var prev *berth.RunningWorkload
	for _, i := range order {
		rw := &snap.Running[i]
		if prev != nil && prev.Workload == rw.Workload && prev.RunID == rw.RunID {
			return nil, nil, nil, false
		}
		prev = rw
		for j < len(old) && cmpRunKey(old[j], rw) < 0 {
			gone = append(gone, old[j])
			j++
		}
		if j < len(old) && cmpRunKey(old[j], rw) == 0 {
			r := old[j]
			j++
			if (r.obs == rw || sameRunning(r.obs, rw)) && (len(dirty) == 0 || !isDirty(r.id)) {
				r.obs = rw
				runs = append(runs, r)
				continue
			}
			gone = append(gone, r)
		}
		r := new(run)
		initRun(r, cfg, rw)
		r.wl = c.byID[r.id]
		added = append(added, r)
		runs = append(runs, r)
	}
	gone = append(gone, old[j:]...)
	return runs, gone, added, true
}

// recharge releases the quota of the runs gone and charges the runs
// added, rebuilds the nodes they touched, and forgets what was derived
// from the old runs.
func (c *Cache) recharge(gone, added []*run) {
	st := c.st
	var touched []int
	for _, r := range gone {
		releaseQuota(st.quotas, r)
		c.index(r, false)
		touched = appendNodes(touched, st.c, r)
	}
	for _, r := range added {
		chargeQuota(st.quotas, r)
		c.index(r, true)
		touched = appendNodes(touched, st.c, r)
	}
	c.resetNodes(touched)
	st.ending, st.byFlavor = nil, nil
	if st.runShapes != nil {
		for _, r := range gone {
			countShapes(st.runShapes, r, -1)
		}
		for _, r := range added {
			countShapes(st.runShapes, r, 1)
		}
	}
}

// changedByPackage lists the workloads that differ between the last
// configuration and cfg, comparing only those of the package instances
// whose digest changed, or that came or went (Config.Packages): one
// changed file of a 10,000-workload repository is one package's
// workloads to compare, not 10,000. ok is false when either
// configuration has no packages, or its packages do not account for
// every workload.
func (c *Cache) changedByPackage(cfg *berth.Config) (dirty []berth.WorkloadID, ok bool) {
	maybe, ok := cfg.ChangedWorkloads(c.cfg)
	if !ok {
		return nil, false
	}
	for _, id := range maybe {
		w, inCfg := cfg.Workloads[id]
		wl, known := c.byID[id]
		if !inCfg || !known || !sameWorkload(&wl.w, &w) {
			dirty = append(dirty, id)
		}
	}
	return dirty, true
}

// changedByWorkload lists the workloads that differ between the last
// configuration and cfg, comparing every one. The known ones are walked
// in order (they lie side by side in memory), each looked up once; the
// configuration's keys are read only when it has workloads the cache
// does not know.
func (c *Cache) changedByWorkload(cfg *berth.Config) []berth.WorkloadID {
	var dirty []berth.WorkloadID
	found := 0
	for _, wl := range c.wls {
		w, ok := cfg.Workloads[wl.id]
		if ok {
			found++
		}
		if !ok || !sameWorkload(&wl.w, &w) {
			dirty = append(dirty, wl.id)
			if len(dirty) > len(c.wls)/4+16 {
				return dirty // a rebuild anyway
			}
		}
	}
	if found < len(cfg.Workloads) {
		for id := range cfg.Workloads {
			if _, ok := c.byID[id]; !ok {
				dirty = append(dirty, id)
			}
		}
	}
	return dirty
}

// joined reports whether a run takes a flavor joining several resource
// groups' ("h100+cpu-nodes").
func joined(r *run) bool {
	if strings.Contains(r.flavor, berth.FlavorSeparator) {
		return true
	}
	for _, p := range r.more {
		if strings.Contains(p.flavor, berth.FlavorSeparator) {
			return true
		}
	}
	return false
}

func cmpRunKey(r *run, rw *berth.RunningWorkload) int {
	if c := strings.Compare(string(r.id), string(rw.Workload)); c != 0 {
		return c
	}
	return strings.Compare(r.runID, rw.RunID)
}

// appendNodes appends the indexes of the nodes r is placed on.
func appendNodes(dst []int, cl *cluster, r *run) []int {
	each := func(ps []berth.Placement) {
		for _, p := range ps {
			if i, ok := cl.byName[p.Node]; ok {
				dst = append(dst, i)
			}
		}
	}
	each(r.placements)
	for _, p := range r.more {
		each(p.placements)
	}
	return dst
}

// resetNodes rebuilds nodes from their pristine state and the runs of the
// state placed on them, as a fresh state would hold them.
func (c *Cache) resetNodes(nodes []int) {
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	cl := c.st.c
	for _, i := range nodes {
		x := c.pristine[i].clone()
		x.idx = i
		for _, r := range c.onNode[i] {
			chargeOn(x, r)
		}
		cl.nodes[i] = x
		cl.touch(i)
	}
}

// chargeOn charges x with r's placements on it.
func chargeOn(x *node, r *run) {
	for _, p := range r.placements {
		if p.Node == x.name {
			x.charge(r.shape, p)
		}
	}
	for _, part := range r.more {
		for _, p := range part.placements {
			if p.Node == x.name {
				x.charge(part.shape, p)
			}
		}
	}
}

// cycle decides one cycle on the synced state: keep or stop what runs,
// decide what is pending, and the plan.
func (c *Cache) cycle(snap *berth.Snapshot) *berth.Plan {
	st := c.st
	reqs, extra := prepare(c.cfg, snap, st.opts, c.wls, st.runs)
	if !c.oneShot {
		st.c.logMut = true
	}
	plan := &berth.Plan{Cluster: snap.Cluster, Time: snap.Time, Placement: st.c.policy}
	// The decisions of what runs, most of them the decision each run got
	// last cycle (run.keep), go into the plan as they are: plans share
	// the decisions that did not change, and nothing changes a decision
	// once a plan holds it.
	kept := make([]*berth.Decision, 0, len(st.runs))

	// 2. Keep what runs; stop what left Git or the cluster.
	for _, r := range st.runs {
		kept = append(kept, st.keepOrStop(r, r.wl, snap))
	}
	before := st.quotaUse()

	// 3 and 4. Order the requests and decide each in turn.
	s := &Scheduler{st: st}
	decided := s.decideOnly(snap.Time, reqs, nil)

	// Victims learn who preempted them: on a copy, as a kept decision may
	// be the one the run keeps for the next cycle.
	type victimOf struct {
		by     berth.WorkloadID
		reason berth.Reason
	}
	victims := map[berth.RunKey]victimOf{}
	for _, d := range decided {
		for _, v := range d.Victims {
			victims[v.Key()] = victimOf{d.Workload, v.Reason}
		}
	}
	for i := 0; i < len(kept) && len(victims) > 0; i++ {
		if v, ok := victims[kept[i].Key()]; ok && kept[i].Action == berth.ActionKeep {
			d := *kept[i]
			reason := v.reason
			d.Action = berth.ActionPreempted
			d.PreemptedBy = v.by
			d.Reason = &reason
			kept[i] = &d
		}
	}
	plan.Decisions = mergeDecisions(extra, kept, decided)
	plan.Quota = mergeQuota(before, st.quotaUse())
	st.scaleRooms(plan.Decisions)
	return plan
}

// mergeDecisions orders a cycle's decisions by workload and run, as a
// stable sort of extra, kept and decided (in that order) would: each is
// sorted on its own (kept is, the runs are; prepare makes the others in
// workload order, which one pass finds), then the three are merged, an
// earlier list's decision first among equal runs. (A stable sort of
// 50,000 decisions was 45 ms of a plan.) No decision is copied: a run's
// decision that did not change is the one the last plan holds.
func mergeDecisions(extra, kept []*berth.Decision, decided []berth.Decision) []*berth.Decision {
	byRun := func(d *berth.Decision, e *berth.Decision) int {
		if c := strings.Compare(string(d.Workload), string(e.Workload)); c != 0 {
			return c
		}
		return strings.Compare(d.RunID, e.RunID)
	}
	dec := make([]*berth.Decision, len(decided))
	for i := range decided {
		dec[i] = &decided[i]
	}
	for _, ds := range [][]*berth.Decision{extra, dec} {
		if !slices.IsSortedFunc(ds, byRun) {
			slices.SortStableFunc(ds, byRun)
		}
	}
	lists := [3][]*berth.Decision{extra, kept, dec}
	var at [3]int
	out := make([]*berth.Decision, 0, len(extra)+len(kept)+len(dec))
	for {
		best := -1
		for s := range lists {
			if at[s] < len(lists[s]) && (best < 0 || byRun(lists[s][at[s]], lists[best][at[best]]) < 0) {
				best = s
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, lists[best][at[best]])
		at[best]++
	}
}

// undo puts the state back to what the snapshot observed: what the cycle
// admitted leaves, what it stopped or preempted returns, the nodes it
// changed are rebuilt.
func (c *Cache) undo() {
	st := c.st
	cl := st.c
	cl.logMut = false
	n := 0
	for n < len(st.runs) && st.runs[n].obs != nil {
		n++
	}
	for _, r := range st.runs[n:] {
		releaseQuota(st.quotas, r)
	}
	clear(st.runs[n:])
	st.runs = st.runs[:n]
	stopped := false
	for _, r := range st.runs {
		if r.gone {
			if !r.holdsQuota {
				chargeQuota(st.quotas, r)
			}
			r.gone, r.holdsQuota = false, false
			stopped = true
		}
	}
	c.resetNodes(cl.mutated)
	cl.mutated = cl.mutated[:0]
	st.ending, st.byFlavor = nil, nil
	st.borrowMemo.ok = false
	if stopped {
		// The shapes of what runs were counted without what stopped.
		st.runShapes = nil
	}
	st.heads = map[string]*reservation{}
	st.resetFailed()
}

// sameSetting reports whether two configurations agree on everything a
// state is built from besides workloads.
func sameSetting(a, b *berth.Config) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return reflect.DeepEqual(a.Clusters, b.Clusters) && reflect.DeepEqual(a.Flavors, b.Flavors) &&
		reflect.DeepEqual(a.Cohorts, b.Cohorts) && reflect.DeepEqual(a.Teams, b.Teams) &&
		reflect.DeepEqual(a.Policy, b.Policy)
}
