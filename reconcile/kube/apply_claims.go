package kube

import (
	"context"

	"github.com/berth-gpu/berth"
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
