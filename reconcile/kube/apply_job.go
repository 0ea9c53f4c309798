package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// liveJob is what Apply finds of a run of one Job before it acts: the
// Job's namespace and name, the Job (nil: none) and its state, and the
// run's ledger key and record (nil: none).
type liveJob struct {
	ns, name, key string
	job           *batchv1.Job
	st            jobState
	rec           *ledgerRecord
}

// planJob carries out a change of a run-once workload: a batch or
// training run is one Job (and a headless Service for a gang), created
// suspended when the run queues and unsuspended when it starts.
func (c *Cluster) planJob(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	ns := Namespace(c.opts.Render.NamespacePrefix, w.Team)
	if len(w.Roles) > 0 || len(c.objs().roleJobs(ns, w.Name, ch.RunID)) > 0 {
		// A stop of a run that left Git has no spec: its Jobs say it has
		// roles.
		return c.planRoles(ctx, cfg, p, ch, now)
	}
	j := liveJob{ns: ns, name: JobName(ch.Key()), key: LedgerKey(w.Name, ch.RunID), rec: c.ledgerRecord(ns, w.Name, ch.RunID)}
	if j.job = c.objs().job(ns, j.name); j.job != nil {
		j.st = JobState(j.job, c.objs().jobPods(j.job))
	}
	switch ch.Op {
	case reconcile.OpQueue:
		return c.queueJob(ctx, cfg, p, ch, j, now)
	case reconcile.OpStart, reconcile.OpRestart:
		return c.startJob(ctx, cfg, p, ch, j, now)
	case reconcile.OpStop:
		return c.stopJob(ctx, p, ch, j, now)
	case reconcile.OpForget:
		var queued []objRef
		if j.job != nil && j.st.Phase == reconcile.PhaseQueued {
			queued = []objRef{{kindJob, ns, j.name, w.Team}}
		}
		p.forget(j.key, j.rec, queued)
	}
	return nil
}

// queueJob creates a queued run's Job, suspended. A gang's Service comes
// with its start.
func (c *Cluster) queueJob(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, j liveJob, now time.Time) error {
	if j.job != nil || (j.rec != nil && j.rec.Phase != reconcile.PhaseQueued) {
		return nil
	}
	objs, err := Render(c.opts.Render, baseRun(cfg, ch, now))
	if err != nil {
		return err
	}
	p.outcome, err = c.applyObjects(ctx, objs[:1])
	return err
}

// startJob starts a run: its Job unsuspended at the decided placements, a
// new Job where the old one's pod template cannot take the change.
func (c *Cluster) startJob(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, j liveJob, now time.Time) error {
	if j.job != nil && j.st.Phase.Holds() {
		return nil
	}
	if j.job == nil && j.rec != nil && j.rec.Phase == reconcile.PhaseSucceeded {
		return fmt.Errorf("run %s already succeeded; bump runId for a new run", ch.RunID)
	}
	if err := c.checkSecrets(ctx, cfg, j.ns, ch.Workload); err != nil {
		return c.holdJob(ctx, cfg, ch, j, now, err)
	}
	r := baseRun(cfg, ch, now)
	r.Started, r.StartedAt = true, now
	recreate := resumeJob(&r, ch, j, now)
	objs, err := Render(c.opts.Render, r)
	if err != nil {
		return err
	}
	if j.job != nil && !recreate && j.job.Spec.Completions != nil {
		// An indexed Job's count cannot change: a gang admitted with
		// another number of workers than its Job has gets a new Job.
		if want, _, _ := unstructured.NestedInt64(objs[0].Object, "spec", "completions"); want > 0 && int64(*j.job.Spec.Completions) != want {
			recreate = true
		}
	}
	if j.job != nil && !recreate && movedNodes(j.job, objs[0]) {
		recreate = true
	}
	if recreate {
		if err := c.recreateJobs(ctx, []*batchv1.Job{j.job}); err != nil {
			return err
		}
	}
	if err := c.ensureClaims(ctx, r); err != nil {
		return err
	}
	if j.job != nil && !recreate {
		if err := c.resetStartTime(ctx, j.job); err != nil {
			return err
		}
	}
	if p.outcome, err = c.applyObjects(ctx, objs); err != nil {
		return err
	}
	if j.job != nil && !recreate && p.outcome == reconcile.OutcomeCreated {
		p.outcome = reconcile.OutcomeConfigured
	}
	p.started(j.key, r, now)
	return nil
}

// movedNodes reports whether a Job that has run is to run on other nodes
// than its pod template pins it to (its node lost, or preempted and placed
// anew): only a Job never started may change its scheduling directives,
// so it gets a new Job of the same attempt.
func movedNodes(live *batchv1.Job, want *unstructured.Unstructured) bool {
	if live == nil || live.Status.StartTime == nil || want.GetKind() != kindJob {
		return false
	}
	m, _, _ := unstructured.NestedMap(want.Object, "spec", "template", "spec", "affinity")
	var aff *corev1.Affinity
	if m != nil {
		aff = &corev1.Affinity{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, aff); err != nil {
			return true
		}
	}
	return !equality.Semantic.DeepEqual(live.Spec.Template.Spec.Affinity, aff)
}

// holdJob keeps a run that cannot start (err, a *reconcile.SecretError)
// waiting: its Job suspended, created if it is not there yet, with why on
// it for Observe to report. A Job berth stopped (preempted) keeps its
// record as it is. It returns err, so the change reports it.
func (c *Cluster) holdJob(ctx context.Context, cfg *berth.Config, ch reconcile.Change, j liveJob, now time.Time, err error) error {
	var se *reconcile.SecretError
	if !errors.As(err, &se) || (j.job != nil && j.st.Phase != reconcile.PhaseQueued) {
		return err
	}
	r := baseRun(cfg, ch, now)
	r.NotStarted = se.Error()
	objs, rerr := Render(c.opts.Render, r)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if _, aerr := c.applyObjects(ctx, objs[:1]); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// resumeJob fills in the attempt r starts from what the Job and the ledger
// say of the earlier ones, and reports whether the Job must be made anew.
func resumeJob(r *Run, ch reconcile.Change, j liveJob, now time.Time) (recreate bool) {
	switch {
	case j.job != nil && (j.st.Phase == reconcile.PhaseFailed || j.st.Phase == reconcile.PhaseSucceeded || j.st.Phase == reconcile.PhaseStopped):
		// A retry the engine decided on: a new Job of the same spec.
		r.Attempts = max(parseInt(j.job.Annotations[AnnotationAttempts]), j.st.Failed) + 1
		r.QueuedSince = sinceOrNow(parseTime(j.job.Annotations[AnnotationQueuedSince]), now)
		r.Resume = true
		return true
	case j.job != nil:
		prev, ok := runFromAnnotations(j.job.Annotations)
		neverStarted := j.job.Annotations[AnnotationAttempts] == "" && j.job.Status.StartTime == nil
		return resumeLive(r, ch, prev, ok, neverStarted, j.job.Annotations[AnnotationAttempts], now)
	default:
		resumeRecorded(r, j.rec, now)
		return false
	}
}

// resumeLive fills in the attempt r starts for a run whose Jobs are there
// and have not ended: a preempted run resumes with the spec it started
// with (prev, from the Jobs' annotations; a Job's pod template cannot
// change), unless it never started and its spec changed since, when its
// Jobs must be made anew. attempts is the Jobs' attempts annotation.
func resumeLive(r *Run, ch reconcile.Change, prev Run, havePrev, neverStarted bool, attempts string, now time.Time) (recreate bool) {
	if havePrev && !(neverStarted && prev.Digest != ch.Digest) {
		r.Workload, r.Digest, r.Path, r.Commit, r.Inputs = prev.Workload, prev.Digest, prev.Path, prev.Commit, prev.Inputs
	} else if neverStarted {
		recreate = true
	}
	r.Attempts = nextAttempt(parseInt(attempts), prev.Phase) // prev is zero when !havePrev
	r.QueuedSince = sinceOrNow(prev.QueuedSince, now)
	// Started before and stopped (preempted, or its node lost): the
	// next pods resume from the run's checkpoints.
	r.Resume = prev.Resume || prev.Phase == reconcile.PhasePreempted
	return recreate
}

// resumeRecorded fills in the attempt r starts for a run without Jobs:
// from its ledger record, or the first attempt when it has none.
func resumeRecorded(r *Run, rec *ledgerRecord, now time.Time) {
	if rec == nil {
		r.Attempts = 1
		return
	}
	r.Attempts = nextAttempt(rec.Attempts, rec.Phase)
	r.QueuedSince = sinceOrNow(rec.QueuedSince, now)
	r.Resume = rec.Attempts > 0
}

// stopJob stops a run: its Job is suspended and says why (the pod
// template stays: the placements keep pinning it until it is resumed
// elsewhere); a run stopped for good loses its Job and Service.
func (c *Cluster) stopJob(ctx context.Context, p *changePlan, ch reconcile.Change, j liveJob, now time.Time) error {
	if j.job == nil {
		p.stoppedRecorded(j.key, j.rec, ch, now)
		return nil
	}
	if j.st.Phase.Final() || j.st.Phase == ch.Phase || j.job.DeletionTimestamp != nil {
		return nil
	}
	prev, ok := runFromAnnotations(j.job.Annotations)
	if !ok {
		return fmt.Errorf("Job %s/%s has no readable %s annotation", j.ns, j.name, AnnotationSpec)
	}
	r := prev
	r.Started = false
	r.Phase, r.Reason, r.StoppedAt = ch.Phase, ch.Reason, now
	r.FlavorLabels = flavorLabelsOf(&j.job.Spec.Template.Spec)
	objs, err := Render(c.opts.Render, r)
	if err != nil {
		return err
	}
	// Suspend it and say why, before anything else: the Job controller
	// stops its pods, and a crash from here on leaves a Job that says it
	// was stopped.
	if _, err := c.applyObject(ctx, objs[0]); err != nil {
		return err
	}
	var remove []objRef
	if ch.Phase == reconcile.PhaseStopped {
		remove = c.runRefs(kindJob, j.ns, j.name, ch.Workload.Team)
	}
	p.stopped(j.key, endRecord(prev, ch, now), remove)
	return nil
}

// resetStartTime clears the start time of a suspended Job that ran
// before, as Kueue does (its BatchJob.ResetStatus): the API server lets a
// suspended Job's pod template take new node affinity and annotations only
// while the Job has no start time, and the Job controller keeps it through
// a suspension. Without it a preempted run could resume only on the nodes
// it ran on, and without its resume mark.
func (c *Cluster) resetStartTime(ctx context.Context, job *batchv1.Job) error {
	if job.Spec.Suspend == nil || !*job.Spec.Suspend || job.Status.StartTime == nil {
		return nil
	}
	patch := []byte(`{"status":{"startTime":null}}`)
	_, err := c.client.BatchV1().Jobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: FieldManager}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("Job %s/%s: reset its start time: %w", job.Namespace, job.Name, err)
	}
	return nil
}
