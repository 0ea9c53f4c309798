package kube

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// planScale carries out a change of one replica of an autoscaled service
// above its minimum (a run named by berth.ScaleRunID): admitting it raises
// the HorizontalPodAutoscaler's maxReplicas by one, stopping it lowers it;
// while it waits the ledger keeps when it was first seen. The replicas
// berth admitted are listed on the autoscaler (AnnotationScale), which is
// what Observe reports them from.
func (c *Cluster) planScale(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, n int, now time.Time) error {
	w := ch.Workload
	ns, name := Namespace(c.opts.Render.NamespacePrefix, w.Team), DeploymentName(w.ID())
	key := LedgerKey(w.Name, ch.RunID)
	rec := c.ledgerRecord(ns, w.Name, ch.RunID)
	switch ch.Op {
	case reconcile.OpQueue:
		if rec == nil || rec.Phase != reconcile.PhaseQueued {
			p.record(key, &ledgerRecord{Kind: w.Kind, Phase: reconcile.PhaseQueued, QueuedSince: sinceOrNow(ch.Decision.Since, now)})
			p.outcome = reconcile.OutcomeCreated
		}
		return nil
	case reconcile.OpForget:
		p.forget(key, rec, nil)
		return nil
	}
	// Start or stop: one replica more or less on the autoscaler. The
	// replicas of one service may change in parallel: one at a time, each
	// reading what the last one wrote.
	c.scaleMu.Lock()
	defer c.scaleMu.Unlock()
	live := c.objs().deployment(ns, name)
	if live == nil || live.DeletionTimestamp != nil {
		if ch.Op == reconcile.OpStart {
			return fmt.Errorf("replica %d: the service's Deployment %s/%s is gone", n, ns, name)
		}
		return nil
	}
	r, ok := runFromAnnotations(live.Annotations)
	if !ok {
		return fmt.Errorf("replica %d: Deployment %s/%s has no run berth can read", n, ns, name)
	}
	r.Started, r.OmitReplicas = true, true
	scale, err := c.liveScale(ctx, ns, name)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(scale, func(s ScaleReplica) bool { return s.N == n })
	switch {
	case ch.Op == reconcile.OpStop && i >= 0:
		scale = slices.Delete(scale, i, i+1)
	case ch.Op == reconcile.OpStart && i < 0:
		scale = append(scale, ScaleReplica{N: n, Flavor: ch.Decision.Flavor, Placements: ch.Decision.Placements, StartedAt: now.UTC().Truncate(time.Second)})
		if rec != nil {
			p.record(key, nil)
		}
	default:
		return nil
	}
	r.Scale = scale
	h, err := toUnstructured(renderHPA(c.renderOptions(cfg), r))
	if err != nil {
		return err
	}
	if p.outcome, err = c.applyObject(ctx, h); err != nil {
		return err
	}
	if ch.Op == reconcile.OpStop {
		p.outcome = reconcile.OutcomeDeleted
	}
	return nil
}

// liveScale reads the replicas berth admitted from the API server (not the
// cache: the change before may have just written them).
func (c *Cluster) liveScale(ctx context.Context, ns, name string) ([]ScaleReplica, error) {
	h, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("HorizontalPodAutoscaler %s/%s: %w", ns, name, err)
	}
	return scaleOf(h.Annotations), nil
}
