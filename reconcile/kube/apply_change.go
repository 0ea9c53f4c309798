package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// applyChanges is Apply's stage 2: each change's objects, in parallel (a
// change of a team whose namespace failed in stage 1 fails with it). Each
// change leaves a plan of what stages 3 and 4 finish: the ledger records
// to write and the objects to delete.
func (c *Cluster) applyChanges(ctx context.Context, cfg *berth.Config, changes []reconcile.Change, teamErrs map[string]error, now time.Time) ([]reconcile.Result, []*changePlan) {
	results := make([]reconcile.Result, len(changes))
	plans := make([]*changePlan, len(changes))
	c.parallel(len(changes), func(i int) {
		ch := changes[i]
		results[i] = reconcile.Result{Change: ch, Outcome: reconcile.OutcomeUnchanged}
		if err := teamErrs[ch.Workload.Team]; err != nil && needsNamespace(ch.Op) {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, err
			return
		}
		p := c.planChange(ctx, cfg, ch, now)
		plans[i] = p
		if p.err != nil {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, p.err
			return
		}
		results[i].Outcome = p.outcome
	})
	return results, plans
}

// planChange carries out stage 2 for one change, by the kind of run: one
// Job (apply_job.go), the Jobs of a workload with roles (roles_apply.go),
// or a service's Deployment (apply_service.go).
func (c *Cluster) planChange(ctx context.Context, cfg *berth.Config, ch reconcile.Change, now time.Time) *changePlan {
	p := &changePlan{team: ch.Workload.Team, outcome: reconcile.OutcomeUnchanged}
	var err error
	if ch.Workload.Kind.RunsOnce() {
		err = c.planJob(ctx, cfg, p, ch, now)
	} else {
		err = c.planService(ctx, cfg, p, ch, now)
	}
	if err != nil {
		p.err = fmt.Errorf("workload %s: %s: %w", ch.Workload.ID(), ch.Op, err)
	}
	return p
}

// changePlan is what one change did in stage 2 and leaves for stages 3 and 4.
type changePlan struct {
	team    string
	outcome reconcile.Outcome
	err     error
	ledger  ledgerUpdate
	remove  []objRef
}

func (p *changePlan) record(key string, r *ledgerRecord) {
	if p.ledger == nil {
		p.ledger = ledgerUpdate{}
	}
	p.ledger[key] = r
}

// started records a run admitted at now, as r was rendered.
func (p *changePlan) started(key string, r Run, now time.Time) {
	p.record(key, &ledgerRecord{Kind: r.Workload.Kind, Phase: reconcile.PhaseAdmitted, Digest: r.Digest, Attempts: r.Attempts,
		Retries: r.Workload.Retries, QueuedSince: r.QueuedSince, StartedAt: now})
}

// stopped is the tail of every stop of a run with objects: its end goes to
// the ledger, and remove (the objects that go with the stop) to stage 4.
func (p *changePlan) stopped(key string, end *ledgerRecord, remove []objRef) {
	p.record(key, end)
	p.outcome = reconcile.OutcomeConfigured
	if len(remove) > 0 {
		p.remove = append(p.remove, remove...)
		p.outcome = reconcile.OutcomeDeleted
	}
}

// stoppedRecorded is the stop of a run of Jobs that only the ledger knows
// (its Jobs are gone): a record that says it holds capacity says now how
// it ended.
func (p *changePlan) stoppedRecorded(key string, rec *ledgerRecord, ch reconcile.Change, now time.Time) {
	if rec != nil && rec.Phase.Holds() {
		rec.Phase, rec.Reason, rec.FinishedAt = ch.Phase, ch.Reason, now
		p.record(key, rec)
		p.outcome = reconcile.OutcomeConfigured
	}
}

// forget is every forget: the objects of a queued run (queued: none for a
// run that waits only in the ledger) and a queued ledger record go.
func (p *changePlan) forget(key string, rec *ledgerRecord, queued []objRef) {
	if len(queued) > 0 {
		p.remove = append(p.remove, queued...)
		p.outcome = reconcile.OutcomeDeleted
	}
	if rec != nil && rec.Phase == reconcile.PhaseQueued {
		p.record(key, nil)
		p.outcome = reconcile.OutcomeDeleted
	}
}

// endRecord is the ledger record of a run whose attempt prev (as its
// objects' annotations say) ended at now as ch asks.
func endRecord(prev Run, ch reconcile.Change, now time.Time) *ledgerRecord {
	return &ledgerRecord{Kind: prev.Workload.Kind, Phase: ch.Phase, Reason: ch.Reason, Digest: prev.Digest, Attempts: prev.Attempts,
		Retries: prev.Workload.Retries, QueuedSince: prev.QueuedSince, StartedAt: prev.StartedAt, FinishedAt: now}
}

// runRefs are a run's object (its Job or Deployment) and its Service, if
// it has one.
func (c *Cluster) runRefs(kind, ns, name, team string) []objRef {
	refs := []objRef{{kind, ns, name, team}}
	if c.objs().service(ns, name) != nil {
		refs = append(refs, objRef{kindService, ns, name, team})
	}
	return refs
}

// serviceRefs are a service's Deployment and the objects that go with it:
// its Service, Ingress, HorizontalPodAutoscaler, and HTTPRoute where the cluster has a gateway
// (elsewhere the kind may not exist; it is read before it is deleted, as
// every removal is).
func (c *Cluster) serviceRefs(o RenderOptions, ns, name, team string) []objRef {
	refs := c.runRefs(kindDeployment, ns, name, team)
	if c.objs().ingress(ns, name) != nil {
		refs = append(refs, objRef{kindIngress, ns, name, team})
	}
	if c.objs().hpa(ns, name) != nil {
		refs = append(refs, objRef{kindHPA, ns, name, team})
	}
	if o.Ingress != nil && o.Ingress.Gateway != "" {
		refs = append(refs, objRef{kindHTTPRoute, ns, name, team})
	}
	return refs
}

// baseRun is the Run a change asks for, before the live state is folded in.
func baseRun(cfg *berth.Config, ch reconcile.Change, now time.Time) Run {
	d := ch.Decision
	return Run{
		Workload:     ch.Workload,
		RunID:        ch.RunID,
		Digest:       ch.Digest,
		Path:         ch.Workload.Pos.String(),
		Commit:       ch.Revision,
		Flavor:       d.Flavor,
		FlavorLabels: flavorLabels(cfg, d.Flavor),
		Priority:     d.Priority,
		Placements:   d.Placements,
		QueuedSince:  sinceOrNow(d.Since, now),
		Inputs:       inputClaims(cfg, ch.Workload),
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

// nextAttempt is the attempt a start makes after attempt last, which
// ended in phase: resuming after a preemption is not a new attempt (a
// preemption does not use up a retry).
func nextAttempt(last int, phase reconcile.Phase) int {
	if phase == reconcile.PhasePreempted {
		return max(last, 1)
	}
	return last + 1
}
