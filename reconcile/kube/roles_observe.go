package kube

import (
	"cmp"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// rolesState is a run of a workload with roles as its Jobs say.
type rolesState struct {
	jobState
	// PodFailed says why the gang cannot go on while some of its roles
	// still run (a role's Job failed or was deleted, or a role never
	// started with the others); Pods is then every pod of the run, so the
	// engine stops the gang as failed: all or nothing.
	PodFailed string
	Pods      int
	// Exhausted is the attempts Kubernetes used on a role that failed (its
	// backoffLimit + 1): such a run is not started again.
	Exhausted int
}

// RolesState derives the phase of a run of a workload with roles from its
// Jobs (jobs[i] is role i's, in role order; nil where it is missing) and
// their pods:
//   - succeeded once every role's Job completed;
//   - failed once a role's Job failed (its reason, with the role) and no
//     other role still runs; while others run, running with PodFailed set;
//   - preempted, stopped or failed as berth suspended them, once no role
//     still runs;
//   - queued while every Job is suspended or not created yet;
//   - running when every role runs (or ended), admitted before.
func RolesState(roles []string, jobs []*batchv1.Job, pods [][]*corev1.Pod, size func(i int) int) rolesState {
	var st rolesState
	p := classifyRoles(&st, jobs, pods, size)
	role := func(p rolePart) string { return "role " + roles[p.i] }
	holding := func() rolesState {
		st.Phase = reconcile.PhaseRunning
		for _, a := range p.active {
			if a.st.Phase != reconcile.PhaseRunning {
				st.Phase = reconcile.PhaseAdmitted
			}
			if st.Reason == "" && a.st.Reason != "" {
				st.Reason = role(a) + ": " + a.st.Reason
			}
		}
		return st
	}
	switch {
	case p.succeeded == len(jobs):
		st.Phase = reconcile.PhaseSucceeded
		for _, j := range jobs {
			if t := conditionTime(j); t.After(st.FinishedAt) {
				st.FinishedAt = t
			}
		}
		return st
	case len(p.broken) > 0 && len(p.active) > 0:
		b := p.broken[0]
		st.PodFailed = role(b) + ": " + b.st.Reason
		return holding()
	case len(p.broken) > 0:
		b := p.broken[0]
		st.Phase, st.Reason, st.FinishedAt = b.st.Phase, role(b)+": "+b.st.Reason, b.st.FinishedAt
		for _, x := range p.broken {
			if x.st.Phase == reconcile.PhaseFailed {
				st.Phase, st.Reason, st.FinishedAt = x.st.Phase, role(x)+": "+x.st.Reason, x.st.FinishedAt
				break
			}
		}
		return st
	case len(p.halted) > 0 && len(p.active) > 0:
		// berth was stopped between the Jobs' writes: the run still holds
		// what its running roles use, and the next decision stops it again.
		return holding()
	case len(p.halted) > 0:
		h := p.halted[0]
		st.Phase, st.Reason, st.FinishedAt = h.st.Phase, h.st.Reason, h.st.FinishedAt
		return st
	case len(p.active) == 0:
		st.Phase = reconcile.PhaseQueued
		return st
	case len(p.waiting) > 0:
		// Some roles run and others never started: the gang cannot go on.
		names := make([]string, len(p.waiting))
		for k, w := range p.waiting {
			names[k] = roles[w.i]
		}
		st.PodFailed = "role " + strings.Join(names, ", ") + " did not start with the others"
		return holding()
	}
	return holding()
}

// rolePart is role i's Job's state.
type rolePart struct {
	i  int
	st jobState
}

// roleParts are a run's roles by the state of their Jobs.
type roleParts struct {
	broken, halted, active, waiting []rolePart
	succeeded                       int
}

// classifyRoles sorts the roles' Jobs by state, adding their pods and
// failures to st.
func classifyRoles(st *rolesState, jobs []*batchv1.Job, pods [][]*corev1.Pod, size func(i int) int) roleParts {
	var p roleParts
	for i, j := range jobs {
		st.Pods += size(i)
		if j == nil {
			p.waiting = append(p.waiting, rolePart{i: i})
			continue
		}
		js := JobState(j, pods[i])
		st.Failed += js.Failed
		cond := conditionPhase(j)
		switch {
		case cond == reconcile.PhaseSucceeded:
			p.succeeded++
		case cond == reconcile.PhaseFailed:
			p.broken = append(p.broken, rolePart{i, js})
			if j.Spec.BackoffLimit != nil {
				st.Exhausted = max(st.Exhausted, int(*j.Spec.BackoffLimit)+1)
			}
		case j.DeletionTimestamp != nil:
			js.Phase = reconcile.PhaseStopped
			js.Reason = ReasonJobDeleted + ": the Job was deleted before it ended"
			js.FinishedAt = j.DeletionTimestamp.Time
			p.broken = append(p.broken, rolePart{i, js})
		case js.Phase == reconcile.PhaseQueued:
			p.waiting = append(p.waiting, rolePart{i, js})
		case !js.Phase.Holds():
			p.halted = append(p.halted, rolePart{i, js})
		default:
			p.active = append(p.active, rolePart{i, js})
		}
	}
	return p
}

// conditionPhase is succeeded or failed as the Job's conditions say, or "".
func conditionPhase(j *batchv1.Job) reconcile.Phase {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return reconcile.PhaseSucceeded
		case batchv1.JobFailed:
			return reconcile.PhaseFailed
		}
	}
	return ""
}

// conditionTime is when a Job ended as its status says.
func conditionTime(j *batchv1.Job) time.Time {
	if j.Status.CompletionTime != nil {
		return j.Status.CompletionTime.Time
	}
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// sortByRole orders a run's Jobs by their role.
func sortByRole(jobs []*batchv1.Job) {
	slices.SortFunc(jobs, func(a, b *batchv1.Job) int { return cmp.Compare(a.Labels[LabelRole], b.Labels[LabelRole]) })
}

// roleGroups groups the Jobs of workloads with roles by run; the other
// Jobs are returned as they are.
func roleGroups(jobs []*batchv1.Job) (single []*batchv1.Job, groups [][]*batchv1.Job) {
	byRun := map[string][]*batchv1.Job{}
	var keys []string
	for _, j := range jobs {
		if j.Labels[LabelRole] == "" {
			single = append(single, j)
			continue
		}
		k := runIndexKey(j.Namespace, j.Labels[LabelWorkload], j.Annotations[AnnotationRunID])
		if _, ok := byRun[k]; !ok {
			keys = append(keys, k)
		}
		byRun[k] = append(byRun[k], j)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sortByRole(byRun[k])
		groups = append(groups, byRun[k])
	}
	return single, groups
}

// rolesRun is the run the Jobs of a workload with roles carry (one run's,
// sorted by role). Run-wide state comes from the first Job's annotations
// (every Job of a run carries the same).
func (c *Cluster) rolesRun(jobs []*batchv1.Job) (reconcile.RunState, bool) {
	first := jobs[0]
	a := first.Annotations
	team, name, runID := first.Labels[LabelTeam], first.Labels[LabelWorkload], a[AnnotationRunID]
	if !c.ours(first.Namespace, team) || name == "" || runID == "" {
		return reconcile.RunState{}, false
	}
	prev, ok := runFromAnnotations(a)
	if !ok || len(prev.Workload.Roles) == 0 {
		return reconcile.RunState{}, false
	}
	w := prev.Workload
	roles := w.RoleNames()
	decided := roleRuns(prev)
	byRole := make([]*batchv1.Job, len(roles))
	pods := make([][]*corev1.Pod, len(roles))
	for i, role := range roles {
		for _, j := range jobs {
			if j.Labels[LabelRole] == labelValue(role) {
				byRole[i] = j
				pods[i] = c.objs().jobPods(j)
			}
		}
	}
	st := RolesState(roles, byRole, pods, func(i int) int { return roleCount(w, decided[i]) })
	r := jobRunState(team, name, runID, first.Labels[LabelKind], a, w, st.Phase, st.Reason, st.FinishedAt)
	r.PodFailed = st.PodFailed
	if st.PodFailed != "" {
		r.Pods = st.Pods
	}
	if r.Phase == reconcile.PhaseFailed {
		// Kubernetes used every retry of the role that failed.
		r.Attempts = max(r.Attempts, st.Exhausted)
	}
	notes := make([]string, 0, len(jobs))
	for _, j := range jobs {
		notes = append(notes, j.Namespace+"/"+j.Name)
	}
	r.Note = "jobs " + strings.Join(notes, ", ")
	if r.Phase.Holds() {
		for i, rr := range decided {
			ps := observedPlacements(rr.Placements, podNodes(pods[i]))
			r.Roles = append(r.Roles, berth.RolePlacement{Role: rr.Role, Flavor: rr.Flavor, Resources: w.Roles[rr.Role].Resources, Placements: ps})
			r.Placements = append(r.Placements, ps...)
		}
		if len(r.Roles) > 0 && r.Flavor == "" {
			r.Flavor = r.Roles[0].Flavor
		}
	}
	return r, true
}
