package kube

import (
	"cmp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// A run's storage ends with the run, and one rule says when: staleClaims,
// which Observe counts (so the engine applies even when no change is due)
// and Apply's deletion stage carries out. It reads only what the cluster
// holds now (the claims, their runs' ledger records, the pods) and the
// configuration, so every Apply decides afresh: a deletion that failed,
// or a berth that crashed before it, is done at the next one. Only claims
// with berth's label in a team namespace of this berth are considered,
// and remove deletes each only if it still has the UID berth read.
//
//   - a checkpoint claim goes when its run succeeded (its Jobs, or once
//     they are gone its ledger record, say so) or left Git (its workload
//     is gone, or runs another runId now; a periodic job's tick runs are
//     of its runId), unless its spec keeps it (AnnotationKeep, written
//     when the claim is made, or the spec in Git);
//   - an outputs claim goes when its run left Git, or its retention has
//     passed since the run succeeded;
//   - a scratch claim (a pod's generic ephemeral volume) goes once its pod
//     has ended; Kubernetes would delete it only with the pod, and the
//     pods of a finished Job stay.
//
// A preempted, failed or node-lost run keeps its checkpoints: it resumes
// from them. A dataset's or team volume's claim is never deleted.

// staleClaims are the claims of ended runs that berth deletes now, sorted.
func (c *Cluster) staleClaims(cfg *berth.Config, now time.Time) []objRef {
	var refs []objRef
	for _, obj := range c.objs().informers[kindClaim].GetStore().List() {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.DeletionTimestamp != nil || !c.ours(pvc.Namespace, pvc.Labels[LabelTeam]) {
			continue
		}
		if c.claimEnded(cfg, pvc, now) {
			refs = append(refs, objRef{kindClaim, pvc.Namespace, pvc.Name, pvc.Labels[LabelTeam]})
		}
	}
	slices.SortFunc(refs, func(a, b objRef) int { return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name)) })
	return refs
}

// claimEnded applies the rules above to one claim of berth's.
func (c *Cluster) claimEnded(cfg *berth.Config, pvc *corev1.PersistentVolumeClaim, now time.Time) bool {
	if pod, ok := scratchPod(pvc); ok {
		return c.podEnded(pvc.Namespace, pod)
	}
	team, workload, runID := pvc.Labels[LabelTeam], pvc.Labels[LabelWorkload], pvc.Annotations[AnnotationRunID]
	if workload == "" || runID == "" || pvc.Labels[LabelRun] == "" {
		return false // a dataset's or team volume's claim
	}
	key := berth.RunKey{Workload: berth.MakeWorkloadID(team, workload), RunID: runID}
	spec, inGit := berth.Workload{}, false
	if cfg != nil {
		spec, inGit = cfg.Workloads[key.Workload]
		inGit = inGit && schedule.IsRunOf(spec, runID)
	}
	succeeded, finished := c.runSucceeded(pvc.Namespace, key)
	switch pvc.Name {
	case CheckpointClaimName(key):
		if pvc.Annotations[AnnotationKeep] == "true" || (inGit && spec.Checkpoint != nil && spec.Checkpoint.Keep) {
			return false
		}
		return succeeded || (cfg != nil && !inGit)
	case OutputsClaimName(key):
		if cfg != nil && !inGit {
			return true
		}
		retention, err := time.ParseDuration(pvc.Annotations[AnnotationRetention])
		return err == nil && succeeded && !finished.IsZero() && !now.Before(finished.Add(retention))
	}
	return false
}

// runSucceeded reports whether the run succeeded, and when: its Jobs say
// so, or, once they are gone, its ledger record. (A Job's end is written
// into the ledger in the same Apply, before the deletion stage.)
func (c *Cluster) runSucceeded(ns string, key berth.RunKey) (bool, time.Time) {
	var r reconcile.RunState
	ok := false
	if job := c.objs().job(ns, JobName(key)); job != nil {
		r, ok = c.jobRun(job)
	} else if jobs := c.objs().roleJobs(ns, key.Workload.Name(), key.RunID); len(jobs) > 0 {
		r, ok = c.rolesRun(jobs)
	}
	if ok {
		return r.Phase == reconcile.PhaseSucceeded, r.FinishedAt
	}
	if rec := c.ledgerRecord(ns, key.Workload.Name(), key.RunID); rec != nil {
		return rec.Phase == reconcile.PhaseSucceeded, rec.FinishedAt
	}
	return false, time.Time{}
}

// scratchPod is the pod whose generic ephemeral volume the claim is.
func scratchPod(pvc *corev1.PersistentVolumeClaim) (string, bool) {
	for _, o := range pvc.OwnerReferences {
		if o.Kind == "Pod" && o.Controller != nil && *o.Controller {
			return o.Name, true
		}
	}
	return "", false
}

// podEnded reports whether berth's cache holds the pod and it has ended.
// A pod the cache does not hold (not seen yet, or gone: Kubernetes then
// deletes its claims itself) is left alone.
func (c *Cluster) podEnded(ns, name string) bool {
	obj, ok, _ := c.objs().pods.GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return false
	}
	p, ok := obj.(*corev1.Pod)
	return ok && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
}
