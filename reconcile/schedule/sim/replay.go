package sim

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// ReplayOptions configure a replay.
type ReplayOptions struct {
	Setup
	// Policies to run (nil: Policies).
	Policies []string
	// SampleEvery is the interval between allocation samples, in seconds
	// (0: one day divided by Speedup). Samples cover the time pods arrive.
	SampleEvery int64
	// Coverage is the share of pods the typical shapes berth's placement
	// judges fragmentation against cover (0: 0.95).
	Coverage float64
	// Speedup divides every arrival time (creation_time) by this factor,
	// keeping run times and patience as they are, so the same pods arrive
	// faster (0 or 1: trace time). The Alibaba 2023 trace's pods are short
	// (median 540 s) and never ask for more than 66 GPUs at once in trace
	// time, so only a speedup of about 100 brings demand to capacity.
	Speedup int64
	// NodeShare keeps an evenly spread share (0 to 1) of the nodes, sorted
	// by name: node i stays when floor((i+1) x share) > floor(i x share).
	// 0 or 1: all. With Speedup it makes a contended cluster out of a
	// trace that does not contend for its own.
	NodeShare float64
	// Progress, when set, is called before each policy's replay with the
	// policy and its place among them (1-based).
	Progress func(policy string, i, n int)
}

// ReplayReport is the result of a replay.
type ReplayReport struct {
	Mode        string  `json:"mode"`
	Nodes       int     `json:"nodes"`
	GPUs        int64   `json:"gpus"`
	Pods        int     `json:"pods"`
	Teams       int     `json:"teams"`
	TeamQuota   float64 `json:"teamQuota,omitempty"`
	QoSPriority bool    `json:"qosPriority,omitempty"`
	FairSharing bool    `json:"fairSharing,omitempty"`
	Speedup     int64   `json:"speedup"`
	NodeShare   float64 `json:"nodeShare,omitempty"`
	SampleEvery int64   `json:"sampleEverySeconds"`
	// PeakDemandGPUs is the most GPUs the pods ask for at once if each
	// runs from its (sped-up) arrival for its run time.
	PeakDemandGPUs float64        `json:"peakDemandGPUs"`
	Policies       []ReplayPolicy `json:"policies"`
}

// ReplayPolicy is one policy's replay.
type ReplayPolicy struct {
	Policy string `json:"policy"`
	// Cycles is how many scheduling cycles ran (one per time with an
	// arrival or a departure that had something to decide).
	Cycles int `json:"cycles"`
	// End is when the last pod left, in trace seconds.
	End int64 `json:"end"`
	// Started pods ran; Rejected can never fit (the decision said so);
	// Abandoned were never scheduled in the trace and left the queue at
	// their deletion time without starting here either; Unfinished still
	// waited when nothing else was left to happen.
	Started    int `json:"started"`
	Rejected   int `json:"rejected"`
	Abandoned  int `json:"abandoned"`
	Unfinished int `json:"unfinished"`
	// AllocatedPct is the time-weighted mean share of GPUs allocated while
	// pods arrive (from the first arrival to the last).
	AllocatedPct float64    `json:"allocatedPct"`
	Saturated    Saturation `json:"saturated"`
	Wait         Wait       `json:"wait"`
	Fairness     Fairness   `json:"fairness"`
	Samples      []Sample   `json:"samples"`
}

// Saturation is how the cluster did while demand (what runs plus what
// waits) was at or above its GPU capacity: then every idle GPU is one a
// waiting pod could not use.
type Saturation struct {
	Seconds int64 `json:"seconds"`
	// UnallocatedPct and UnallocatedGPUs are time-weighted means over
	// those times.
	UnallocatedPct  float64 `json:"unallocatedPct"`
	UnallocatedGPUs float64 `json:"unallocatedGPUs"`
}

// Wait is the queue wait of the pods that started (start - creation), in
// seconds; percentiles are nearest-rank.
type Wait struct {
	Pods    int     `json:"pods"`
	Waited  int     `json:"waited"` // pods that did not start on arrival
	Mean    float64 `json:"mean"`
	P50     int64   `json:"p50"`
	P90     int64   `json:"p90"`
	P99     int64   `json:"p99"`
	Max     int64   `json:"max"`
	GPUPods int     `json:"gpuPods"`
	GPUP99  int64   `json:"gpuP99"` // p99 over pods with GPUs
}

// Fairness compares what each team got with what it wanted. A team's
// demand is the time integral of the GPUs it had running or waiting; its
// allocation the integral of the GPUs it had running. Jain's index over
// the teams' allocation/demand ratios is 1 when every team got the same
// share of what it asked for.
type Fairness struct {
	Jain  float64    `json:"jain"`
	Teams []TeamStat `json:"teams"`
}

// TeamStat is one team's share.
type TeamStat struct {
	Team              string  `json:"team"`
	Pods              int     `json:"pods"`
	DemandGPUHours    float64 `json:"demandGPUHours"`
	AllocatedGPUHours float64 `json:"allocatedGPUHours"`
	Ratio             float64 `json:"ratio"`
	WaitP50           int64   `json:"waitP50"`
	WaitP90           int64   `json:"waitP90"`
}

// Sample is the cluster at one time.
type Sample struct {
	Time          int64   `json:"t"`
	AllocatedGPUs float64 `json:"allocatedGPUs"`
	AllocatedPct  float64 `json:"allocatedPct"`
	WaitingPods   int     `json:"waitingPods"`
	WaitingGPUs   float64 `json:"waitingGPUs"`
}

// Replay replays the trace in simulated time through the scheduler, once
// per policy:
//
//   - A pod arrives at its creation_time and waits in the queue until a
//     scheduling cycle admits it. All events at one time (departures, then
//     arrivals) are followed by one cycle: of everything waiting when a
//     departure freed capacity, of the new arrivals alone otherwise (what
//     waited already did not fit, and nothing freed since).
//   - A pod the trace scheduled runs for its trace duration
//     (deletion_time - scheduled_time) from when it starts here, so it
//     leaves at its deletion_time if it starts when it did in the trace,
//     and later by exactly its extra wait.
//   - A pod the trace never scheduled was deleted while pending; here it
//     leaves the queue at its deletion_time if it has not started (after
//     that time's cycle, so it gets that last chance); if it has started,
//     it runs until its deletion_time (its true run time is unknown).
//   - Nothing is preempted (no tier may preempt) and there is no backfill
//     reservation: a cycle admits, in queue order, whatever fits.
//
// berth's placement judges fragmentation against the trace's typical
// shapes (SetTypicalShapes), as in the paper's experiment, rather than
// rebuilding the mix from what waits every cycle.
func Replay(tr *Trace, opts ReplayOptions) (*ReplayReport, error) {
	policies, err := checkPolicies(opts.Policies, Policies)
	if err != nil {
		return nil, err
	}
	coverage := opts.Coverage
	if coverage <= 0 {
		coverage = 0.95
	}
	speedup := max(opts.Speedup, 1)
	every := opts.SampleEvery
	if every <= 0 {
		every = max(86400/speedup, 1)
	}
	nodes := sortedNodes(tr.Nodes)
	if opts.NodeShare < 0 || opts.NodeShare > 1 {
		return nil, fmt.Errorf("node share %g: want 0 to 1", opts.NodeShare)
	}
	if sh := opts.NodeShare; sh > 0 && sh < 1 {
		var kept []Node
		for i, n := range nodes {
			if math.Floor(float64(i+1)*sh) > math.Floor(float64(i)*sh) {
				kept = append(kept, n)
			}
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("node share %g keeps no node of %d", sh, len(nodes))
		}
		nodes = kept
	}
	var capacity int64
	for _, n := range nodes {
		capacity += int64(n.GPUs) * 1000
	}
	if capacity == 0 {
		return nil, fmt.Errorf("the nodes have no GPUs")
	}
	w := Build(nodes, tr.Pods, opts.Setup)
	shapes := TypicalShapes(tr.Pods)
	timeline := make([]podTimes, len(tr.Pods))
	for i, p := range tr.Pods {
		timeline[i] = timesOf(p, speedup)
	}
	rep := &ReplayReport{
		Mode: "replay", Nodes: len(nodes), GPUs: capacity / 1000, Pods: len(tr.Pods), NodeShare: opts.NodeShare,
		Teams: opts.teams(), TeamQuota: opts.TeamQuota, QoSPriority: opts.QoSPriority,
		FairSharing: opts.FairSharing, Speedup: speedup, SampleEvery: every,
		PeakDemandGPUs: peakDemand(tr.Pods, timeline),
	}
	for i, p := range policies {
		if opts.Progress != nil {
			opts.Progress(p, i+1, len(policies))
		}
		r := &replayer{w: w, pods: tr.Pods, times: timeline, capacity: capacity, every: every, setup: opts.Setup}
		rep.Policies = append(rep.Policies, r.run(p, shapes, coverage))
	}
	return rep, nil
}

// Pod states during a replay.
const (
	podFuture = iota
	podWaiting
	podRunning
	podDone
	podRejected
	podAbandoned
)

// podTimes is when a pod arrives, and how long it runs once started or, if
// the trace never scheduled it, when it gives up waiting.
type podTimes struct {
	arrive  int64
	run     int64 // -1: never scheduled in the trace
	abandon int64
}

func timesOf(p Pod, speedup int64) podTimes {
	t := podTimes{arrive: p.Creation / speedup, run: -1}
	if p.Scheduled >= 0 {
		t.run = p.Deletion - p.Scheduled
	} else {
		t.abandon = t.arrive + (p.Deletion - p.Creation)
	}
	return t
}

// peakDemand is the most GPU thousandths asked for at once, in GPUs, if
// every pod runs from its arrival.
func peakDemand(pods []Pod, ts []podTimes) float64 {
	type ev struct{ t, g int64 }
	evs := make([]ev, 0, 2*len(pods))
	for i, p := range pods {
		end := ts[i].abandon
		if ts[i].run >= 0 {
			end = ts[i].arrive + ts[i].run
		}
		evs = append(evs, ev{ts[i].arrive, p.GPURequest()}, ev{end, -p.GPURequest()})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.g, b.g)) // departures first
	})
	var cur, peak int64
	for _, e := range evs {
		cur += e.g
		peak = max(peak, cur)
	}
	return float64(peak) / 1000
}

type replayer struct {
	w        *World
	pods     []Pod
	times    []podTimes
	capacity int64
	every    int64
	setup    Setup

	s       *schedule.Scheduler
	state   []uint8
	start   []int64
	team    []int
	waiting []int // pod indexes in arrival order; stale entries skipped
	deps    depHeap

	alloc, queued       int64 // GPU thousandths running, waiting
	nWaiting            int
	teamAlloc, teamWant []int64 // GPU thousandths per team: running; running or waiting
	teamAllocT          []float64
	teamWantT           []float64
	allocT              float64
	satT                int64
	satUnallocT         float64

	res      ReplayPolicy
	nextSamp int64
	// the arrival window: samples and the mean allocation cover it
	firstArrival, lastArrival int64
}

func (r *replayer) run(policy string, shapes []schedule.TypicalShape, coverage float64) ReplayPolicy {
	r.reset(policy, shapes, coverage)
	ev := r.events()
	r.nextSamp = (r.firstArrival + r.every - 1) / r.every * r.every
	prev := r.firstArrival
	var fresh []int
	reqs := make([]schedule.Request, 0, 64)
	for {
		t := r.nextEvent(ev)
		if t == math.MaxInt64 {
			break
		}
		r.advance(prev, t)
		prev = t

		// 1. Departures free capacity.
		freed := r.departures(t)
		// 2. Arrivals join the queue.
		fresh = r.arrivals(ev, t, fresh[:0])
		// 3. One cycle of what may now start.
		cand := fresh
		if freed {
			r.compact()
			cand = r.waiting
		}
		reqs = r.cycle(cand, t, reqs[:0])
		// 4. Pods the trace never scheduled leave at their deletion time.
		r.abandon(ev, t)
	}
	r.summarize(prev)
	return r.res
}

// reset starts a replay of policy: a fresh scheduler and empty counters.
func (r *replayer) reset(policy string, shapes []schedule.TypicalShape, coverage float64) {
	n := len(r.pods)
	r.s = r.w.NewScheduler(policy)
	r.s.SetTypicalShapes(shapes, coverage)
	r.res = ReplayPolicy{Policy: policy}
	r.state = make([]uint8, n)
	r.start = make([]int64, n)
	teams := r.setup.teams()
	r.team = make([]int, n)
	for i, p := range r.pods {
		r.team[i] = r.setup.teamIndex(p.Name)
	}
	r.teamAlloc = make([]int64, teams)
	r.teamWant = make([]int64, teams)
	r.teamAllocT = make([]float64, teams)
	r.teamWantT = make([]float64, teams)
}

// eventQueue is the trace's arrivals and abandons (pods it never ran),
// each in time order, and how far the replay has consumed them.
type eventQueue struct {
	arrivals, abandons []int
	ai, bi             int
}

// events orders the trace's arrivals and abandons and sets the arrival
// window.
func (r *replayer) events() *eventQueue {
	n := len(r.pods)
	ev := &eventQueue{arrivals: make([]int, n)}
	for i := range ev.arrivals {
		ev.arrivals[i] = i
	}
	slices.SortStableFunc(ev.arrivals, func(a, b int) int { return cmp.Compare(r.times[a].arrive, r.times[b].arrive) })
	for i, t := range r.times {
		if t.run < 0 {
			ev.abandons = append(ev.abandons, i)
		}
	}
	slices.SortStableFunc(ev.abandons, func(a, b int) int { return cmp.Compare(r.times[a].abandon, r.times[b].abandon) })
	if n > 0 {
		r.firstArrival = r.times[ev.arrivals[0]].arrive
		r.lastArrival = r.times[ev.arrivals[n-1]].arrive
	}
	return ev
}

// nextEvent is the next time anything happens (math.MaxInt64: nothing
// more will).
func (r *replayer) nextEvent(ev *eventQueue) int64 {
	t := int64(math.MaxInt64)
	if ev.ai < len(ev.arrivals) {
		t = r.times[ev.arrivals[ev.ai]].arrive
	}
	if len(r.deps) > 0 && r.deps[0].t < t {
		t = r.deps[0].t
	}
	if ev.bi < len(ev.abandons) && r.times[ev.abandons[ev.bi]].abandon < t {
		t = r.times[ev.abandons[ev.bi]].abandon
	}
	return t
}

// departures finishes the pods due by t; freed says whether any did.
func (r *replayer) departures(t int64) (freed bool) {
	for len(r.deps) > 0 && r.deps[0].t <= t {
		i := heap.Pop(&r.deps).(dep).i
		r.finish(i)
		freed = true
	}
	return freed
}

// arrivals queues the pods arriving by t and appends them to fresh.
func (r *replayer) arrivals(ev *eventQueue, t int64, fresh []int) []int {
	for ev.ai < len(ev.arrivals) && r.times[ev.arrivals[ev.ai]].arrive <= t {
		i := ev.arrivals[ev.ai]
		ev.ai++
		r.state[i] = podWaiting
		r.waiting = append(r.waiting, i)
		r.nWaiting++
		g := r.pods[i].GPURequest()
		r.queued += g
		r.teamWant[r.team[i]] += g
		fresh = append(fresh, i)
	}
	return fresh
}

// cycle runs one scheduling cycle at t over the candidate pods; reqs is
// scratch space, returned for reuse.
func (r *replayer) cycle(cand []int, t int64, reqs []schedule.Request) []schedule.Request {
	if len(cand) == 0 {
		return reqs
	}
	for _, i := range cand {
		reqs = append(reqs, schedule.Request{Workload: &r.w.Workloads[i], RunID: runID, Since: At(r.times[i].arrive)})
	}
	ds := r.s.Decide(At(t), reqs)
	r.res.Cycles++
	for k, d := range ds {
		r.decided(cand[k], d, t)
	}
	return reqs
}

// abandon takes out of the queue the pods the trace deleted by t
// without ever running them.
func (r *replayer) abandon(ev *eventQueue, t int64) {
	for ev.bi < len(ev.abandons) && r.times[ev.abandons[ev.bi]].abandon <= t {
		i := ev.abandons[ev.bi]
		ev.bi++
		if r.state[i] == podWaiting {
			r.leaveQueue(i, podAbandoned)
			r.res.Abandoned++
		}
	}
}

// summarize fills the result's totals once the replay ended at end.
func (r *replayer) summarize(end int64) {
	r.res.End = end
	for _, st := range r.state {
		if st == podWaiting {
			r.res.Unfinished++
		}
	}
	span := float64(r.lastArrival - r.firstArrival)
	if span > 0 {
		r.res.AllocatedPct = round(100*r.allocT/span/float64(r.capacity), 3)
	}
	if r.satT > 0 {
		r.res.Saturated = Saturation{Seconds: r.satT,
			UnallocatedPct:  round(100*r.satUnallocT/float64(r.satT)/float64(r.capacity), 3),
			UnallocatedGPUs: round(r.satUnallocT/float64(r.satT)/1000, 1)}
	}
	r.res.Wait, r.res.Fairness = r.waits()
}

// advance integrates the metrics over [from, to) and takes the samples in
// it; the state is the one after the events at from.
func (r *replayer) advance(from, to int64) {
	for r.nextSamp < to && r.nextSamp <= r.lastArrival {
		r.sample(r.nextSamp)
		r.nextSamp += r.every
	}
	dt := to - from
	if dt <= 0 {
		return
	}
	if a, b := max(from, r.firstArrival), min(to, r.lastArrival); b > a {
		r.allocT += float64(r.alloc) * float64(b-a)
	}
	for k := range r.teamAlloc {
		r.teamAllocT[k] += float64(r.teamAlloc[k]) * float64(dt)
		r.teamWantT[k] += float64(r.teamWant[k]) * float64(dt)
	}
	if r.alloc+r.queued >= r.capacity {
		r.satT += dt
		r.satUnallocT += float64(r.capacity-r.alloc) * float64(dt)
	}
}

func (r *replayer) sample(t int64) {
	r.res.Samples = append(r.res.Samples, Sample{
		Time: t, AllocatedGPUs: round(float64(r.alloc)/1000, 3),
		AllocatedPct: round(100*float64(r.alloc)/float64(r.capacity), 3),
		WaitingPods:  r.nWaiting, WaitingGPUs: round(float64(r.queued)/1000, 3),
	})
}

// decided applies the cycle's decision for pod i at time t.
func (r *replayer) decided(i int, d berth.Decision, t int64) {
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt:
		g := r.pods[i].GPURequest()
		r.leaveQueue(i, podRunning)
		r.teamWant[r.team[i]] += g // still wanted, now running
		r.alloc += g
		r.teamAlloc[r.team[i]] += g
		r.start[i] = t
		end := r.times[i].abandon // never scheduled in the trace: runs until deleted
		if r.times[i].run >= 0 {
			end = t + r.times[i].run
		}
		heap.Push(&r.deps, dep{t: max(end, t), i: i})
		r.res.Started++
	case berth.ActionReject:
		r.leaveQueue(i, podRejected)
		r.res.Rejected++
	}
}

// leaveQueue takes pod i out of the queue into state st.
func (r *replayer) leaveQueue(i int, st uint8) {
	g := r.pods[i].GPURequest()
	r.state[i] = st
	r.nWaiting--
	r.queued -= g
	r.teamWant[r.team[i]] -= g
}

func (r *replayer) finish(i int) {
	if !r.s.Finish(r.w.Workloads[i].ID(), runID) {
		panic("sim: finished a pod the scheduler does not run: " + r.pods[i].Name)
	}
	g := r.pods[i].GPURequest()
	r.state[i] = podDone
	r.alloc -= g
	r.teamAlloc[r.team[i]] -= g
	r.teamWant[r.team[i]] -= g
}

// compact drops the queue's entries for pods no longer waiting.
func (r *replayer) compact() {
	out := r.waiting[:0]
	for _, i := range r.waiting {
		if r.state[i] == podWaiting {
			out = append(out, i)
		}
	}
	r.waiting = out
}

// waits computes the wait statistics and per-team fairness.
func (r *replayer) waits() (Wait, Fairness) {
	teams := r.setup.teams()
	var all, gpu []int64
	perTeam := make([][]int64, teams)
	pods := make([]int, teams)
	var sum float64
	waited := 0
	for i, st := range r.state {
		pods[r.team[i]]++
		if st != podRunning && st != podDone {
			continue
		}
		wt := r.start[i] - r.times[i].arrive
		all = append(all, wt)
		if r.pods[i].NumGPU > 0 {
			gpu = append(gpu, wt)
		}
		perTeam[r.team[i]] = append(perTeam[r.team[i]], wt)
		sum += float64(wt)
		if wt > 0 {
			waited++
		}
	}
	w := Wait{Pods: len(all), Waited: waited, GPUPods: len(gpu)}
	if len(all) > 0 {
		sortInts(all)
		w.Mean = round(sum/float64(len(all)), 1)
		w.P50, w.P90, w.P99, w.Max = pct(all, 50), pct(all, 90), pct(all, 99), all[len(all)-1]
	}
	if len(gpu) > 0 {
		sortInts(gpu)
		w.GPUP99 = pct(gpu, 99)
	}
	var f Fairness
	var s1, s2 float64
	nr := 0
	for k := range teams {
		ts := TeamStat{Team: teamName(k), Pods: pods[k],
			DemandGPUHours:    round(r.teamWantT[k]/1000/3600, 1),
			AllocatedGPUHours: round(r.teamAllocT[k]/1000/3600, 1)}
		if r.teamWantT[k] > 0 {
			x := r.teamAllocT[k] / r.teamWantT[k]
			ts.Ratio = round(x, 4)
			s1 += x
			s2 += x * x
			nr++
		}
		if ws := perTeam[k]; len(ws) > 0 {
			sortInts(ws)
			ts.WaitP50, ts.WaitP90 = pct(ws, 50), pct(ws, 90)
		}
		f.Teams = append(f.Teams, ts)
	}
	if s2 > 0 {
		f.Jain = round(s1*s1/(float64(nr)*s2), 4)
	}
	return w, f
}

func sortInts(a []int64) {
	slices.SortFunc(a, func(a, b int64) int {
		return cmp.Compare(a, b)
	})
}

// pct is the nearest-rank p-th percentile of sorted a.
func pct(a []int64, p int) int64 {
	k := (p*len(a) + 99) / 100
	if k < 1 {
		k = 1
	}
	return a[k-1]
}

type dep struct {
	t int64
	i int
}

// depHeap orders departures by time, then pod index, so equal times
// leave in a fixed order.
type depHeap []dep

func (h depHeap) Len() int { return len(h) }
func (h depHeap) Less(a, b int) bool {
	if h[a].t != h[b].t {
		return h[a].t < h[b].t
	}
	return h[a].i < h[b].i
}
func (h depHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *depHeap) Push(x any)   { *h = append(*h, x.(dep)) }
func (h *depHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
