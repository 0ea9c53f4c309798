package kube

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth/reconcile"
)

// planRoles carries out step 2 of Apply for a run of a workload with
// roles, as planJob does for a run of one Job: its Jobs are created
// suspended together, started together (the Service first, then each
// role's Job), and stopped together. The run has one ledger key.
func (c *Cluster) planRoles(ctx context.Context, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	ns := Namespace(c.opts.Render.NamespacePrefix, w.Team)
	key := LedgerKey(w.Name, ch.RunID)
	svc := JobName(ch.Key())
	live := c.objs().roleJobs(ns, w.Name, ch.RunID)
	rec := c.ledgerRecord(ns, w.Name, ch.RunID)
	var prev Run
	var st reconcile.RunState
	havePrev := false
	if len(live) > 0 {
		prev, havePrev = runFromAnnotations(live[0].Annotations)
		st, _ = c.rolesRun(live)
	}
	liveByName := make(map[string]*batchv1.Job, len(live))
	for _, j := range live {
		liveByName[j.Name] = j
	}

	switch ch.Op {
	case reconcile.OpQueue:
		if (rec != nil && rec.Phase != reconcile.PhaseQueued) || (len(live) > 0 && st.Phase != reconcile.PhaseQueued) {
			return nil
		}
		objs, err := Render(c.opts.Render, c.baseRolesRun(ch, now))
		if err != nil {
			return err
		}
		// Every role's Job, suspended (those not created yet); the Service
		// comes with the start.
		var missing []*unstructured.Unstructured
		for _, obj := range objs {
			if obj.GetKind() == kindJob && liveByName[obj.GetName()] == nil {
				missing = append(missing, obj)
			}
		}
		p.outcome, err = c.applyObjects(ctx, missing)
		return err

	case reconcile.OpStart, reconcile.OpRestart:
		if len(live) > 0 && st.Phase.Holds() {
			return nil
		}
		if len(live) == 0 && rec != nil && rec.Phase == reconcile.PhaseSucceeded {
			return fmt.Errorf("run %s already succeeded; bump runId for a new run", ch.RunID)
		}
		r := c.baseRolesRun(ch, now)
		r.Started, r.StartedAt = true, now
		recreate := false
		switch {
		case len(live) > 0 && st.Phase.Final():
			// A retry the engine decided on: new Jobs of the same spec.
			recreate = true
			r.Attempts = max(st.Attempts, parseInt(live[0].Annotations[AnnotationAttempts])) + 1
			r.QueuedSince = sinceOrNow(parseTime(live[0].Annotations[AnnotationQueuedSince]), now)
		case len(live) > 0:
			neverStarted := true
			for _, j := range live {
				if j.Annotations[AnnotationAttempts] != "" || j.Status.StartTime != nil {
					neverStarted = false
				}
			}
			if havePrev && !(neverStarted && prev.Digest != ch.Digest) {
				// A preempted run resumes with the spec it started with.
				r.Workload, r.Digest, r.Path, r.Commit = prev.Workload, prev.Digest, prev.Path, prev.Commit
			} else if neverStarted {
				recreate = true
			}
			r.Attempts = nextAttempt(parseInt(live[0].Annotations[AnnotationAttempts]), prev.Phase) // prev is zero when !havePrev
			r.QueuedSince = sinceOrNow(prev.QueuedSince, now)
		case rec != nil:
			r.Attempts = nextAttempt(rec.Attempts, rec.Phase)
			r.QueuedSince = sinceOrNow(rec.QueuedSince, now)
		default:
			r.Attempts = 1
		}
		objs, err := Render(c.opts.Render, r)
		if err != nil {
			return err
		}
		if !recreate {
			// A pod template cannot change, and a role's count is in its
			// pods' env (BERTH_ROLE_SIZE, BERTH_ROLES): a run admitted
			// with other counts than its Jobs have gets new Jobs.
			for _, obj := range objs {
				if j := liveByName[obj.GetName()]; j != nil && obj.GetKind() == kindJob {
					n, _, _ := unstructured.NestedInt64(obj.Object, "spec", "completions")
					if j.Spec.Completions == nil || int64(*j.Spec.Completions) != n {
						recreate = true
					}
				}
			}
		}
		if recreate {
			var gone []writtenObj
			for _, j := range live {
				if err := c.recreateJob(ctx, j); err != nil {
					return err
				}
				c.written.add(kindJob, ns, j.Name, "")
				gone = append(gone, writtenObj{kindJob, ns, j.Name, ""})
			}
			if !c.objs().waitCaughtUp(ctx, gone, 30*time.Second) {
				return fmt.Errorf("run %s: the cache still holds its Jobs after their deletion", ch.RunID)
			}
		}
		// The Service first, so each pod's name resolves from its start;
		// then every role's Job.
		ordered := append([]*unstructured.Unstructured{objs[len(objs)-1]}, objs[:len(objs)-1]...)
		out := reconcile.OutcomeUnchanged
		for k, obj := range ordered {
			o, err := c.applyObject(ctx, obj)
			if err != nil {
				// All or nothing: the roles started so far wait again.
				c.suspendJobs(ctx, ns, ordered[1:k])
				return err
			}
			if o == reconcile.OutcomeCreated || (o == reconcile.OutcomeConfigured && out == reconcile.OutcomeUnchanged) {
				out = o
			}
		}
		p.outcome = out
		if len(live) > 0 && !recreate && p.outcome == reconcile.OutcomeCreated {
			p.outcome = reconcile.OutcomeConfigured
		}
		p.record(key, &ledgerRecord{Kind: r.Workload.Kind, Phase: reconcile.PhaseAdmitted, Digest: r.Digest, Attempts: r.Attempts,
			Retries: r.Workload.Retries, QueuedSince: r.QueuedSince, StartedAt: now})
		return nil

	case reconcile.OpStop:
		if len(live) == 0 {
			if rec != nil && rec.Phase.Holds() {
				rec.Phase, rec.Reason, rec.FinishedAt = ch.Phase, ch.Reason, now
				p.record(key, rec)
				p.outcome = reconcile.OutcomeConfigured
			}
			return nil
		}
		if st.Phase.Final() || st.Phase == ch.Phase {
			return nil
		}
		if !havePrev {
			return fmt.Errorf("Job %s/%s has no readable %s annotation", ns, live[0].Name, AnnotationSpec)
		}
		// Every Job keeps its pod template (a started Job's cannot change):
		// rendered from its own annotations and node affinity.
		r := prev
		r.Started = false
		r.Phase, r.Reason, r.StoppedAt = ch.Phase, ch.Reason, now
		r.Roles = roleRuns(prev)
		for i, rr := range r.Roles {
			if j := liveByName[RoleJobName(r.Key(), rr.Role)]; j != nil {
				r.Roles[i].FlavorLabels = flavorLabelsOf(&j.Spec.Template.Spec)
			}
		}
		objs, err := Render(c.opts.Render, r)
		if err != nil {
			return err
		}
		// Suspend each role's Job that has not ended and say why, before
		// anything else.
		for _, obj := range objs {
			j := liveByName[obj.GetName()]
			if obj.GetKind() != kindJob || j == nil || j.DeletionTimestamp != nil || conditionPhase(j) != "" {
				continue
			}
			if _, err := c.applyObject(ctx, obj); err != nil {
				return err
			}
		}
		p.record(key, &ledgerRecord{Kind: r.Workload.Kind, Phase: ch.Phase, Reason: ch.Reason, Digest: r.Digest, Attempts: max(r.Attempts, st.Attempts),
			Retries: r.Workload.Retries, QueuedSince: r.QueuedSince, StartedAt: prev.StartedAt, FinishedAt: now})
		p.outcome = reconcile.OutcomeConfigured
		if ch.Phase == reconcile.PhaseStopped {
			c.removeRoles(p, live, ns, svc, w.Team)
			p.outcome = reconcile.OutcomeDeleted
		}
		return nil

	case reconcile.OpForget:
		if len(live) > 0 && st.Phase == reconcile.PhaseQueued {
			c.removeRoles(p, live, ns, svc, w.Team)
			p.outcome = reconcile.OutcomeDeleted
		}
		if rec != nil && rec.Phase == reconcile.PhaseQueued {
			p.record(key, nil)
			p.outcome = reconcile.OutcomeDeleted
		}
		return nil
	}
	return nil
}

// baseRolesRun is the Run a change of a workload with roles asks for:
// each role's flavor, node labels and placements as decided.
func (c *Cluster) baseRolesRun(ch reconcile.Change, now time.Time) Run {
	r := c.baseRun(ch, now)
	r.Placements, r.FlavorLabels = nil, nil
	for _, x := range ch.Decision.Roles {
		r.Roles = append(r.Roles, RoleRun{Role: x.Role, Flavor: x.Flavor, FlavorLabels: c.flavorLabels(x.Flavor), Placements: x.Placements})
	}
	if r.Flavor == "" && len(r.Roles) > 0 {
		r.Flavor = r.Roles[0].Flavor
	}
	return r
}

// removeRoles plans the deletion of a run's Jobs and its Service.
func (c *Cluster) removeRoles(p *changePlan, live []*batchv1.Job, ns, svc, team string) {
	for _, j := range live {
		p.remove = append(p.remove, objRef{kindJob, ns, j.Name, team})
	}
	if c.objs().service(ns, svc) != nil {
		p.remove = append(p.remove, objRef{kindService, ns, svc, team})
	}
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
