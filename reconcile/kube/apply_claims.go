package kube

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// ensureClaims makes the claims of a run's pods that berth owns and that
// do not exist yet (RenderClaims), before the pods that mount them. A
// claim that exists is left as it is: its spec cannot change once bound,
// and a team volume's claim is shared by every workload that names it.
func (c *Cluster) ensureClaims(ctx context.Context, r Run) error {
	claims, err := RenderClaims(c.opts.Render, r)
	if err != nil {
		return err
	}
	for _, cl := range claims {
		if _, ok := c.objs().get(kindClaim, cl.GetNamespace(), cl.GetName()); ok {
			continue
		}
		if _, err := c.applyObject(ctx, cl); err != nil {
			return err
		}
	}
	return nil
}

// checkpointRefs is the checkpoint claim of a run that has ended for good
// (it succeeded, or was stopped for good), unless its spec keeps it. A
// preempted or failed run keeps its claim: it resumes from it.
func checkpointRefs(ns string, w berth.Workload, runID string) []objRef {
	if w.Checkpoint == nil || w.Checkpoint.Keep {
		return nil
	}
	return []objRef{{kindClaim, ns, CheckpointClaimName(berth.RunKey{Workload: w.ID(), RunID: runID}), w.Team}}
}

// stoppedRefs are the claims of a run stopped for good: its checkpoints
// (checkpointRefs) and its outputs, which no step will read.
func stoppedRefs(ns string, w berth.Workload, runID string) []objRef {
	refs := checkpointRefs(ns, w, runID)
	if w.Outputs != nil {
		refs = append(refs, objRef{kindClaim, ns, OutputsClaimName(berth.RunKey{Workload: w.ID(), RunID: runID}), w.Team})
	}
	return refs
}

// inputClaims is, for each step whose outputs w reads, the outputs claim
// of that step's current run in cfg.
func inputClaims(cfg *berth.Config, w berth.Workload) map[string]string {
	if len(w.Inputs) == 0 || cfg == nil {
		return nil
	}
	out := make(map[string]string, len(w.Inputs))
	for _, step := range w.Inputs {
		id := berth.MakeWorkloadID(w.Team, step)
		if p, ok := cfg.Workloads[id]; ok {
			out[step] = OutputsClaimName(berth.RunKey{Workload: id, RunID: p.RunID})
		}
	}
	return out
}

// expiredOutputs are the outputs claims whose step's run succeeded longer
// ago than their retention (their Job says when it completed).
func (c *Cluster) expiredOutputs(now time.Time) []objRef {
	var refs []objRef
	for _, obj := range c.objs().informers[kindClaim].GetStore().List() {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.DeletionTimestamp != nil || !strings.HasSuffix(pvc.Name, "-outputs") {
			continue
		}
		retention, err := time.ParseDuration(pvc.Annotations[AnnotationRetention])
		if err != nil {
			continue
		}
		job := c.objs().job(pvc.Namespace, strings.TrimSuffix(pvc.Name, "-outputs"))
		if job == nil || conditionPhase(job) != reconcile.PhaseSucceeded {
			continue
		}
		if done := conditionTime(job); !done.IsZero() && !now.Before(done.Add(retention)) {
			refs = append(refs, objRef{kindClaim, pvc.Namespace, pvc.Name, pvc.Labels[LabelTeam]})
		}
	}
	return refs
}
