package kube

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// liveRoles is what Apply finds of a run of a workload with roles before
// it acts: its namespace, headless Service name and ledger key, its Jobs
// (sorted by role, and by name), what their annotations and states say of
// the run, and its ledger record (nil: none).
type liveRoles struct {
	ns, svc, key string
	jobs         []*batchv1.Job
	byName       map[string]*batchv1.Job
	prev         Run
	havePrev     bool
	st           reconcile.RunState
	rec          *ledgerRecord
}

// planRoles carries out a change of a run of a workload with roles, as
// planJob does for a run of one Job: its Jobs are created suspended
// together, started together (the Service first, then each role's Job),
// and stopped together. The run has one ledger key.
func (c *Cluster) planRoles(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	ns := Namespace(c.opts.Render.NamespacePrefix, w.Team)
	l := liveRoles{ns: ns, svc: JobName(ch.Key()), key: LedgerKey(w.Name, ch.RunID),
		jobs: c.objs().roleJobs(ns, w.Name, ch.RunID), rec: c.ledgerRecord(ns, w.Name, ch.RunID)}
	if len(l.jobs) > 0 {
		l.prev, l.havePrev = runFromAnnotations(l.jobs[0].Annotations)
		l.st, _ = c.rolesRun(l.jobs)
	}
	l.byName = make(map[string]*batchv1.Job, len(l.jobs))
	for _, j := range l.jobs {
		l.byName[j.Name] = j
	}
	switch ch.Op {
	case reconcile.OpQueue:
		return c.queueRoles(ctx, cfg, p, ch, l, now)
	case reconcile.OpStart, reconcile.OpRestart:
		return c.startRoles(ctx, cfg, p, ch, l, now)
	case reconcile.OpStop:
		return c.stopRoles(ctx, p, ch, l, now)
	case reconcile.OpForget:
		var queued []objRef
		if len(l.jobs) > 0 && l.st.Phase == reconcile.PhaseQueued {
			queued = c.rolesRefs(l, w.Team)
		}
		p.forget(l.key, l.rec, queued)
	}
	return nil
}

// queueRoles creates every role's Job of a queued run that is not there
// yet, suspended; the Service comes with the start.
func (c *Cluster) queueRoles(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, l liveRoles, now time.Time) error {
	if (l.rec != nil && l.rec.Phase != reconcile.PhaseQueued) || (len(l.jobs) > 0 && l.st.Phase != reconcile.PhaseQueued) {
		return nil
	}
	objs, err := Render(c.opts.Render, baseRolesRun(cfg, ch, now))
	if err != nil {
		return err
	}
	var missing []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kindJob && l.byName[obj.GetName()] == nil {
			missing = append(missing, obj)
		}
	}
	p.outcome, err = c.applyObjects(ctx, missing)
	return err
}

// startRoles starts a run: the Service first, so each pod's name resolves
// from its start, then every role's Job; all or nothing.
func (c *Cluster) startRoles(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, l liveRoles, now time.Time) error {
	if len(l.jobs) > 0 && l.st.Phase.Holds() {
		return nil
	}
	if len(l.jobs) == 0 && l.rec != nil && l.rec.Phase == reconcile.PhaseSucceeded {
		return fmt.Errorf("run %s already succeeded; bump runId for a new run", ch.RunID)
	}
	if err := c.checkSecrets(ctx, cfg, l.ns, ch.Workload); err != nil {
		return err // its Jobs, if any, stay suspended
	}
	r := baseRolesRun(cfg, ch, now)
	r.Started, r.StartedAt = true, now
	recreate := resumeRoles(&r, ch, l, now)
	objs, err := Render(c.opts.Render, r)
	if err != nil {
		return err
	}
	if !recreate {
		// A pod template cannot change, and a role's count is in its
		// pods' env (BERTH_ROLE_SIZE, BERTH_ROLES): a run admitted with
		// other counts than its Jobs have gets new Jobs.
		for _, obj := range objs {
			if j := l.byName[obj.GetName()]; j != nil && obj.GetKind() == kindJob {
				n, _, _ := unstructured.NestedInt64(obj.Object, "spec", "completions")
				if j.Spec.Completions == nil || int64(*j.Spec.Completions) != n || movedNodes(j, obj) {
					recreate = true
				}
			}
		}
	}
	if recreate {
		if err := c.recreateJobs(ctx, l.jobs); err != nil {
			return err
		}
	}
	if err := c.ensureClaims(ctx, r); err != nil {
		return err
	}
	if !recreate {
		for _, j := range l.jobs {
			if err := c.resetStartTime(ctx, j); err != nil {
				return err
			}
		}
	}
	ordered := append([]*unstructured.Unstructured{objs[len(objs)-1]}, objs[:len(objs)-1]...)
	out := reconcile.OutcomeUnchanged
	for k, obj := range ordered {
		o, err := c.applyObject(ctx, obj)
		if err != nil {
			// All or nothing: the roles started so far wait again.
			c.suspendJobs(ctx, l.ns, ordered[1:k])
			return err
		}
		if o == reconcile.OutcomeCreated || (o == reconcile.OutcomeConfigured && out == reconcile.OutcomeUnchanged) {
			out = o
		}
	}
	p.outcome = out
	if len(l.jobs) > 0 && !recreate && p.outcome == reconcile.OutcomeCreated {
		p.outcome = reconcile.OutcomeConfigured
	}
	p.started(l.key, r, now)
	return nil
}

// resumeRoles fills in the attempt r starts from what the Jobs and the
// ledger say of the earlier ones, and reports whether the Jobs must be
// made anew.
func resumeRoles(r *Run, ch reconcile.Change, l liveRoles, now time.Time) (recreate bool) {
	switch {
	case len(l.jobs) > 0 && l.st.Phase.Final():
		// A retry the engine decided on: new Jobs of the same spec.
		r.Attempts = max(l.st.Attempts, parseInt(l.jobs[0].Annotations[AnnotationAttempts])) + 1
		r.QueuedSince = sinceOrNow(parseTime(l.jobs[0].Annotations[AnnotationQueuedSince]), now)
		return true
	case len(l.jobs) > 0:
		neverStarted := true
		for _, j := range l.jobs {
			if j.Annotations[AnnotationAttempts] != "" || j.Status.StartTime != nil {
				neverStarted = false
			}
		}
		return resumeLive(r, ch, l.prev, l.havePrev, neverStarted, l.jobs[0].Annotations[AnnotationAttempts], now)
	default:
		resumeRecorded(r, l.rec, now)
		return false
	}
}

// stopRoles stops a run: each role's Job that has not ended is suspended
// and says why, keeping its pod template (rendered from its own
// annotations and node affinity); a run stopped for good loses its Jobs
// and Service.
func (c *Cluster) stopRoles(ctx context.Context, p *changePlan, ch reconcile.Change, l liveRoles, now time.Time) error {
	if len(l.jobs) == 0 {
		p.stoppedRecorded(l.key, l.rec, ch, now)
		return nil
	}
	if l.st.Phase.Final() || l.st.Phase == ch.Phase {
		return nil
	}
	if !l.havePrev {
		return fmt.Errorf("Job %s/%s has no readable %s annotation", l.ns, l.jobs[0].Name, AnnotationSpec)
	}
	r := l.prev
	r.Started = false
	r.Phase, r.Reason, r.StoppedAt = ch.Phase, ch.Reason, now
	r.Roles = roleRuns(l.prev)
	for i, rr := range r.Roles {
		if j := l.byName[RoleJobName(r.Key(), rr.Role)]; j != nil {
			r.Roles[i].FlavorLabels = flavorLabelsOf(&j.Spec.Template.Spec)
		}
	}
	objs, err := Render(c.opts.Render, r)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		j := l.byName[obj.GetName()]
		if obj.GetKind() != kindJob || j == nil || j.DeletionTimestamp != nil || conditionPhase(j) != "" {
			continue
		}
		if _, err := c.applyObject(ctx, obj); err != nil {
			return err
		}
	}
	end := endRecord(l.prev, ch, now)
	end.Attempts = max(end.Attempts, l.st.Attempts)
	var remove []objRef
	if ch.Phase == reconcile.PhaseStopped {
		remove = c.rolesRefs(l, ch.Workload.Team)
	}
	p.stopped(l.key, end, remove)
	return nil
}

// rolesRefs are a run's Jobs and its Service.
func (c *Cluster) rolesRefs(l liveRoles, team string) []objRef {
	var refs []objRef
	for _, j := range l.jobs {
		refs = append(refs, objRef{kindJob, l.ns, j.Name, team})
	}
	if c.objs().service(l.ns, l.svc) != nil {
		refs = append(refs, objRef{kindService, l.ns, l.svc, team})
	}
	return refs
}

// baseRolesRun is the Run a change of a workload with roles asks for:
// each role's flavor, node labels and placements as decided.
func baseRolesRun(cfg *berth.Config, ch reconcile.Change, now time.Time) Run {
	r := baseRun(cfg, ch, now)
	r.Placements, r.FlavorLabels = nil, nil
	for _, x := range ch.Decision.Roles {
		r.Roles = append(r.Roles, RoleRun{Role: x.Role, Flavor: x.Flavor, FlavorLabels: flavorLabels(cfg, x.Flavor), Placements: x.Placements})
	}
	if r.Flavor == "" && len(r.Roles) > 0 {
		r.Flavor = r.Roles[0].Flavor
	}
	return r
}

// suspendJobs suspends Jobs a failed start left running, best effort: the
// next Observe sees a run whose roles did not all start, and the engine
// stops it whole.
func (c *Cluster) suspendJobs(ctx context.Context, ns string, objs []*unstructured.Unstructured) {
	patch := []byte(`{"spec":{"suspend":true}}`)
	for _, obj := range objs {
		if obj.GetKind() != kindJob {
			continue
		}
		got, err := c.client.BatchV1().Jobs(ns).Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if err != nil {
			c.opts.Logger.Warn("suspending a role's Job after a failed start failed", "cluster", c.opts.Name, "job", ns+"/"+obj.GetName(), "err", err)
			continue
		}
		c.written.add(kindJob, ns, obj.GetName(), got.ResourceVersion)
	}
}
