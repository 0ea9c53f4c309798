package schedule

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/robfig/cron/v3"

	"github.com/berth-gpu/berth"
)

// Request is a run that wants to start.
type Request struct {
	Workload *berth.Workload // not changed by the scheduler
	// RunID is the run: the workload's runId, or a periodic job's tick.
	RunID string
	// Since is when the run was first seen waiting; equal priorities are
	// served in this order.
	Since time.Time

	// id and flavors cache Workload.ID() and CandidateFlavors where
	// prepare has them.
	id      berth.WorkloadID
	flavors []string
}

// CandidateFlavors returns the flavors a workload may run on, in the order
// its team's quota lists them: the one it names, or those that offer what
// it asks (its MIG profile; GPUs of its model; CPU-only pools for a
// workload without GPUs, or any flavor when the team has no CPU-only pool).
//
// For a workload with roles it returns its first role's that has any.
func CandidateFlavors(cfg *berth.Config, w berth.Workload) []string {
	return candidateFlavorsOf(cfg, &w)
}

// candidateFlavorsOf is CandidateFlavors without a copy of the workload.
func candidateFlavorsOf(cfg *berth.Config, w *berth.Workload) []string {
	if len(w.Roles) == 0 {
		return candidateFlavors(cfg, w.Team, w.Resources, nil)
	}
	var out []string
	for _, ps := range w.PodSets() {
		if out = candidateFlavors(cfg, w.Team, ps.Resources, ps.NodeSelector); len(out) > 0 {
			break
		}
	}
	return out
}

// candidateFlavors is CandidateFlavors for one pod set: a flavor whose node
// labels contradict the pod set's node selector is not one (as Kueue skips
// a flavor that does not match a pod set's node affinity).
func candidateFlavors(cfg *berth.Config, teamName string, r berth.Resources, sel map[string]string) []string {
	team, ok := cfg.Teams[teamName]
	if !ok {
		return nil
	}
	if len(team.ResourceGroups) > 0 {
		return groupCandidates(cfg, team, r, sel)
	}
	var out, fallback []string
	for _, q := range team.Quota {
		f, ok := cfg.Flavors[q.Flavor]
		if !ok || contradicts(f.NodeLabels, sel) {
			continue
		}
		if r.Flavor != "" {
			if f.Name == r.Flavor {
				out = append(out, f.Name)
			}
			continue
		}
		switch {
		case r.MIG != "":
			if f.MIG == r.MIG && (r.GPUModel == "" || ModelMatches(r.GPUModel, f.GPUModel)) {
				out = append(out, f.Name)
			}
		case r.UsesGPU():
			if f.GPUModel != "" && f.MIG == "" && (r.GPUModel == "" || ModelMatches(r.GPUModel, f.GPUModel) || r.GPUModel == f.GPUModel) {
				out = append(out, f.Name)
			}
		default:
			if f.GPUModel == "" {
				out = append(out, f.Name)
			} else if f.MIG == "" {
				fallback = append(fallback, f.Name)
			}
		}
	}
	if len(out) == 0 && !r.UsesGPU() {
		return fallback
	}
	return out
}

// groupCandidates is candidateFlavors for a team whose quota has resource
// groups. Kueue's flavor assigner takes, for each group whose resources a
// pod set asks, one flavor of that group, trying them in order; berth lists
// every such choice, one flavor per group asked of, in the order the
// assigner tries them (the first group's flavors outermost), each joined
// into one name by berth.FlavorSeparator ("h100+cpu-nodes"). A choice whose
// flavors cannot meet on one node is not one. A pod that asks nothing any
// group covers may run on any one flavor of the groups (and is charged
// nowhere: what no group covers is not limited).
func groupCandidates(cfg *berth.Config, team berth.Team, r berth.Resources, sel map[string]string) []string {
	asks := map[berth.Resource]bool{berth.ResourceGPU: r.UsesGPU(), berth.ResourceCPU: !r.CPU.IsZero(),
		berth.ResourceMemory: !r.Memory.IsZero()}
	if r.Flavor != "" && !inGroups(team, r.Flavor) {
		return nil // it names a flavor the team has no quota of
	}
	var lists [][]string
	var any []string
	for _, g := range team.ResourceGroups {
		asked, gpu := false, false
		for _, res := range g.CoveredResources {
			asked = asked || asks[res]
			gpu = gpu || res == berth.ResourceGPU
		}
		pinned := false
		for _, fr := range g.Flavors {
			pinned = pinned || fr.Name == r.Flavor
		}
		var opts []string
		for _, fr := range g.Flavors {
			f, ok := cfg.Flavors[fr.Name]
			if !ok || contradicts(f.NodeLabels, sel) || (pinned && f.Name != r.Flavor) {
				continue
			}
			if gpu && r.UsesGPU() && !offersGPU(f, r) {
				continue
			}
			opts = append(opts, f.Name)
		}
		if !asked {
			any = append(any, opts...)
			continue
		}
		if len(opts) == 0 {
			return nil
		}
		lists = append(lists, opts)
	}
	if len(lists) == 0 {
		return any
	}
	out := []string{""}
	for _, opts := range lists {
		next := make([]string, 0, len(out)*len(opts))
		for _, prefix := range out {
			for _, f := range opts {
				if prefix == "" {
					next = append(next, f)
				} else {
					next = append(next, prefix+berth.FlavorSeparator+f)
				}
			}
		}
		out = next
	}
	kept := out[:0]
	for _, name := range out {
		if f, ok := cfg.FlavorNamed(name); ok && !contradicts(f.NodeLabels, sel) && (!r.UsesGPU() || offersGPU(f, r)) {
			kept = append(kept, name)
		}
	}
	return kept
}

func inGroups(team berth.Team, flavor string) bool {
	for _, g := range team.ResourceGroups {
		for _, f := range g.Flavors {
			if f.Name == flavor {
				return true
			}
		}
	}
	return false
}

// offersGPU reports whether a flavor offers the GPUs r asks: its MIG
// profile, or whole GPUs of its model.
func offersGPU(f berth.Flavor, r berth.Resources) bool {
	if r.MIG != "" {
		return f.MIG == r.MIG && (r.GPUModel == "" || ModelMatches(r.GPUModel, f.GPUModel))
	}
	return f.GPUModel != "" && f.MIG == "" && (r.GPUModel == "" || ModelMatches(r.GPUModel, f.GPUModel) || r.GPUModel == f.GPUModel)
}

// contradicts reports whether a node selector asks for another value of a
// label the flavor's nodes carry.
func contradicts(labels, sel map[string]string) bool {
	for k, v := range sel {
		if have, ok := labels[k]; ok && have != v {
			return true
		}
	}
	return false
}

// ClusterOf is the cluster a workload runs on: that of its first candidate
// flavor, or the default cluster when it has none (where its plan rejects
// it).
func ClusterOf(cfg *berth.Config, w berth.Workload) string {
	return clusterOf(cfg, CandidateFlavors(cfg, w))
}

// clusterOf is ClusterOf from the workload's candidate flavors.
func clusterOf(cfg *berth.Config, flavors []string) string {
	if len(flavors) > 0 {
		return cfg.FlavorCluster(flavors[0])
	}
	return cfg.DefaultCluster()
}

// prepare is the first stage of every cycle: from the configuration and a
// cluster snapshot (as of snap.Time) it derives the runs that want to start
// on that cluster now, and a decision for each workload that does not:
//   - a run-once workload whose current run finished is done (a failed one
//     says how many attempts it took);
//   - a workload whose dependsOn has not succeeded waits (or, when one
//     failed, the chain stops);
//   - a periodic job runs only as ticks: the ticks after the newest one
//     the snapshot knows are queued as its catchUp says (none: the latest,
//     if missed by less than the tick deadline), and those that are not
//     are reported (TicksMissed); with concurrency forbid nothing is
//     queued while a run of it runs; between ticks it waits for the next
//     one;
//   - a run whose last attempt failed (or a service whose process ended)
//     waits out its backoff before it asks again.
//
// Running runs are neither: the cycle keeps or stops them. The engine,
// `berth plan`, the pull-request planner and `berth snapshot` all reach
// this through Schedule, so none of them derives any part of it alone.
//
// wls are the configuration's workloads and runs the snapshot's running
// runs, both sorted by workload: prepare walks them side by side, in a
// chunk of the workloads per core. The requests come in parts, one per
// chunk, in workload order.
func prepare(cfg *berth.Config, snap *berth.Snapshot, opts Options, wls []*wlInfo, runs []*run) ([][]Request, []*berth.Decision) {
	queued := indexQueue(snap.Queue)
	finished := map[berth.WorkloadID]map[string]berth.FinishedRun{}
	for _, f := range snap.Finished {
		if finished[f.Workload] == nil {
			finished[f.Workload] = map[string]berth.FinishedRun{}
		}
		finished[f.Workload][f.RunID] = f
	}
	// The workloads are prepared in a chunk per core, each chunk's
	// requests and decisions in workload order, joined in chunk order:
	// what one workload asks depends on nothing another asks.
	var parts []*preparer
	var mu sync.Mutex
	inChunks(len(wls), func(lo, hi int) {
		p := &preparer{cfg: cfg, snap: snap, opts: opts, runs: runs, queued: queued, finished: finished}
		p.prepare(wls, lo, hi)
		mu.Lock()
		parts = append(parts, p)
		mu.Unlock()
	})
	slices.SortFunc(parts, func(a, b *preparer) int { return a.lo - b.lo })
	reqs := make([][]Request, len(parts))
	var decisions []*berth.Decision
	for i, p := range parts {
		reqs[i] = p.reqs
		decisions = append(decisions, p.decisions...)
	}
	return reqs, decisions
}

// prepare prepares wls[lo:hi].
func (p *preparer) prepare(wls []*wlInfo, lo, hi int) {
	cfg, snap, runs := p.cfg, p.snap, p.runs
	p.lo = lo
	p.reqs = make([]Request, 0, hi-lo+16) // at most one each, but for replicas and ticks
	var buf []berth.QueuedWorkload
	// runs[next:] are of this workload or later ones (runs and workloads
	// are both sorted).
	next := 0
	if lo > 0 {
		next, _ = slices.BinarySearchFunc(runs, wls[lo].id, func(r *run, id berth.WorkloadID) int { return strings.Compare(string(r.id), string(id)) })
	}
	for _, wl := range wls[lo:hi] {
		id, w := wl.id, &wl.w
		// A run linked to this very workload is of it: most runs are
		// found without comparing ids.
		for next < len(runs) && runs[next].wl != wl && runs[next].id < id {
			next++
		}
		end := next
		for end < len(runs) && (runs[end].wl == wl || runs[end].id == id) {
			end++
		}
		mine := runs[next:end]
		// A service runs whatever its run id; a run-once workload whose
		// current run is running is kept. (A bumped runId while the old
		// run still runs asks for a new run beside it.) The cycle keeps
		// or stops it, on whichever cluster it runs.
		if len(mine) > 0 && w.Schedule == "" && (!w.Kind.RunsOnce() || hasRunning(mine, w.RunID)) {
			if w.Autoscale != nil && wl.cluster == snap.Cluster {
				p.reqs = scaleRequests(p.reqs, w, id, mine, snap, p.queued)
			}
			continue
		}
		if wl.cluster != snap.Cluster {
			continue
		}
		base := baseDecision(cfg, *w, id, w.RunID, snap.Cluster)
		if (w.Kind.RunsOnce() || w.Kind == berth.KindNotebook) && w.Schedule == "" {
			if f, ok := p.finished[id][w.RunID]; ok {
				d := doneDecision(base, f)
				p.decisions = append(p.decisions, &d)
				continue
			}
		}
		if d, wait := p.dependencies(w, base); wait {
			p.decisions = append(p.decisions, &d)
			continue
		}
		if w.Schedule != "" {
			p.periodic(w, id, mine, base, wl.flavors)
			continue
		}
		q := berth.QueuedWorkload{Workload: id, RunID: w.RunID, Since: snap.Time}
		buf = p.queued.of(id, buf[:0])
		for _, x := range buf {
			if x.RunID == "" || x.RunID == w.RunID {
				q = x
				q.RunID = w.RunID
			}
		}
		p.ask(w, q, base, wl.flavors)
	}
}

// preparer is prepare's state while it walks the workloads: what the
// snapshot holds, and the requests and decisions made so far.
type preparer struct {
	cfg       *berth.Config
	snap      *berth.Snapshot
	opts      Options
	runs      []*run // the snapshot's running runs, sorted by workload
	queued    queueIndex
	finished  map[berth.WorkloadID]map[string]berth.FinishedRun
	reqs      []Request
	decisions []*berth.Decision // each its own: a slice of 50,000 grew by copying
	lo        int               // the index of the first workload prepared
}

// runsOf is the running runs of workload id, for a dependency (any
// workload).
func (p *preparer) runsOf(id berth.WorkloadID) []*run {
	i, _ := slices.BinarySearchFunc(p.runs, id, func(r *run, id berth.WorkloadID) int { return strings.Compare(string(r.id), string(id)) })
	j := i
	for j < len(p.runs) && p.runs[j].id == id {
		j++
	}
	return p.runs[i:j]
}

// depState says whether a dependency is satisfied: its current run
// succeeded (a periodic job: any run succeeded; a service: running), or
// failed.
func (p *preparer) depState(id berth.WorkloadID) (succeeded, failed bool) {
	d, ok := p.cfg.Workloads[id]
	if !ok {
		return false, false
	}
	if !d.Kind.RunsOnce() {
		return len(p.runsOf(id)) > 0, false
	}
	runs := p.finished[id]
	if d.Schedule != "" {
		for _, f := range runs {
			if f.Succeeded {
				return true, false
			}
		}
		return false, false
	}
	if f, ok := runs[d.RunID]; ok {
		return f.Succeeded, !f.Succeeded
	}
	return false, false
}

// dependencies is the decision to hold w back while its dependencies, in
// the order written, have not succeeded (or the chain stops where one
// failed); wait is false when all have succeeded.
func (p *preparer) dependencies(w *berth.Workload, base berth.Decision) (d berth.Decision, wait bool) {
	var pending, failed []string
	for _, dep := range w.Dependencies() {
		switch ok, bad := p.depState(dep); {
		case bad:
			failed = append(failed, string(dep))
		case !ok:
			pending = append(pending, string(dep))
		}
	}
	d = base
	d.Action = berth.ActionWait
	switch {
	case len(failed) > 0:
		d.Reason = &berth.Reason{Code: berth.ReasonDependencyFailed,
			Message: fmt.Sprintf("dependency %s failed: the pipeline stops here until it succeeds", joinList(failed))}
	case len(pending) > 0:
		d.Reason = &berth.Reason{Code: berth.ReasonDependency,
			Message: fmt.Sprintf("waiting for %s to succeed", joinList(pending))}
	default:
		return berth.Decision{}, false
	}
	return d, true
}

// periodic asks for a periodic job's ticks: the latest one due, if the
// snapshot does not know it yet, and the ticks waiting; mine are its
// running runs.
func (p *preparer) periodic(w *berth.Workload, id berth.WorkloadID, mine []*run, base berth.Decision, flavors []string) {
	ticks := p.queued.of(id, nil)
	// The newest tick the snapshot knows (running, queued or finished):
	// the ticks after it are due, as catchUp says.
	var last time.Time
	for _, r := range mine {
		if t, ok := tickOf(r.runID, w.RunID); ok {
			last = maxTime(last, t)
		}
	}
	for _, q := range ticks {
		if t, ok := tickOf(q.RunID, w.RunID); ok {
			last = maxTime(last, t)
		}
	}
	for runID := range p.finished[id] {
		if t, ok := tickOf(runID, w.RunID); ok {
			last = maxTime(last, t)
		}
	}
	if w.Concurrency == berth.ConcurrencyForbid && len(mine) > 0 {
		// Nothing new starts while a run of the job runs; the due ticks
		// are decided again when it has ended.
		d := base
		d.Action = berth.ActionWait
		d.Reason = &berth.Reason{Code: berth.ReasonTickWaits,
			Message: fmt.Sprintf("run %s still runs: concurrency forbid starts no tick until it ends", mine[0].runID)}
		p.decisions = append(p.decisions, &d)
		return
	}
	deadline := p.opts.tickDeadline()
	plan := planTicks(w, last, p.snap.Time, deadline)
	if plan.missed > 0 {
		d := base
		d.RunID = TickRunID(w.RunID, plan.lastMissed)
		d.Action = berth.ActionDone
		d.Reason = &berth.Reason{Code: berth.ReasonTicksMissed, Message: missedMessage(w, plan, deadline)}
		p.decisions = append(p.decisions, &d)
	}
	for _, tick := range plan.run {
		k := berth.RunKey{Workload: id, RunID: TickRunID(w.RunID, tick)}
		if !hasRunning(mine, k.RunID) && !hasRun(ticks, k.RunID) && !finishedRun(p.finished[id], k.RunID) {
			ticks = append(ticks, berth.QueuedWorkload{Workload: id, RunID: k.RunID, Since: tick})
		}
	}
	if len(ticks) == 0 {
		d := base
		d.Action = berth.ActionWait
		d.Reason = &berth.Reason{Code: berth.ReasonSchedule, Message: nextTickMessage(w.Schedule, p.snap.Time)}
		p.decisions = append(p.decisions, &d)
		return
	}
	for _, q := range ticks {
		q.RunID = orDefault(q.RunID, w.RunID)
		p.ask(w, q, base, flavors)
	}
}

// ask adds the request for one waiting run, or the decision to hold it
// back while its backoff runs.
func (p *preparer) ask(w *berth.Workload, q berth.QueuedWorkload, base berth.Decision, flavors []string) {
	if q.Failures > 0 && !q.FailedAt.IsZero() {
		if at := q.FailedAt.Add(p.opts.backoff(q.Failures)); at.After(p.snap.Time) {
			what := "retrying"
			if !w.Kind.RunsOnce() {
				what = "restarting"
			}
			d := base
			d.RunID = q.RunID
			d.Action = berth.ActionWait
			d.Reason = &berth.Reason{Code: berth.ReasonBackoff, Message: fmt.Sprintf("%s at %s (attempt %d failed: %s)",
				what, at.UTC().Format("15:04:05 UTC"), q.Failures, orDefault(q.Failure, "no reason given"))}
			p.decisions = append(p.decisions, &d)
			return
		}
	}
	p.reqs = append(p.reqs, Request{Workload: w, RunID: q.RunID, Since: q.Since, id: q.Workload, flavors: flavors})
}

// scaleRequests asks for the replicas of a running autoscaled service
// between its minimum (its run's) and what its autoscaler asks for now,
// each a run of one replica (berth.ScaleRunID) on the service's flavor,
// decided like any other request: admitted within the team's quota, or
// queued with the reason. A service whose cluster reports no autoscaler
// asks for nothing more.
func scaleRequests(reqs []Request, w *berth.Workload, id berth.WorkloadID, mine []*run, snap *berth.Snapshot, queued queueIndex) []Request {
	var svc *run
	for _, r := range mine {
		if _, _, ok := berth.ParseScaleRunID(r.runID); !ok {
			svc = r
			break
		}
	}
	if svc == nil {
		return reqs
	}
	want, ok := snap.ScaleOf(berth.RunKey{Workload: id, RunID: svc.runID})
	if !ok {
		return reqs
	}
	one := *w
	one.Autoscale, one.Replicas = nil, 1
	// The replicas wait as one line, in their order: each is first seen
	// when the first of them was, plus its number in nanoseconds, so
	// replica 10 never starts before replica 2 (their names would sort
	// the other way) and a scale-down stops the last started.
	since := snap.Time
	for _, q := range queued.of(id, nil) {
		if _, _, ok := berth.ParseScaleRunID(q.RunID); ok && q.Since.Before(since) {
			since = q.Since
		}
	}
	for n := w.Autoscale.Min + 1; n <= w.Autoscale.Replicas(want); n++ {
		runID := berth.ScaleRunID(svc.runID, n)
		if hasRunning(mine, runID) {
			continue
		}
		reqs = append(reqs, Request{Workload: &one, RunID: runID, Since: since.Add(time.Duration(n)), id: id, flavors: []string{svc.flavor}})
	}
	return reqs
}

// queueIndex finds a snapshot's queue entries by workload, in the order
// the snapshot lists them, without a slice per workload.
type queueIndex struct {
	queue []berth.QueuedWorkload
	first map[berth.WorkloadID]int32
	next  []int32 // the workload's next entry, or -1
}

func indexQueue(queue []berth.QueuedWorkload) queueIndex {
	x := queueIndex{queue: queue, first: make(map[berth.WorkloadID]int32, len(queue)), next: make([]int32, len(queue))}
	last := map[berth.WorkloadID]int32{}
	for i, q := range queue {
		x.next[i] = -1
		if j, ok := x.first[q.Workload]; !ok {
			x.first[q.Workload] = int32(i)
		} else {
			if k, ok := last[q.Workload]; ok {
				j = k
			}
			x.next[j] = int32(i)
			last[q.Workload] = int32(i)
		}
	}
	return x
}

// of appends the workload's entries to buf.
func (x queueIndex) of(id berth.WorkloadID, buf []berth.QueuedWorkload) []berth.QueuedWorkload {
	i, ok := x.first[id]
	if !ok {
		return buf
	}
	for ; i >= 0; i = x.next[i] {
		buf = append(buf, x.queue[i])
	}
	return buf
}

// hasRunning reports whether one of a workload's runs is run runID.
func hasRunning(runs []*run, runID string) bool {
	for _, r := range runs {
		if r.runID == runID {
			return true
		}
	}
	return false
}

func hasRun(qs []berth.QueuedWorkload, runID string) bool {
	for _, q := range qs {
		if q.RunID == runID {
			return true
		}
	}
	return false
}

func finishedRun(runs map[string]berth.FinishedRun, runID string) bool {
	_, ok := runs[runID]
	return ok
}

// doneDecision is the decision about a run-once workload whose current run
// finished, or a notebook whose run was stopped for being idle: it is not
// started again.
func doneDecision(base berth.Decision, f berth.FinishedRun) berth.Decision {
	d := base
	d.Action = berth.ActionDone
	d.Since = f.At
	if base.Kind == berth.KindNotebook {
		msg := "stopped"
		if f.Reason != "" {
			msg = f.Reason
		}
		d.Reason = &berth.Reason{Code: berth.ReasonIdleStopped, Message: msg + "; bump runId to start it again"}
		return d
	}
	if f.Succeeded {
		return d
	}
	msg := "run " + f.RunID + " failed"
	if f.Attempts > 1 {
		msg = fmt.Sprintf("run %s failed after %d attempts", f.RunID, f.Attempts)
	}
	if f.Reason != "" {
		msg += ": " + f.Reason
	}
	d.Reason = &berth.Reason{Code: berth.ReasonRunFailed, Message: msg + "; bump runId to run it again"}
	return d
}

// TickRunID names the run of a periodic job's tick: the workload's runId
// and the tick time, "1-20261122t0300".
func TickRunID(runID string, tick time.Time) string {
	return runID + "-" + tick.UTC().Format("20060102t1504")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// parsedSchedules keeps each cron expression parsed once: every cycle asks
// every periodic job for its ticks, and the expressions change only with
// the repository. Bounded, so a stream of revisions cannot grow it.
var parsedSchedules, _ = lru.New[string, parsedSchedule](4096)

type parsedSchedule struct {
	s   cron.Schedule
	err error
}

// NextTick is the first time after t the cron schedule fires.
func NextTick(schedule string, t time.Time) (time.Time, error) {
	p, ok := parsedSchedules.Get(schedule)
	if !ok {
		s, err := cron.ParseStandard(schedule)
		p = parsedSchedule{s, err}
		parsedSchedules.Add(schedule, p)
	}
	if p.err != nil {
		return time.Time{}, p.err
	}
	return p.s.Next(t), nil
}

func nextTickMessage(schedule string, t time.Time) string {
	next, err := NextTick(schedule, t)
	if err != nil {
		return fmt.Sprintf("schedule %q does not parse: %v", schedule, err)
	}
	return fmt.Sprintf("periodic (%s): next run at %s", schedule, next.UTC().Format("2006-01-02 15:04 MST"))
}

func joinList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	s := ""
	for i, x := range xs {
		switch {
		case i == 0:
			s = x
		case i == len(xs)-1:
			s += " and " + x
		default:
			s += ", " + x
		}
	}
	return s
}

// migOf is the MIG profile w's pods ask for: one for a workload without
// roles, none for one with roles (whose roles say what each asks).
func migOf(w berth.Workload) string {
	if len(w.Roles) > 0 {
		return ""
	}
	return w.Resources.MIG
}

// baseDecision fills what every decision about w carries.
func baseDecision(cfg *berth.Config, w berth.Workload, id berth.WorkloadID, runID, cluster string) berth.Decision {
	tier, pt := cfg.Priority(w)
	return berth.Decision{
		Workload:     id,
		RunID:        runID,
		Team:         w.Team,
		Kind:         w.Kind,
		Cluster:      cluster,
		Priority:     pt.Value,
		PriorityTier: tier,
		GPUs:         float64(w.GPUMilli()) / wholeGPU,
		MIG:          migOf(w),
		Mounts:       w.Mounts(cfg.Clusters[cluster], runID),
	}
}
