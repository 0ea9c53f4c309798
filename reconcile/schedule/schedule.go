package schedule

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Options tune a cycle. The zero value follows the configuration's policy.
type Options struct {
	// Placement overrides policy.placement: berth, firstFit or tightestFit.
	Placement string
	// NoBackfill turns EASY backfill off whatever the policy says.
	NoBackfill bool
	// EstimateLimit bounds how many queued runs get an estimated start
	// (each costs a what-if replay of the running set); default 50, and a
	// negative limit turns estimates off (except for Estimate).
	EstimateLimit int
	// Estimate lists workloads that get an estimate whatever their place in
	// line (the ones a pull request adds).
	Estimate map[berth.WorkloadID]bool
	// Backoff is the wait after a run's failed attempt before the next
	// one (default DefaultBackoff). A service whose process ended waits
	// the same before it restarts.
	Backoff func(failures int) time.Duration
	// TickDeadline is how late a periodic job's tick may start; a tick
	// missed by more (berth was down) runs only as the workload's catchUp
	// says, and is reported when it does not (default 10 minutes).
	TickDeadline time.Duration
}

// DefaultBackoff waits 10 s after the first failure, doubling with each
// one, at most 5 minutes.
func DefaultBackoff(failures int) time.Duration {
	return nthDelay(wait.Backoff{Duration: 10 * time.Second, Factor: 2, Steps: math.MaxInt, Cap: 5 * time.Minute}, failures)
}

// nthDelay is b's delay after n failures (the first one's when n < 1).
func nthDelay(b wait.Backoff, n int) time.Duration {
	next := b.DelayFunc()
	d := next()
	for i := 1; i < n; i++ {
		d = next()
	}
	return d
}

func (o Options) backoff(failures int) time.Duration {
	if o.Backoff == nil {
		return DefaultBackoff(failures)
	}
	return o.Backoff(failures)
}

func (o Options) tickDeadline() time.Duration {
	if o.TickDeadline <= 0 {
		return 10 * time.Minute
	}
	return o.TickDeadline
}

// Input is everything a cycle decides from: the configuration, and the
// cluster's snapshot as of the time to decide at (snap.Time), with the
// runs waiting, their failures, and the runs finished.
type Input struct {
	Config   *berth.Config
	Snapshot *berth.Snapshot
}

// run is a run holding capacity: running in the snapshot, or admitted in
// this cycle.
type run struct {
	id          berth.WorkloadID
	runID       string
	team        string
	kind        berth.Kind
	prio        int
	tier        string
	preemptible bool
	flavor      string
	since       time.Time
	queued      time.Time // first seen waiting: what "newer" compares
	shape       shape
	res         berth.Resources // one pod's, for a run of a workload with roles
	placements  []berth.Placement
	demand      policy.Demand // whole run (the first role's, with roles)
	maxDuration time.Duration
	running     bool // running before this cycle (only these may be preempted)
	// obs is the snapshot's record of a running run (nil for one admitted
	// in this cycle): what a Cache compares the next snapshot with.
	obs *berth.RunningWorkload
	// keep is the decision to keep it running, as last made.
	keep *berth.Decision
	// wl is its workload in a Cache (nil when it left Git).
	wl   *wlInfo
	gone bool // stopped or preempted in this cycle
	// holdsQuota: found lost in this cycle (gone), it freed its nodes but
	// still holds its quota until it waits again (state.loseRun).
	holdsQuota bool
	// nodesOK: lostNode found every node the run is placed on in the
	// cluster. A cluster's nodes change only in a rebuild, which makes
	// the runs anew, and initRun clears it.
	nodesOK bool
	// role is the first role of a run of a workload with roles (flavor,
	// shape, placements and demand are then that role's); more holds
	// the other roles.
	role string
	more []runPart
}

// end is when the run ends at the latest (zero when unknown).
func (r *run) end() time.Time {
	if r.maxDuration <= 0 || !r.kind.RunsOnce() {
		return time.Time{}
	}
	return r.since.Add(r.maxDuration)
}

// req is a request with what the cycle derives from it. It points at the
// caller's request rather than copying it: a plan may hold 50,000.
type req struct {
	*Request
	id         berth.WorkloadID
	team       string
	prio       int
	tier       string
	canPreempt bool
	shape      shape
	pods       int
	minPods    int
	perPod     policy.Demand
	flavors    []string
	decision   berth.Decision
	// neverChecked: the first pass found it can fit some day.
	neverChecked bool
	// level is how far up the cohort tree it borrows (0: not at all), for
	// the order of the second pass.
	level int
	// sets are the roles of a workload with roles, each a request of its
	// own shape (roles.go); the request itself is then decided through
	// them. A role's request has its role's name and node selector.
	sets   []*req
	parent *req // a role's: the workload's request
	role   string
	sel    map[string]string
	selKey string
	// seq is its place among the cycle's requests, the last tie-breaker.
	seq int
}

func (r *req) demand(pods int) policy.Demand { return r.perPod.Scale(int64(pods)) }

// top is the workload's request: r, or for a role the request it is one
// role of.
func (r *req) top() *req {
	if r.parent != nil {
		return r.parent
	}
	return r
}

// state is one cycle's mutable state.
type state struct {
	cfg    *berth.Config
	opts   Options
	now    time.Time
	c      *cluster
	quotas *policy.Quotas
	runs   []*run
	// heads are the first runs blocked by node capacity, per flavor, and
	// the capacity they reserve (EASY backfill).
	heads map[string]*reservation
	// failed remembers, per flavor, shapes that did not fit: capacity only
	// shrinks within a cycle until something is preempted.
	failed map[failKey]bool
	// capReasons caches the capacity reason of each failed shape;
	// quotaReasons every quota reason written (it is a function of its
	// key, so it never goes stale).
	capReasons   map[capKey]*berth.Reason
	quotaReasons map[quotaKey]*berth.Reason
	// idle memoises idleCapacity per flavor and shape.
	idle map[failKey]int
	// ending caches the runs with a known end, soonest first, for shadow
	// times; nil when runs changed.
	ending []*run
	// byFlavor indexes the runs running before this cycle (the only ones
	// that may be preempted) by flavor; nil until runsOn needs it.
	byFlavor map[string][]*run
	// runShapes counts the pods of live runs by shape (for the typical
	// workload mix); nil when runs changed.
	runShapes  map[shape]int
	borrowMemo borrowMemo
	// teamNames are the configuration's teams, sorted.
	teamNames []string
	// noPreempt remembers requests whose preemption failed in this cycle:
	// candidates only go away within a cycle, so it would fail again.
	noPreempt map[preemptKey]bool
}

type preemptKey struct {
	team, flavor, sel string
	shape             shape
	pods, prio        int
	need              [policy.NumResources]bool
	since             time.Time // only for lowerOrNewerEqualPriority
}

type failKey struct {
	flavor string
	sel    string // a role's node selector narrows the flavor's nodes
	shape  shape
	pods   int
}

// Schedule decides every run of one cluster: the one decision step that
// the engine, `berth plan`, the pull-request planner and the simulator's
// replay of a repository share. It prepares what is pending now (ticks
// due, retries past their backoff, steps whose dependencies finished),
// then keeps or stops what runs and decides each request in turn.
//
// It is a Cache used once: a caller that plans the same cluster again
// keeps a Cache instead, and gets the same plan for less.
func Schedule(in Input, opts Options) *berth.Plan {
	c := Cache{oneShot: true}
	return c.Schedule(in, opts)
}

// Scheduler keeps one cluster's state across cycles: the trace simulator
// replays arrivals and departures through it, and an incremental plan
// decides a few new runs against a state built once.
type Scheduler struct {
	st        *state
	fixedFrag bool
}

// NewScheduler builds the state of a snapshot's cluster: its nodes, and
// its running runs charged to nodes and quotas.
func NewScheduler(cfg *berth.Config, snap *berth.Snapshot, opts Options) *Scheduler {
	if opts.EstimateLimit == 0 {
		opts.EstimateLimit = 50
	}
	placement := opts.Placement
	if placement == "" {
		placement = cfg.Policy.Placement
	}
	if placement == "" {
		placement = berth.PlacementBerth
	}
	return &Scheduler{st: newState(cfg, snap, placement, opts)}
}

// SetTypicalShapes fixes the workload mix berth's placement judges
// fragmentation against, instead of deriving it each cycle from what waits
// and runs. coverage keeps the most common shapes covering that share of
// pods (the paper uses 0.95).
func (s *Scheduler) SetTypicalShapes(shapes []TypicalShape, coverage float64) {
	s.st.c.setFrag(newFragModel(shapes, coverage))
	s.fixedFrag = true
}

// SetSeed seeds the generator of the paper's Random baseline
// (PlacementPaperRandom).
func (s *Scheduler) SetSeed(seed uint64) { s.st.c.rng = splitMix64{seed} }

// SetNodeOrder sets the order nodes are tried in and ties broken by, as
// indexes into the snapshot's nodes sorted by name.
func (s *Scheduler) SetNodeOrder(order []int) { s.st.c.setOrder(order) }

// Decide runs one cycle at time now for reqs and applies it: admitted runs
// start (and may be preempted in later cycles), victims stop. It returns
// one decision per request, in the order of reqs.
func (s *Scheduler) Decide(now time.Time, reqs []Request) []berth.Decision {
	return s.cycle(now, reqs)
}

// Finish ends a run, freeing its capacity. It reports whether the run was
// running.
func (s *Scheduler) Finish(id berth.WorkloadID, runID string) bool {
	st := s.st
	for i, r := range st.runs {
		if !r.gone && r.id == id && r.runID == runID {
			st.stopRun(r)
			st.runs = append(st.runs[:i], st.runs[i+1:]...)
			return true
		}
	}
	return false
}

// GPUStats reports the cluster's GPU capacity outside MIG and how much of
// it is allocated, in thousandths of a GPU.
func (s *Scheduler) GPUStats() (capacity, allocated int64) {
	for _, x := range s.st.c.nodes {
		for _, f := range x.gpuFree {
			if f == migMode {
				continue
			}
			capacity += wholeGPU
			allocated += int64(wholeGPU - f)
		}
	}
	return capacity, allocated
}

// cycle orders reqs and decides each in turn at time now, and applies the
// outcome: what was admitted runs from now on; victims are gone.
func (s *Scheduler) cycle(now time.Time, reqs []Request) []berth.Decision {
	return s.cycleInto(now, reqs, nil)
}

// cycleInto is cycle, appending the decisions to dst.
func (s *Scheduler) cycleInto(now time.Time, reqs []Request, dst []berth.Decision) []berth.Decision {
	out := s.decideOnly(now, [][]Request{reqs}, dst)
	st := s.st
	live := st.runs[:0]
	for _, r := range st.runs {
		if !r.gone {
			r.running = true
			live = append(live, r)
		}
	}
	st.runs = live
	st.ending = nil
	st.runShapes = nil
	return out
}

// decideOnly orders the requests, those of parts one after another, and
// decides each in turn at time now, and appends the decisions to dst in
// the order of the requests. (prepare gives its requests in parts, one per
// core that made them: joining them was a copy of 50,000 Requests.)
func (s *Scheduler) decideOnly(now time.Time, parts [][]Request, dst []berth.Decision) []berth.Decision {
	st := s.st
	st.now = now
	st.heads = map[string]*reservation{}
	st.resetFailed()
	st.ending = nil
	st.noPreempt = map[preemptKey]bool{}
	st.byFlavor = nil // built on first use: most cycles preempt nothing
	// One allocation for all the requests: a plan may hold 50,000.
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	all := make([]req, n)
	rs := make([]*req, n)
	off := 0
	for _, p := range parts {
		base := off
		inChunks(len(p), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				i := base + j
				st.initReq(&all[i], &p[j])
				all[i].seq = i
				rs[i] = &all[i]
			}
		})
		off += len(p)
	}
	if !s.fixedFrag {
		st.setFragModel(rs)
	}
	// First the runs that fit within their team's nominal quota, then, in
	// the same order, those that need to borrow or must wait.
	// A team's runs keep their order: once one of them waits for the
	// second pass, so do the team's later ones.
	q := st.newQueue(rs, false)
	var later []*req
	deferred := map[string]bool{}
	order := make([]*req, 0, len(rs))
	for r := q.pop(); r != nil; r = q.pop() {
		if !deferred[r.team] && st.decideWithinNominal(r) {
			q.decided(r)
			order = append(order, r)
			continue
		}
		deferred[r.team] = true
		later = append(later, r)
	}
	// The second pass orders by how far up the cohort tree each run would
	// borrow first (Kueue's entry ordering: one that borrows only from its
	// own cohort before one that borrows from further up).
	for _, r := range later {
		r.level = st.borrowLevel(r)
	}
	q = st.newQueue(later, true)
	position := 0
	for r := q.pop(); r != nil; r = q.pop() {
		st.decide(r)
		q.decided(r)
		if r.decision.Action == berth.ActionQueue {
			position++
			r.decision.Position = position
		}
		order = append(order, r)
	}
	// Estimated starts for the first in line and those asked for.
	st.estimate(order)

	dst = slices.Grow(dst, len(rs))
	for _, r := range rs {
		dst = append(dst, r.decision)
	}
	return dst
}

func newState(cfg *berth.Config, snap *berth.Snapshot, placement string, opts Options) *state {
	st := newNodeState(cfg, snap, placement, opts)
	st.now = snap.Time
	order := runOrder(snap.Running)
	st.runs = make([]*run, 0, len(order))
	all := make([]run, len(order)) // one allocation for all
	for k, i := range order {
		r := &all[k]
		initRun(r, cfg, &snap.Running[i])
		chargeRun(st.c, st.quotas, r)
		st.runs = append(st.runs, r)
	}
	return st
}

// newNodeState is the state of a snapshot's nodes and quotas with nothing
// running.
func newNodeState(cfg *berth.Config, snap *berth.Snapshot, placement string, opts Options) *state {
	cluster := snap.Cluster
	flavors := map[string]berth.Flavor{}
	var names []string
	for _, name := range cfg.FlavorNames() {
		if cfg.FlavorCluster(name) == cluster {
			flavors[name] = cfg.Flavors[name]
			names = append(names, name)
		}
	}
	// The flavors of several resource groups a pod may take at once
	// ("h100+cpu-nodes"): the nodes of every one of them.
	for _, name := range joinedFlavors(cfg, snap) {
		if f, ok := cfg.FlavorNamed(name); ok && allIn(flavors, name) {
			flavors[name] = f
		}
	}
	st := &state{
		cfg:    cfg,
		opts:   opts,
		c:      newCluster(cluster, snap.Nodes, flavors, placement),
		quotas: policy.NewQuotas(cfg, names),
		heads:  map[string]*reservation{},
		failed: map[failKey]bool{},
		idle:   map[failKey]int{},
	}
	st.c.setFrag(&fragModel{})
	return st
}

// runOrder is the order of a snapshot's runs by workload and run: their
// indexes sorted, not the runs (large structs; a cluster may run 10,000).
// A sorted snapshot (as the engine writes them) costs one pass.
func runOrder(running []berth.RunningWorkload) []int {
	order := make([]int, len(running))
	for i := range order {
		order[i] = i
	}
	sorted := true
	for i := 1; i < len(running) && sorted; i++ {
		sorted = cmpRunning(&running[i-1], &running[i]) <= 0
	}
	if sorted {
		return order
	}
	slices.SortFunc(order, func(i, j int) int {
		if c := cmpRunning(&running[i], &running[j]); c != 0 {
			return c
		}
		return cmp.Compare(i, j) // as a stable sort would
	})
	return order
}

func cmpRunning(a, b *berth.RunningWorkload) int {
	if c := strings.Compare(string(a.Workload), string(b.Workload)); c != 0 {
		return c
	}
	return strings.Compare(a.RunID, b.RunID)
}

// initRun fills r from a snapshot's running run rw and the configuration.
func initRun(r *run, cfg *berth.Config, rw *berth.RunningWorkload) {
	*r = run{
		id: rw.Workload, runID: rw.RunID, team: rw.Workload.Team(), kind: rw.Kind,
		prio: rw.Priority, flavor: rw.Flavor, since: rw.Since, queued: rw.QueuedSince, shape: shapeOf(rw.Resources),
		placements: rw.Placements, maxDuration: rw.MaxDuration.D(), running: true, preemptible: true,
		obs: rw,
	}
	if w, ok := cfg.Workloads[rw.Workload]; ok {
		tier, pt := cfg.Priority(w)
		r.tier, r.preemptible = tier, pt.Preemptible
		if r.maxDuration <= 0 {
			// A snapshot written by hand (or by an older berth) may
			// leave it out: the run ends by the spec's bound, not never,
			// so nothing is backfilled past a head it would delay.
			r.maxDuration = w.MaxDuration.D()
		}
	} else {
		for name, pt := range cfg.Policy.Priorities {
			if pt.Value == rw.Priority && (r.tier == "" || name < r.tier) {
				r.tier, r.preemptible = name, pt.Preemptible
			}
		}
	}
	if r.queued.IsZero() {
		r.queued = r.since
	}
	r.demand = demandOf(rw.Resources).Scale(int64(max(len(rw.Placements), 1)))
	if len(rw.Roles) > 0 {
		setRoles(r, rw.Roles)
	}
}

// joinedFlavors lists every name joining one flavor of each of several
// resource groups that a team's pods may take, and those the snapshot's
// runs hold.
func joinedFlavors(cfg *berth.Config, snap *berth.Snapshot) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if strings.Contains(name, berth.FlavorSeparator) && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, team := range cfg.TeamNames() {
		groups := cfg.Teams[team].ResourceGroups
		if len(groups) < 2 {
			continue
		}
		// Every non-empty subset of the groups, a flavor of each.
		var walk func(i int, prefix string)
		walk = func(i int, prefix string) {
			if i == len(groups) {
				add(prefix)
				return
			}
			walk(i+1, prefix)
			for _, f := range groups[i].Flavors {
				if prefix == "" {
					walk(i+1, f.Name)
				} else {
					walk(i+1, prefix+berth.FlavorSeparator+f.Name)
				}
			}
		}
		walk(0, "")
	}
	for _, rw := range snap.Running {
		add(rw.Flavor)
		for _, rp := range rw.Roles {
			add(rp.Flavor)
		}
	}
	return out
}

// allIn reports whether every flavor a name joins is in flavors.
func allIn(flavors map[string]berth.Flavor, name string) bool {
	for _, f := range berth.SplitFlavors(name) {
		if _, ok := flavors[f]; !ok {
			return false
		}
	}
	return true
}

// demandOf is the quota demand of one pod.
func demandOf(r berth.Resources) policy.Demand {
	return policy.Demand{r.GPUMilli(), r.CPU.Milli(), r.Memory.Value()}
}

// keepOrStop decides a running run: it keeps running unless its workload
// left Git or moved to another cluster, in which case it stops and its
// capacity is free for this cycle.
// wl is the run's workload, nil when it left Git.
//
// It returns the run's own keep decision (kept for the next cycle), or a
// new one: the caller copies it.
func (st *state) keepOrStop(r *run, wl *wlInfo, snap *berth.Snapshot) *berth.Decision {
	var stop, lost *berth.Reason
	switch {
	case wl == nil:
		stop = &berth.Reason{Code: berth.ReasonRemovedFromGit, Message: "the workload is no longer in the repository"}
	case wl.cluster != snap.Cluster:
		stop = &berth.Reason{Code: berth.ReasonRemovedFromGit, Message: "the workload now runs on cluster " + wl.cluster}
	case wl.w.Kind.RunsOnce() && wl.w.MaxDuration > 0 && !r.since.IsZero() && snap.Time.Sub(r.since) > wl.w.MaxDuration.D():
		stop = &berth.Reason{Code: berth.ReasonMaxDurationPassed, Message: "ran longer than its maxDuration " + wl.w.MaxDuration.String()}
	case wl.w.Schedule != "" && wl.w.Concurrency == berth.ConcurrencyReplace:
		stop = supersededByTick(&wl.w, r.runID, snap.Time, st.opts.tickDeadline())
	default:
		stop = scaledDown(&wl.w, r.runID, snap)
	}
	if stop == nil {
		lost = st.lostNode(r, snap)
	}
	borrowed := st.borrowed(r.team, r.flavor)
	if stop == nil && lost == nil && r.keep != nil && r.keep.Borrowed == borrowed && r.keep.Cluster == snap.Cluster {
		// The decision a Cache made for it last cycle: nothing else it
		// says can have changed while the run is the same.
		return r.keep
	}
	d := berth.Decision{
		Workload: r.id, RunID: r.runID, Team: r.team, Kind: r.kind, Cluster: snap.Cluster,
		Action: berth.ActionKeep, Priority: r.prio, PriorityTier: r.tier, Flavor: r.flavor,
		Placements: r.placements, Since: r.since,
		GPUs:     float64(r.gpuMilli()) / wholeGPU,
		Borrowed: borrowed,
	}
	if wl != nil {
		d.Mounts = wl.w.Mounts(st.cfg.Clusters[snap.Cluster], r.runID)
	}
	if r.role == "" {
		d.Flavors = st.flavorsOf(r.team, r.flavor, r.demand)
	}
	if r.role != "" {
		d.Roles, d.Placements = r.rolePlacements()
	} else {
		d.MIG = r.shape.mig
	}
	if stop != nil {
		d.Action, d.Reason = berth.ActionStop, stop
		st.stopRun(r)
		return &d
	}
	if lost != nil {
		// A preemption by nobody: the run waits again in its place
		// (its queued-since is kept), uses up no retry, and resumes
		// from its checkpoint when it starts elsewhere.
		d.Action, d.Reason = berth.ActionPreempted, lost
		st.loseRun(r)
		return &d
	}
	r.keep = &d
	return &d
}

// lostNode says why a running run's node is lost, or nil: a node it is
// placed on is no longer in the cluster, or has not been ready for the
// cluster's nodeLostAfter. A node not ready for less, or since a time not
// known, is not lost yet.
func (st *state) lostNode(r *run, snap *berth.Snapshot) *berth.Reason {
	if r.nodesOK && !st.c.notReady {
		return nil // the usual case, without a lookup per run and cycle
	}
	grace := berth.DefaultNodeLostAfter
	if st.cfg != nil {
		grace = st.cfg.Clusters[snap.Cluster].NodeLostGrace()
	}
	check := func(ps []berth.Placement) *berth.Reason {
		for _, p := range ps {
			if p.Node == "" {
				continue
			}
			i, ok := st.c.byName[p.Node]
			if !ok {
				return &berth.Reason{Code: berth.ReasonNodeLost,
					Message: "node " + p.Node + " is gone; requeued in its place, no retry used"}
			}
			n := st.c.nodes[i]
			if !n.ready && !n.notReady.IsZero() && snap.Time.Sub(n.notReady) >= grace {
				return &berth.Reason{Code: berth.ReasonNodeLost, Message: fmt.Sprintf(
					"node %s not ready since %s, past nodeLostAfter %s; requeued in its place, no retry used",
					p.Node, n.notReady.UTC().Format("2006-01-02 15:04:05 UTC"), berth.Duration(grace))}
			}
		}
		return nil
	}
	why := check(r.placements)
	for _, p := range r.more {
		if why == nil {
			why = check(p.placements)
		}
	}
	if why == nil {
		r.nodesOK = true
	}
	return why
}

// scaledDown is why a replica of an autoscaled service (a run named by
// berth.ScaleRunID) stops: its service no longer autoscales, or its
// autoscaler asks for fewer replicas now. nil for any other run, and for a
// replica whose cluster reports no autoscaler this time.
func scaledDown(w *berth.Workload, runID string, snap *berth.Snapshot) *berth.Reason {
	svc, n, ok := berth.ParseScaleRunID(runID)
	if !ok || w.Kind.RunsOnce() {
		return nil
	}
	if w.Autoscale == nil {
		return &berth.Reason{Code: berth.ReasonScaledDown, Message: "the service no longer autoscales: it runs its replicas only"}
	}
	want, ok := snap.ScaleOf(berth.RunKey{Workload: w.ID(), RunID: svc})
	if !ok || n <= w.Autoscale.Replicas(want) {
		return nil
	}
	return &berth.Reason{Code: berth.ReasonScaledDown, Message: fmt.Sprintf("its autoscaler asks for %d replicas now", w.Autoscale.Replicas(want))}
}

// scaleRooms says, on the decision about each autoscaled service's own run
// that holds capacity after the cycle, how far it may scale inside its
// team's quota as the cycle leaves it (policy.ServiceScaleRoom): its
// running replicas (the minimum and each replica run kept or admitted)
// and one replica more at a time up to its max. A pull request's plan
// shows it beside the service.
func (st *state) scaleRooms(ds []*berth.Decision) {
	for i, d := range ds {
		if d.Kind.RunsOnce() || !(d.Action == berth.ActionKeep || d.Starts()) {
			continue
		}
		if _, _, replica := berth.ParseScaleRunID(d.RunID); replica {
			continue
		}
		w, ok := st.cfg.Workloads[d.Workload]
		if !ok || w.Autoscale == nil {
			continue
		}
		// The decisions are sorted by workload: its replicas' are beside.
		running := w.Pods()
		for j := i + 1; j < len(ds) && ds[j].Workload == d.Workload; j++ {
			o := ds[j]
			if svc, _, ok := berth.ParseScaleRunID(o.RunID); ok && svc == d.RunID && (o.Action == berth.ActionKeep || o.Starts()) {
				running++
			}
		}
		room := policy.ServiceScaleRoom(st.quotas, d.Team, d.Flavor, demandOf(w.Resources), running, max(w.Autoscale.Max, running))
		if r := room.String(); r != d.ScaleRoom {
			// On a copy: the decision may be the one its run keeps
			// from cycle to cycle, shared with earlier plans.
			c := *d
			c.ScaleRoom = r
			ds[i] = &c
		}
	}
}

// borrowed reports whether a team borrows GPUs of a flavor. The runs are
// kept or stopped in order of workload, so a team's runs come together: the
// last answer is kept until a run stops.
func (st *state) borrowed(team, flavor string) bool {
	m := &st.borrowMemo
	if !m.ok || m.team != team || m.flavor != flavor {
		*m = borrowMemo{team: team, flavor: flavor, ok: true,
			v: st.quotas.Borrowed(team, flavor, berth.ResourceGPU) > 0}
	}
	return m.v
}

// borrowMemo is the last answer of state.borrowed.
type borrowMemo struct {
	team, flavor string
	v, ok        bool
}

func (st *state) stopRun(r *run) {
	st.borrowMemo.ok = false
	r.gone = true
	st.ending = nil
	st.runShapes = nil
	releaseRun(st.c, st.quotas, r)
	st.resetFailed()
}

// loseRun takes a run whose node is lost off its nodes but leaves its
// quota charged for the rest of the cycle: it is not in this cycle's
// queue yet, and a run queued behind it must not take its quota before it
// waits again at its old queued-since (the next cycle, when the snapshot
// no longer has it running and the quota is released with it).
func (st *state) loseRun(r *run) {
	st.borrowMemo.ok = false
	r.gone, r.holdsQuota = true, true
	st.ending = nil
	st.runShapes = nil
	releaseNodes(st.c, r)
	st.resetFailed()
}

// initReq fills x from r.
func (st *state) initReq(x *req, r *Request) {
	w := r.Workload
	tier, pt := st.cfg.Priority(*w)
	id := r.id
	if id == "" {
		id = w.ID()
	}
	*x = req{
		Request: r, id: id, team: w.Team, prio: pt.Value, tier: tier, canPreempt: pt.CanPreempt,
		shape: shapeOf(w.Resources), pods: w.Pods(), minPods: w.MinPods(), perPod: demandOf(w.Resources),
		flavors: r.flavors,
	}
	if x.flavors == nil {
		x.flavors = CandidateFlavors(st.cfg, *w)
	}
	x.decision = baseDecision(st.cfg, *w, id, r.RunID, st.c.name)
	x.decision.Since = r.Since
	if len(w.Roles) > 0 {
		st.roleRequests(x)
		return
	}
	if x.minPods < x.pods {
		x.decision.PodsAsked, x.decision.MinPods = x.pods, x.minPods
	}
}

// setFragModel sets the workload mix berth's placement judges
// fragmentation against: the shapes of what waits and what runs.
func (st *state) setFragModel(rs []*req) {
	count := map[shape]int{}
	for _, r := range rs {
		for _, x := range r.parts() {
			if x.shape.mig == "" {
				count[x.shape] += x.pods
			}
		}
	}
	if st.runShapes == nil {
		st.runShapes = map[shape]int{}
		for _, r := range st.runs {
			if !r.gone {
				countShapes(st.runShapes, r, 1)
			}
		}
	}
	for sh, n := range st.runShapes {
		count[sh] += n
	}
	var shapes []TypicalShape
	for s, n := range count {
		shapes = append(shapes, TypicalShape{CPU: s.cpu, Memory: s.mem, GPUs: s.gpus, GPUMilli: s.milli, Count: n})
	}
	st.c.setFrag(newFragModel(shapes, 0.95))
}

// countShapes adds (sign 1) or takes away (-1) the pods of a run to the
// counts of shapes outside MIG.
func countShapes(counts map[shape]int, r *run, sign int) {
	add := func(s shape, n int) {
		if s.mig != "" {
			return
		}
		if counts[s] += sign * n; counts[s] == 0 {
			delete(counts, s)
		}
	}
	add(r.shape, len(r.placements))
	for _, p := range r.more {
		add(p.shape, len(p.placements))
	}
}

// quotaUse reports every team's use of every flavor its quota lists.
func (st *state) quotaUse() []berth.QuotaUse {
	var out []berth.QuotaUse
	if st.teamNames == nil {
		st.teamNames = st.cfg.TeamNames() // the teams change only with a new state
	}
	for _, team := range st.teamNames {
		for _, fq := range st.cfg.Teams[team].Quotas() {
			if _, ok := st.c.flavors[fq.Flavor]; !ok {
				continue
			}
			for _, r := range berth.ResourceNames {
				nominal, defined := st.quotas.Nominal(team, fq.Flavor, r)
				if !defined {
					continue
				}
				u := berth.QuotaUse{Team: team, Flavor: fq.Flavor, Resource: r, Nominal: nominal,
					UsedAfter: st.quotas.Used(team, fq.Flavor, r), BorrowedAfter: st.quotas.Borrowed(team, fq.Flavor, r)}
				if st.quotas.InCohort(team) {
					if bl := st.quotas.BorrowingLimit(team, fq.Flavor, r); bl != policy.Unlimited {
						u.BorrowingLimit = &bl
					}
				} else {
					zero := int64(0)
					u.BorrowingLimit = &zero
				}
				out = append(out, u)
			}
		}
	}
	return out
}

// mergeQuota combines the use before and after the cycle.
func mergeQuota(before, after []berth.QuotaUse) []berth.QuotaUse {
	for i := range after {
		after[i].UsedBefore = before[i].UsedAfter
		after[i].BorrowedBefore = before[i].BorrowedAfter
	}
	return after
}

// chunkMin is the fewest items inChunks splits: below it, goroutines cost
// more than they save.
var chunkMin = 4096

// inChunks calls f on consecutive ranges covering [0, n), one per core at
// once when n is at least chunkMin, else on [0, n) in this goroutine.
func inChunks(n int, f func(lo, hi int)) {
	k := min(runtime.GOMAXPROCS(0), n/(chunkMin/2))
	if n < chunkMin || k <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() { f(i*n/k, (i+1)*n/k) })
	}
	wg.Wait()
}
