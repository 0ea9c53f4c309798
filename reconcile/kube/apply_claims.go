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
