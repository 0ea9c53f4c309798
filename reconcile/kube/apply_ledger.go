package kube

import (
	"context"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/berth-gpu/berth/reconcile"
)

// applyLedger is Apply's stage 3: it writes, one merge patch per team in
// parallel, the records stage 2 planned and the ends of finished Jobs the
// ledger does not hold yet (foldFinished). It returns the teams whose
// write failed and the deleted Jobs whose end is now recorded (their
// finalizer can go in stage 4).
func (c *Cluster) applyLedger(ctx context.Context, plans []*changePlan, now time.Time) (map[string]error, []objRef) {
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
	errs := map[string]error{}
	teams := make([]string, 0, len(updates))
	for t := range updates {
		teams = append(teams, t)
	}
	slices.Sort(teams)
	var mu sync.Mutex
	c.parallel(len(teams), func(i int) {
		if err := c.writeLedger(ctx, teams[i], updates[teams[i]]); err != nil {
			mu.Lock()
			errs[teams[i]] = err
			mu.Unlock()
		}
	})
	return errs, release
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
