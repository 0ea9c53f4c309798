package reconcile

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/berth-gpu/berth"
)

// Diff compares a cluster's plan with what the cluster observed and returns
// the changes that make the cluster match the plan. It is pure. A plan that
// matches what is observed yields no change, so an unchanged state writes
// nothing.
//
// The rules, per decision:
//   - admit, preempt: start the run, unless it already runs.
//   - keep: a service, inference or notebook whose spec digest drifted is
//     restarted with the new spec; a batch or training run keeps the spec it
//     started with (bump runId for a new run).
//   - preempted: stop it; it goes back to the queue.
//   - stop: stop it for good (left Git, superseded, past maxDuration).
//   - queue: record it as waiting, once (its first-seen time orders equal
//     priorities, and the Kubernetes backend creates its objects suspended).
//   - reject, wait, done: forget a waiting record it may have.
//
// A waiting record whose workload has no decision at all (it left Git) is
// forgotten too.
func Diff(cfg *berth.Config, plan *berth.Plan, obs *Observed, revision string) []Change {
	var out []Change
	decided := map[berth.RunKey]bool{}
	for _, d := range plan.Decisions {
		decided[d.Key()] = true
		if change, ok := decisionChange(cfg, obs, *d, revision); ok {
			out = append(out, change)
		}
	}
	out = append(out, forgetUndecided(obs, decided, revision)...)
	sortChanges(out)
	return out
}

// decisionChange is what one decision changes in the cluster; ok is
// false when the run already is as decided.
func decisionChange(cfg *berth.Config, obs *Observed, d berth.Decision, revision string) (change Change, ok bool) {
	w, inGit := cfg.Workloads[d.Workload]
	if !inGit {
		w = berth.Workload{Team: d.Workload.Team(), Name: d.Workload.Name(), Kind: d.Kind}
	}
	// The digest is computed only where a change may need it: most
	// decisions of a large plan change nothing.
	digest := func() string {
		if !inGit {
			return ""
		}
		return berth.SpecDigest(w)
	}
	run, known := obs.Run(d.Key())
	change = Change{Workload: w, RunID: d.RunID, Decision: d, Revision: revision}
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt:
		if known && run.Phase.Holds() {
			return Change{}, false
		}
		change.Op = OpStart
	case berth.ActionKeep:
		if !inGit || !known || !keepChange(&change, w, run, digest) {
			return Change{}, false
		}
	case berth.ActionPreempted:
		change.Op = OpStop
		change.Phase = PhasePreempted
		// The ledger keeps who preempted it with why: the plan's
		// reason says only why.
		change.Reason = "preempted by " + string(d.PreemptedBy) + ": " + reasonText(d)
		if d.PreemptedBy == "" {
			change.Reason = "preempted: " + reasonText(d) // its node was lost
		}
	case berth.ActionStop:
		change.Op = OpStop
		change.Phase = PhaseStopped
		change.Reason = reasonText(d)
	case berth.ActionQueue:
		if known && (run.Phase == PhaseQueued || run.Phase == PhasePreempted || run.Phase == PhaseFailed) {
			return Change{}, false
		}
		change.Op = OpQueue
	default: // reject, wait, done
		if !known || run.Phase != PhaseQueued {
			return Change{}, false
		}
		change.Op = OpForget
		change.Reason = reasonText(d)
	}
	if change.Op != OpStop && change.Op != OpForget {
		change.Digest = digest()
	}
	return change, true
}

// keepChange sets what a run the plan keeps needs: a stop when its gang
// broke, a restart when replicas of a service ended or its spec changed.
// It reports false when the run needs nothing.
func keepChange(change *Change, w berth.Workload, run RunState, digest func() string) bool {
	// A gang is all or nothing: when a worker fails, the others
	// cannot go on; the run fails (and is retried whole). Every
	// role of a workload with roles is part of its gang.
	if (w.Kind == berth.KindTraining || len(w.Roles) > 0) && run.Pods > 1 && run.PodFailed != "" {
		change.Op = OpStop
		change.Phase = PhaseFailed
		change.Reason = "a worker of the gang failed (" + run.PodFailed + "); the gang stops"
		if len(w.Roles) > 0 {
			change.Reason = "the gang cannot go on (" + run.PodFailed + "); every role stops"
		}
		return true
	}
	if w.Kind.RunsOnce() {
		return false
	}
	// A service keeps all its replicas.
	if run.Pods > 0 && run.PodsRunning < run.Pods && run.PodsRunning > 0 {
		change.Op = OpRestart
		change.Reason = fmt.Sprintf("%d of %d replicas ended", run.Pods-run.PodsRunning, run.Pods)
		if run.PodFailed != "" {
			change.Reason += " (" + run.PodFailed + ")"
		}
		return true
	}
	if run.Digest == "" || berth.SpecDigestMatches(run.Digest, w) {
		return false
	}
	change.Op = OpRestart
	change.Reason = "spec changed (digest " + run.Digest + " -> " + digest() + ")"
	return true
}

// forgetUndecided forgets the queued runs no decision names: their
// workload left the repository, or their autoscaler no longer asks for
// them.
func forgetUndecided(obs *Observed, decided map[berth.RunKey]bool, revision string) []Change {
	var out []Change
	for _, r := range obs.Runs {
		if r.Phase != PhaseQueued || decided[r.Key()] {
			continue
		}
		why := "the workload is no longer in the repository"
		if _, _, ok := berth.ParseScaleRunID(r.RunID); ok {
			why = "its autoscaler no longer asks for this replica"
		}
		out = append(out, Change{
			Op:       OpForget,
			Workload: berth.Workload{Team: r.Workload.Team(), Name: r.Workload.Name(), Kind: r.Kind},
			RunID:    r.RunID, Reason: why, Revision: revision,
		})
	}
	return out
}

func reasonText(d berth.Decision) string {
	if d.Reason == nil {
		return string(d.Action)
	}
	return d.Reason.Message
}

// opOrder applies stops first, so the capacity they free is there for the
// starts.
var opOrder = map[Op]int{OpStop: 0, OpForget: 1, OpRestart: 2, OpStart: 3, OpQueue: 4}

func sortChanges(cs []Change) {
	slices.SortStableFunc(cs, func(a, b Change) int {
		return cmp.Or(
			cmp.Compare(opOrder[a.Op], opOrder[b.Op]),
			cmp.Compare(a.Workload.ID(), b.Workload.ID()),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
}
