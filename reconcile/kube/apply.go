package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-gpu/berth/reconcile"
)

// Apply carries out the changes in four steps, each in parallel where the
// objects are independent:
//
//  1. the namespace and ResourceQuota of every team a change starts or
//     queues a run of (skipped when the cache shows them as rendered);
//  2. each change's objects, with server-side apply: an object the cache
//     does not have is created in one request; one it has goes through
//     a dry-run drift check (fluxcd/pkg/ssa's, see drifted) and is written
//     only if it drifted;
//  3. the ledger, one merge patch per team: what step 2 started, stopped or
//     queued, and the ends of finished Jobs not recorded yet;
//  4. deletions (a stopped or forgotten run's objects, a deleted Job whose
//     end is now recorded), only after the ledger holds what they were.
//
// It then waits until the informers have seen its writes, so the next
// Observe sees them too. A change that fails does not stop the others.
func (c *Cluster) Apply(ctx context.Context, changes []reconcile.Change) ([]reconcile.Result, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if !c.Leading() {
		return nil, &NotLeaderError{Cluster: c.opts.Name, Lease: c.elector.name(), Holder: c.elector.holder()}
	}
	now := c.opts.Now().UTC().Truncate(time.Second)
	results := make([]reconcile.Result, len(changes))
	plans := make([]*changePlan, len(changes))

	// 1. Teams.
	var took [5]time.Duration
	mark := time.Now()
	lap := func(i int) {
		took[i] = time.Since(mark)
		mark = time.Now()
	}
	teamErrs := c.applyTeams(ctx, changes)
	lap(0)

	// 2. Objects.
	c.parallel(len(changes), func(i int) {
		ch := changes[i]
		results[i] = reconcile.Result{Change: ch, Outcome: reconcile.OutcomeUnchanged}
		if err := teamErrs[ch.Workload.Team]; err != nil && needsNamespace(ch.Op) {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, err
			return
		}
		p := c.planChange(ctx, ch, now)
		plans[i] = p
		if p.err != nil {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, p.err
			return
		}
		results[i].Outcome = p.outcome
	})

	lap(1)

	// 3. The ledger.
	updates := map[string]ledgerUpdate{}
	for _, p := range plans {
		if p == nil || p.err != nil {
			continue
		}
		for k, r := range p.ledger {
			if updates[p.team] == nil {
				updates[p.team] = ledgerUpdate{}
			}
			updates[p.team][k] = r
		}
	}
	release := c.foldFinished(updates, now)
	ledgerErrs := map[string]error{}
	teams := make([]string, 0, len(updates))
	for t := range updates {
		teams = append(teams, t)
	}
	sort.Strings(teams)
	var mu sync.Mutex
	c.parallel(len(teams), func(i int) {
		if err := c.writeLedger(ctx, teams[i], updates[teams[i]]); err != nil {
			mu.Lock()
			ledgerErrs[teams[i]] = err
			mu.Unlock()
		}
	})

	lap(2)

	// 4. Deletions, once the ledger recorded what goes.
	type deletion struct {
		i   int // change, or -1
		ref objRef
	}
	var dels []deletion
	for i, p := range plans {
		if p == nil || p.err != nil {
			continue
		}
		if err := ledgerErrs[p.team]; err != nil && len(p.ledger) > 0 {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, err
			continue
		}
		for _, ref := range p.remove {
			dels = append(dels, deletion{i, ref})
		}
	}
	for _, ref := range release {
		if ledgerErrs[ref.team] == nil {
			dels = append(dels, deletion{-1, ref})
		}
	}
	var delMu sync.Mutex
	c.parallel(len(dels), func(k int) {
		d := dels[k]
		err := c.remove(ctx, d.ref)
		if d.i < 0 {
			if err != nil {
				c.opts.Logger.Warn("releasing a finished Job failed", "cluster", c.opts.Name, "job", d.ref.ns+"/"+d.ref.name, "err", err)
			}
			return
		}
		delMu.Lock()
		defer delMu.Unlock()
		if err != nil && results[d.i].Err == nil {
			results[d.i].Outcome, results[d.i].Err = reconcile.OutcomeFailed, err
		}
	})

	lap(3)

	// 5. Wait for the informers.
	ws := c.written.take()
	if !c.objs().waitCaughtUp(ctx, ws, 30*time.Second) {
		c.opts.Logger.Warn("informers lag behind what was applied", "cluster", c.opts.Name, "objects", len(ws))
	}
	lap(4)
	c.opts.Logger.Debug("applied", "cluster", c.opts.Name, "changes", len(changes), "writes", len(ws),
		"teams", took[0], "objects", took[1], "ledger", took[2], "deletions", took[3], "informers", took[4])
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) == len(changes) && len(errs) > 0 {
		// Nothing went through: most likely the cluster itself failed.
		return results, fmt.Errorf("cluster %s: every change failed; the first: %w", c.opts.Name, errs[0])
	}
	return results, nil
}

func needsNamespace(op reconcile.Op) bool {
	return op == reconcile.OpQueue || op == reconcile.OpStart || op == reconcile.OpRestart
}

// parallel runs f(0..n-1) on the cluster's bounded pool of workers
// (errgroup with a limit: at most Workers calls run at once).
func (c *Cluster) parallel(n int, f func(i int)) {
	var g errgroup.Group
	g.SetLimit(max(c.opts.Workers, 1))
	for i := range n {
		g.Go(func() error {
			f(i)
			return nil
		})
	}
	_ = g.Wait() // f reports its own errors
}

// objRef names an object to delete. job marks a Job whose ledger
// finalizer must go first.
type objRef struct {
	kind, ns, name, team string
}

// changePlan is what one change did in step 2 and leaves for steps 3 and 4.
type changePlan struct {
	team    string
	outcome reconcile.Outcome
	err     error
	ledger  ledgerUpdate
	remove  []objRef
}

// removeRun plans the deletion of a run's object (its Job or Deployment)
// and of its Service, if it has one.
func (c *Cluster) removeRun(p *changePlan, kind, ns, name, team string) {
	p.remove = append(p.remove, objRef{kind, ns, name, team})
	if c.objs().service(ns, name) != nil {
		p.remove = append(p.remove, objRef{kindService, ns, name, team})
	}
}

func (p *changePlan) record(key string, r *ledgerRecord) {
	if p.ledger == nil {
		p.ledger = ledgerUpdate{}
	}
	p.ledger[key] = r
}

// applyTeams applies the namespace and quota of each team the changes
// queue or start a run of, and returns the teams that failed.
func (c *Cluster) applyTeams(ctx context.Context, changes []reconcile.Change) map[string]error {
	var teams []string
	seen := map[string]bool{}
	for _, ch := range changes {
		if t := ch.Workload.Team; needsNamespace(ch.Op) && !seen[t] {
			seen[t] = true
			teams = append(teams, t)
		}
	}
	sort.Strings(teams)
	cfg := c.config()
	errs := map[string]error{}
	var mu sync.Mutex
	c.parallel(len(teams), func(i int) {
		team := teams[i]
		objs, err := RenderTeam(c.opts.Render, cfg, team)
		if err == nil {
			for _, obj := range objs {
				if _, err = c.applyObject(ctx, obj); err != nil {
					break
				}
			}
		}
		if err != nil {
			mu.Lock()
			errs[team] = fmt.Errorf("team %s: namespace: %w", team, err)
			mu.Unlock()
		}
	})
	return errs
}

// applyObject applies one object with server-side apply under berth's
// field manager, taking fields from other managers (a hand edit) back.
// An object the cache holds as rendered is not sent at all; one it holds
// otherwise goes through the dry-run drift check first (drift.go).
func (c *Cluster) applyObject(ctx context.Context, obj *unstructured.Unstructured) (reconcile.Outcome, error) {
	kind, ns, name := obj.GetKind(), obj.GetNamespace(), obj.GetName()
	live, exists := c.objs().get(kind, ns, name)
	if exists {
		if Drift(obj, liveMap(live.(runtime.Object))) == "" {
			return reconcile.OutcomeUnchanged, nil
		}
		drifted, err := c.drifted(ctx, obj)
		if err != nil {
			return reconcile.OutcomeFailed, fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
		}
		if !drifted {
			return reconcile.OutcomeUnchanged, nil
		}
	}
	applied := obj.DeepCopy()
	if err := c.crc.Patch(ctx, applied, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return reconcile.OutcomeFailed, fmt.Errorf("%s %s/%s: apply: %w", kind, ns, name, err)
	}
	c.written.add(kind, ns, name, applied.GetResourceVersion())
	if exists {
		return reconcile.OutcomeConfigured, nil
	}
	return reconcile.OutcomeCreated, nil
}

// applyObjects applies a run's objects in order; the outcome is the
// strongest of theirs (created over configured over unchanged).
func (c *Cluster) applyObjects(ctx context.Context, objs []*unstructured.Unstructured) (reconcile.Outcome, error) {
	out := reconcile.OutcomeUnchanged
	for _, obj := range objs {
		o, err := c.applyObject(ctx, obj)
		if err != nil {
			return reconcile.OutcomeFailed, err
		}
		if o == reconcile.OutcomeCreated || (o == reconcile.OutcomeConfigured && out == reconcile.OutcomeUnchanged) {
			out = o
		}
	}
	return out, nil
}

// remove deletes one object berth owns: one that does not carry berth's
// label is left alone, and the delete is conditional on the UID berth
// read, so an object recreated meanwhile by someone else survives. A Job
// loses berth's ledger finalizer first.
func (c *Cluster) remove(ctx context.Context, ref objRef) error {
	if ref.kind == kindJob {
		if err := c.releaseJob(ctx, ref.ns, ref.name); err != nil {
			return err
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvkOf(ref.kind))
	err := c.crc.Get(ctx, client.ObjectKey{Namespace: ref.ns, Name: ref.name}, u)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", ref.kind, ref.ns, ref.name, err)
	}
	if u.GetLabels()[LabelManagedBy] != ManagedByValue {
		return fmt.Errorf("%s %s/%s is not berth's (no %s=%s label): left alone", ref.kind, ref.ns, ref.name, LabelManagedBy, ManagedByValue)
	}
	uid := u.GetUID()
	err = c.crc.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s: delete: %w", ref.kind, ref.ns, ref.name, err)
	}
	c.written.add(ref.kind, ref.ns, ref.name, "")
	return nil
}

// releaseJob removes berth's ledger finalizer from a Job, by position with
// a test, so no other finalizer is touched.
func (c *Cluster) releaseJob(ctx context.Context, ns, name string) error {
	job, err := c.client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Job %s/%s: %w", ns, name, err)
	}
	for i, f := range job.Finalizers {
		if f != FinalizerLedger {
			continue
		}
		path := fmt.Sprintf("/metadata/finalizers/%d", i)
		patch, _ := json.Marshal([]map[string]any{
			{"op": "test", "path": path, "value": FinalizerLedger},
			{"op": "remove", "path": path},
		})
		_, err := c.client.BatchV1().Jobs(ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("Job %s/%s: finalizer: %w", ns, name, err)
		}
		return nil
	}
	return nil
}

// nextAttempt is the attempt a start makes after attempt last, which
// ended in phase: resuming after a preemption is not a new attempt (a
// preemption does not use up a retry).
func nextAttempt(last int, phase reconcile.Phase) int {
	if phase == reconcile.PhasePreempted {
		return max(last, 1)
	}
	return last + 1
}

// recreateJob replaces a Job whose pod template must change (a queued
// Job's spec changed in Git, or a failed run is retried): the old Job
// goes, and once the API server no longer has it, the new one is applied.
func (c *Cluster) recreateJob(ctx context.Context, old *batchv1.Job) error {
	if err := c.remove(ctx, objRef{kind: kindJob, ns: old.Namespace, name: old.Name}); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.client.BatchV1().Jobs(old.Namespace).Get(ctx, old.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Job %s/%s: still there a minute after it was deleted", old.Namespace, old.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func gvkOf(kind string) schema.GroupVersionKind {
	switch kind {
	case kindJob:
		return batchv1.SchemeGroupVersion.WithKind(kind)
	case kindDeployment:
		return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
	default:
		return schema.GroupVersionKind{Version: "v1", Kind: kind}
	}
}

// planChange carries out step 2 for one change.
func (c *Cluster) planChange(ctx context.Context, ch reconcile.Change, now time.Time) *changePlan {
	p := &changePlan{team: ch.Workload.Team, outcome: reconcile.OutcomeUnchanged}
	var err error
	if ch.Workload.Kind.RunsOnce() {
		err = c.planJob(ctx, p, ch, now)
	} else {
		err = c.planService(ctx, p, ch, now)
	}
	if err != nil {
		p.err = fmt.Errorf("workload %s: %s: %w", ch.Workload.ID(), ch.Op, err)
	}
	return p
}

// baseRun is the Run a change asks for, before the live state is folded in.
func (c *Cluster) baseRun(ch reconcile.Change, now time.Time) Run {
	d := ch.Decision
	return Run{
		Workload:     ch.Workload,
		RunID:        ch.RunID,
		Digest:       ch.Digest,
		Path:         ch.Workload.Pos.String(),
		Commit:       ch.Revision,
		Flavor:       d.Flavor,
		FlavorLabels: c.flavorLabels(d.Flavor),
		Priority:     d.Priority,
		Placements:   d.Placements,
		QueuedSince:  sinceOrNow(d.Since, now),
	}
}

func (c *Cluster) ledgerRecord(ns, name, runID string) *ledgerRecord {
	cm, ok := c.objs().ledger(ns)
	if !ok {
		return nil
	}
	v, ok := cm.Data[LedgerKey(name, runID)]
	if !ok {
		return nil
	}
	var r ledgerRecord
	if json.Unmarshal([]byte(v), &r) != nil {
		return nil
	}
	return &r
}

func (c *Cluster) planJob(ctx context.Context, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	ns := Namespace(c.opts.Render.NamespacePrefix, w.Team)
	if len(w.Roles) > 0 || len(c.objs().roleJobs(ns, w.Name, ch.RunID)) > 0 {
		// A stop of a run that left Git has no spec: its Jobs say it has
		// roles.
		return c.planRoles(ctx, p, ch, now)
	}
	name := JobName(ch.Key())
	key := LedgerKey(w.Name, ch.RunID)
	live := c.objs().job(ns, name)
	rec := c.ledgerRecord(ns, w.Name, ch.RunID)
	var st jobState
	if live != nil {
		st = JobState(live, c.objs().jobPods(live))
	}

	switch ch.Op {
	case reconcile.OpQueue:
		if live != nil || (rec != nil && rec.Phase != reconcile.PhaseQueued) {
			return nil
		}
		r := c.baseRun(ch, now)
		objs, err := Render(c.opts.Render, r)
		if err != nil {
			return err
		}
		p.outcome, err = c.applyObjects(ctx, objs[:1]) // the Job; a gang's Service comes with its start
		return err

	case reconcile.OpStart, reconcile.OpRestart:
		if live != nil && st.Phase.Holds() {
			return nil
		}
		if live == nil && rec != nil && rec.Phase == reconcile.PhaseSucceeded {
			return fmt.Errorf("run %s already succeeded; bump runId for a new run", ch.RunID)
		}
		r := c.baseRun(ch, now)
		r.Started, r.StartedAt = true, now
		recreate := false
		switch {
		case live != nil && (st.Phase == reconcile.PhaseFailed || st.Phase == reconcile.PhaseSucceeded || st.Phase == reconcile.PhaseStopped):
			// A retry the engine decided on: a new Job of the same spec.
			recreate = true
			r.Attempts = max(parseInt(live.Annotations[AnnotationAttempts]), st.Failed) + 1
			r.QueuedSince = sinceOrNow(parseTime(live.Annotations[AnnotationQueuedSince]), now)
		case live != nil:
			prev, ok := runFromAnnotations(live.Annotations)
			neverStarted := live.Annotations[AnnotationAttempts] == "" && live.Status.StartTime == nil
			if ok && !(neverStarted && prev.Digest != ch.Digest) {
				// A preempted run resumes with the spec it started with:
				// a Job's pod template cannot change.
				r.Workload, r.Digest, r.Path, r.Commit = prev.Workload, prev.Digest, prev.Path, prev.Commit
			} else if neverStarted {
				recreate = true
			}
			r.Attempts = nextAttempt(parseInt(live.Annotations[AnnotationAttempts]), prev.Phase) // prev is zero when !ok
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
		if live != nil && !recreate && live.Spec.Completions != nil {
			// An indexed Job's count cannot change: a gang admitted with
			// another number of workers than its Job has gets a new Job.
			if want, _, _ := unstructured.NestedInt64(objs[0].Object, "spec", "completions"); want > 0 && int64(*live.Spec.Completions) != want {
				recreate = true
			}
		}
		if recreate {
			if err := c.recreateJob(ctx, live); err != nil {
				return err
			}
			c.written.add(kindJob, ns, name, "")
			if !c.objs().waitCaughtUp(ctx, []writtenObj{{kindJob, ns, name, ""}}, 30*time.Second) {
				return fmt.Errorf("Job %s/%s: the cache still holds it after its deletion", ns, name)
			}
		}
		if p.outcome, err = c.applyObjects(ctx, objs); err != nil {
			return err
		}
		if live != nil && !recreate && p.outcome == reconcile.OutcomeCreated {
			p.outcome = reconcile.OutcomeConfigured
		}
		p.record(key, &ledgerRecord{Kind: r.Workload.Kind, Phase: reconcile.PhaseAdmitted, Digest: r.Digest, Attempts: r.Attempts,
			Retries: r.Workload.Retries, QueuedSince: r.QueuedSince, StartedAt: now})
		return nil

	case reconcile.OpStop:
		if live == nil {
			if rec != nil && rec.Phase.Holds() {
				rec.Phase, rec.Reason, rec.FinishedAt = ch.Phase, ch.Reason, now
				p.record(key, rec)
				p.outcome = reconcile.OutcomeConfigured
			}
			return nil
		}
		if st.Phase.Final() || st.Phase == ch.Phase || live.DeletionTimestamp != nil {
			return nil
		}
		prev, ok := runFromAnnotations(live.Annotations)
		if !ok {
			return fmt.Errorf("Job %s/%s has no readable %s annotation", ns, name, AnnotationSpec)
		}
		// The pod template stays as it is (a running Job's cannot change):
		// the placements keep pinning it until it is resumed elsewhere.
		r := prev
		r.Started = false
		r.Phase, r.Reason, r.StoppedAt = ch.Phase, ch.Reason, now
		r.FlavorLabels = flavorLabelsOf(&live.Spec.Template.Spec)
		objs, err := Render(c.opts.Render, r)
		if err != nil {
			return err
		}
		// Suspend it and say why, before anything else: the Job
		// controller stops its pods, and a crash from here on leaves a
		// Job that says it was stopped.
		if _, err := c.applyObject(ctx, objs[0]); err != nil {
			return err
		}
		p.record(key, &ledgerRecord{Kind: r.Workload.Kind, Phase: ch.Phase, Reason: ch.Reason, Digest: r.Digest, Attempts: r.Attempts,
			Retries: r.Workload.Retries, QueuedSince: r.QueuedSince, StartedAt: prev.StartedAt, FinishedAt: now})
		p.outcome = reconcile.OutcomeConfigured
		if ch.Phase == reconcile.PhaseStopped {
			c.removeRun(p, kindJob, ns, name, w.Team)
			p.outcome = reconcile.OutcomeDeleted
		}
		return nil

	case reconcile.OpForget:
		if live != nil && st.Phase == reconcile.PhaseQueued {
			p.remove = append(p.remove, objRef{kindJob, ns, name, w.Team})
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

func (c *Cluster) planService(ctx context.Context, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	ns := Namespace(c.opts.Render.NamespacePrefix, w.Team)
	name := DeploymentName(w.ID())
	key := LedgerKey(w.Name, ch.RunID)
	live := c.objs().deployment(ns, name)
	if live != nil && live.DeletionTimestamp != nil {
		live = nil
	}
	rec := c.ledgerRecord(ns, w.Name, ch.RunID)

	switch ch.Op {
	case reconcile.OpQueue:
		if live != nil || (rec != nil && rec.Phase == reconcile.PhaseQueued) {
			return nil
		}
		p.record(key, &ledgerRecord{Kind: w.Kind, Phase: reconcile.PhaseQueued, QueuedSince: sinceOrNow(ch.Decision.Since, now)})
		p.outcome = reconcile.OutcomeCreated
		return nil

	case reconcile.OpStart, reconcile.OpRestart:
		if ch.Op == reconcile.OpStart && live != nil {
			return nil
		}
		r := c.baseRun(ch, now)
		r.Started, r.StartedAt = true, now
		switch {
		case live != nil:
			r.Attempts = parseInt(live.Annotations[AnnotationAttempts]) + 1
			r.QueuedSince = sinceOrNow(parseTime(live.Annotations[AnnotationQueuedSince]), now)
			r.OmitReplicas = replicasOwnedByOther(live)
			if ch.Decision.Flavor == "" {
				// A restart of a kept service: it stays where it is.
				r.Flavor, r.Priority = live.Annotations[AnnotationFlavor], parseInt(live.Annotations[AnnotationPriority])
				r.Placements = placementsOf(live.Annotations)
				r.FlavorLabels = c.flavorLabels(r.Flavor)
			}
		case rec != nil:
			r.Attempts = rec.Attempts + 1
			r.QueuedSince = sinceOrNow(rec.QueuedSince, now)
		default:
			r.Attempts = 1
		}
		objs, err := Render(c.opts.Render, r)
		if err != nil {
			return err
		}
		if p.outcome, err = c.applyObjects(ctx, objs); err != nil {
			return err
		}
		if len(objs) == 1 && c.objs().service(ns, name) != nil {
			// Its ports are gone: so is its Service.
			p.remove = append(p.remove, objRef{kindService, ns, name, w.Team})
		}
		if rec != nil {
			p.record(key, nil) // the Deployment is the record now
		}
		return nil

	case reconcile.OpStop:
		if live == nil {
			return nil
		}
		prev, _ := runFromAnnotations(live.Annotations)
		p.record(key, &ledgerRecord{Kind: w.Kind, Phase: ch.Phase, Reason: ch.Reason, Digest: prev.Digest, Attempts: prev.Attempts,
			QueuedSince: prev.QueuedSince, StartedAt: prev.StartedAt, FinishedAt: now})
		c.removeRun(p, kindDeployment, ns, name, w.Team)
		p.outcome = reconcile.OutcomeDeleted
		return nil

	case reconcile.OpForget:
		if rec != nil && rec.Phase == reconcile.PhaseQueued {
			p.record(key, nil)
			p.outcome = reconcile.OutcomeDeleted
		}
		return nil
	}
	return nil
}

// foldFinished adds to the ledger updates the end of every finished Job
// the ledger does not hold yet, and returns the Jobs being deleted whose
// end the ledger will then hold: their finalizer can go.
//
// The Jobs of a run of a workload with roles are one run: its end is
// recorded once, and its Jobs released together.
func (c *Cluster) foldFinished(updates map[string]ledgerUpdate, now time.Time) []objRef {
	var release []objRef
	fold := func(r reconcile.RunState, jobs []*batchv1.Job) {
		if !r.Phase.Final() {
			return
		}
		job := jobs[0]
		team := r.Workload.Team()
		key := LedgerKey(r.Workload.Name(), r.RunID)
		rec := c.ledgerRecord(job.Namespace, r.Workload.Name(), r.RunID)
		pending, planned := updates[team][key]
		switch {
		case planned && pending != nil && pending.Phase.Final():
		case rec != nil && rec.Phase == r.Phase && !planned:
		default:
			if updates[team] == nil {
				updates[team] = ledgerUpdate{}
			}
			w, _ := specOf(job.Annotations)
			updates[team][key] = &ledgerRecord{Kind: r.Kind, Phase: r.Phase, Reason: r.Reason, Digest: r.Digest, Attempts: r.Attempts,
				Retries: w.Retries, QueuedSince: r.QueuedSince, StartedAt: r.StartedAt, FinishedAt: sinceOrNow(r.FinishedAt, now)}
		}
		for _, j := range jobs {
			if j.DeletionTimestamp != nil && hasFinalizer(j) {
				release = append(release, objRef{kindJob, j.Namespace, j.Name, team})
			}
		}
	}
	single, groups := roleGroups(c.objs().jobs())
	for _, job := range single {
		if r, ok := c.jobRun(job); ok {
			fold(r, []*batchv1.Job{job})
		}
	}
	for _, jobs := range groups {
		if r, ok := c.rolesRun(jobs); ok {
			fold(r, jobs)
		}
	}
	return release
}

func hasFinalizer(job *batchv1.Job) bool {
	for _, f := range job.Finalizers {
		if f == FinalizerLedger {
			return true
		}
	}
	return false
}
