package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/berth-gpu/berth"
)

// Request is a run that wants to start.
type Request struct {
	Workload berth.Workload
	// RunID is the run: the workload's runId, or a periodic job's tick.
	RunID string
	// Since is when the run was first seen waiting; equal priorities are
	// served in this order.
	Since time.Time
}

// CandidateFlavors returns the flavors a workload may run on, in the order
// its team's quota lists them: the one it names, or those that offer what
// it asks (its MIG profile; GPUs of its model; CPU-only pools for a
// workload without GPUs, or any flavor when the team has no CPU-only pool).
func CandidateFlavors(cfg *berth.Config, w berth.Workload) []string {
	team, ok := cfg.Teams[w.Team]
	if !ok {
		return nil
	}
	r := w.Resources
	var out, fallback []string
	for _, q := range team.Quota {
		f, ok := cfg.Flavors[q.Flavor]
		if !ok {
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

// ClusterOf is the cluster a workload runs on: that of its first candidate
// flavor, or the default cluster when it has none (where its plan rejects
// it).
func ClusterOf(cfg *berth.Config, w berth.Workload) string {
	if c := CandidateFlavors(cfg, w); len(c) > 0 {
		return cfg.FlavorCluster(c[0])
	}
	return cfg.DefaultCluster()
}

// Pending derives, from the configuration and a cluster snapshot, the runs
// that want to start on that cluster, and a decision for each workload
// that does not: its run is done, a dependency has not succeeded, or a
// periodic job waits for its tick. Running workloads are neither: Schedule
// keeps or stops them.
func Pending(cfg *berth.Config, snap *berth.Snapshot) ([]Request, []berth.Decision) {
	running := map[berth.WorkloadID]bool{}
	runningRun := map[berth.WorkloadID]map[string]bool{}
	for _, r := range snap.Running {
		running[r.Workload] = true
		if runningRun[r.Workload] == nil {
			runningRun[r.Workload] = map[string]bool{}
		}
		runningRun[r.Workload][r.RunID] = true
	}
	queued := map[berth.WorkloadID][]berth.QueuedWorkload{}
	for _, q := range snap.Queue {
		queued[q.Workload] = append(queued[q.Workload], q)
	}
	type result struct{ succeeded, failed bool }
	finished := map[berth.WorkloadID]map[string]berth.FinishedRun{}
	for _, f := range snap.Finished {
		if finished[f.Workload] == nil {
			finished[f.Workload] = map[string]berth.FinishedRun{}
		}
		finished[f.Workload][f.RunID] = f
	}
	// depState says whether a dependency is satisfied: its current run
	// succeeded (a periodic job: any run succeeded; a service: running).
	depState := func(id berth.WorkloadID) result {
		d, ok := cfg.Workloads[id]
		if !ok {
			return result{}
		}
		if !d.Kind.RunsOnce() {
			return result{succeeded: running[id]}
		}
		runs := finished[id]
		if d.Schedule != "" {
			for _, f := range runs {
				if f.Succeeded {
					return result{succeeded: true}
				}
			}
			return result{}
		}
		if f, ok := runs[d.RunID]; ok {
			return result{succeeded: f.Succeeded, failed: !f.Succeeded}
		}
		return result{}
	}

	reqs := make([]Request, 0, len(cfg.Workloads))
	var decisions []berth.Decision
	for _, id := range cfg.WorkloadIDs() {
		w := cfg.Workloads[id]
		if ClusterOf(cfg, w) != snap.Cluster {
			continue
		}
		base := baseDecision(cfg, w, w.RunID, snap.Cluster)
		// A service runs whatever its run id; a run-once workload whose
		// current run is running is kept. (A bumped runId while the old
		// run still runs asks for a new run beside it.)
		if running[id] && w.Schedule == "" && (!w.Kind.RunsOnce() || runningRun[id][w.RunID]) {
			continue
		}
		if w.Kind.RunsOnce() && w.Schedule == "" {
			if f, ok := finished[id][w.RunID]; ok {
				d := base
				d.Action = berth.ActionDone
				d.Since = f.At
				if !f.Succeeded {
					msg := "run " + w.RunID + " failed"
					if f.Reason != "" {
						msg += ": " + f.Reason
					}
					d.Reason = &berth.Reason{Code: berth.ReasonDependencyFailed, Message: msg + "; bump runId to run it again"}
				}
				decisions = append(decisions, d)
				continue
			}
		}
		// Dependencies, in the order written.
		var pending, failed []string
		for _, dep := range w.Dependencies() {
			st := depState(dep)
			switch {
			case st.failed:
				failed = append(failed, string(dep))
			case !st.succeeded:
				pending = append(pending, string(dep))
			}
		}
		if len(failed) > 0 {
			d := base
			d.Action = berth.ActionWait
			d.Reason = &berth.Reason{Code: berth.ReasonDependencyFailed,
				Message: fmt.Sprintf("dependency %s failed: the pipeline stops here until it succeeds", joinList(failed))}
			decisions = append(decisions, d)
			continue
		}
		if len(pending) > 0 {
			d := base
			d.Action = berth.ActionWait
			d.Reason = &berth.Reason{Code: berth.ReasonDependency,
				Message: fmt.Sprintf("waiting for %s to succeed", joinList(pending))}
			decisions = append(decisions, d)
			continue
		}
		if w.Schedule != "" {
			// A periodic job runs only as ticks the engine queues.
			if len(queued[id]) == 0 {
				d := base
				d.Action = berth.ActionWait
				d.Reason = &berth.Reason{Code: berth.ReasonSchedule, Message: nextTickMessage(w.Schedule, snap.Time)}
				decisions = append(decisions, d)
				continue
			}
			for _, q := range queued[id] {
				reqs = append(reqs, Request{Workload: w, RunID: orDefault(q.RunID, w.RunID), Since: q.Since})
			}
			continue
		}
		since := snap.Time
		for _, q := range queued[id] {
			if q.RunID == "" || q.RunID == w.RunID {
				since = q.Since
			}
		}
		reqs = append(reqs, Request{Workload: w, RunID: w.RunID, Since: since})
	}
	return reqs, decisions
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// NextTick is the first time after t the cron schedule fires.
func NextTick(schedule string, t time.Time) (time.Time, error) {
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return time.Time{}, err
	}
	return s.Next(t), nil
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

// baseDecision fills what every decision about w carries.
func baseDecision(cfg *berth.Config, w berth.Workload, runID, cluster string) berth.Decision {
	tier, pt := cfg.Priority(w)
	return berth.Decision{
		Workload:     w.ID(),
		RunID:        runID,
		Team:         w.Team,
		Kind:         w.Kind,
		Cluster:      cluster,
		Priority:     pt.Value,
		PriorityTier: tier,
		GPUs:         float64(w.Resources.GPUMilli()) / wholeGPU * float64(w.Pods()),
	}
}
