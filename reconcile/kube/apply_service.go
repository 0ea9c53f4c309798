package kube

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// planService carries out a change of a service, inference server or
// notebook: a Deployment (and a Service when it has ports) while it runs;
// only a ledger record while it waits or after it stopped.
func (c *Cluster) planService(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, now time.Time) error {
	w := ch.Workload
	if _, n, ok := berth.ParseScaleRunID(ch.RunID); ok {
		return c.planScale(ctx, cfg, p, ch, n, now)
	}
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
	case reconcile.OpStart, reconcile.OpRestart:
		if ch.Op == reconcile.OpStart && live != nil {
			return nil
		}
		return c.startService(ctx, cfg, p, ch, live, rec, now)
	case reconcile.OpStop:
		if live == nil {
			return nil
		}
		// The Deployment goes whatever the stop: the ledger holds the run
		// until it starts again.
		prev, _ := runFromAnnotations(live.Annotations)
		end := endRecord(prev, ch, now)
		end.Kind, end.Retries = w.Kind, 0 // a service is started again, never retried
		p.stopped(key, end, c.serviceRefs(c.renderOptions(cfg), ns, name, w.Team))
	case reconcile.OpForget:
		p.forget(key, rec, nil)
	}
	return nil
}

// startService applies a service's Deployment (and Service) for a start,
// or a restart with a new spec; the ledger's record of it goes (the
// Deployment is the record now).
func (c *Cluster) startService(ctx context.Context, cfg *berth.Config, p *changePlan, ch reconcile.Change, live *appsv1.Deployment, rec *ledgerRecord, now time.Time) error {
	w := ch.Workload
	ns, name := Namespace(c.opts.Render.NamespacePrefix, w.Team), DeploymentName(w.ID())
	if err := c.checkSecrets(ctx, cfg, ns, w); err != nil {
		return err // a running Deployment keeps its spec until the Secret is there
	}
	r := baseRun(cfg, ch, now)
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
			r.FlavorLabels = flavorLabels(cfg, r.Flavor)
		}
	case rec != nil:
		r.Attempts = rec.Attempts + 1
		r.QueuedSince = sinceOrNow(rec.QueuedSince, now)
	default:
		r.Attempts = 1
	}
	if w.Autoscale != nil {
		// The replicas above the minimum stay admitted across a restart.
		c.scaleMu.Lock()
		defer c.scaleMu.Unlock()
		scale, err := c.liveScale(ctx, ns, name)
		if err != nil {
			return err
		}
		r.Scale = scale
	}
	o := c.renderOptions(cfg)
	objs, err := Render(o, r)
	if err != nil {
		return err
	}
	if err := c.ensureClaims(ctx, r); err != nil {
		return err
	}
	if p.outcome, err = c.applyObjects(ctx, objs); err != nil {
		return err
	}
	if w.Kind == berth.KindNotebook {
		if err := c.ensureNotebookToken(ctx, w.ID(), ns); err != nil {
			return err
		}
	}
	// What the spec no longer asks for goes: its Service when its ports
	// are gone, its Ingress or HTTPRoute when it is no longer exposed (or
	// the cluster's ingress changed between the two).
	rendered := map[string]bool{}
	for _, obj := range objs {
		rendered[obj.GetKind()] = true
	}
	for _, ref := range c.serviceRefs(o, ns, name, w.Team)[1:] {
		if !rendered[ref.kind] {
			p.remove = append(p.remove, ref)
		}
	}
	if rec != nil {
		p.record(LedgerKey(w.Name, ch.RunID), nil)
	}
	return nil
}
