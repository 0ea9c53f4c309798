package kube

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Apply carries out the changes in five stages, one file each, each in
// parallel where the objects are independent:
//
//  1. teams (apply_teams.go): the namespace and ResourceQuota of every team
//     a change starts or queues a run of, rendered from cfg (written only
//     if they drifted);
//  2. changes (apply_change.go, and by kind of run apply_job.go,
//     apply_service.go, roles_apply.go): each change's objects, with
//     fluxcd/pkg/ssa (apply_object.go, ssa.go): a dry-run apply compared
//     with the object as the informers hold it, then server-side apply of
//     what drifted (a new object: a dry run and an apply; an unchanged one:
//     a dry run);
//  3. the ledger (apply_ledger.go), one merge patch per team: what stage 2
//     started, stopped or queued, and the ends of finished Jobs not
//     recorded yet;
//  4. deletions (apply_delete.go): a stopped or forgotten run's objects, a
//     deleted Job whose end is now recorded, only after the ledger holds
//     what they were, and the storage of runs that ended (apply_prune.go);
//  5. wait (apply_wait.go) until the informers have seen every write, so
//     the next Observe sees them too.
//
// A change that fails does not stop the others.
func (c *Cluster) Apply(ctx context.Context, cfg *berth.Config, changes []reconcile.Change) ([]reconcile.Result, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if !c.Leading() {
		return nil, &NotLeaderError{Cluster: c.opts.Name, Lease: c.elector.name(), Holder: c.elector.holder()}
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.noteIdleLimits(cfg)
	now := c.opts.Now().UTC().Truncate(time.Second)
	var took [5]time.Duration
	mark := time.Now()
	lap := func(i int) {
		took[i] = time.Since(mark)
		mark = time.Now()
	}

	teamErrs := c.applyTeams(ctx, cfg, changes)
	lap(0)
	results, plans := c.applyChanges(ctx, cfg, changes, teamErrs, now)
	// Pods of roles that wait for their global rank get it (also done as
	// they appear, releaseRanks).
	for _, err := range c.assignRanks(ctx) {
		c.opts.Logger.Warn("giving a pod its rank failed", "cluster", c.opts.Name, "err", err)
	}
	lap(1)
	ledgerErrs, release := c.applyLedger(ctx, plans, now)
	release = append(release, c.staleClaims(cfg, now)...)
	lap(2)
	c.applyDeletions(ctx, results, plans, ledgerErrs, release)
	lap(3)
	writes := c.waitApplied(ctx)
	lap(4)

	c.opts.Logger.Debug("applied", "cluster", c.opts.Name, "changes", len(changes), "writes", writes,
		"teams", took[0], "objects", took[1], "ledger", took[2], "deletions", took[3], "informers", took[4])
	return results, c.allFailed(results)
}

// allFailed is Apply's error when no change went through: most likely the
// cluster itself failed.
func (c *Cluster) allFailed(results []reconcile.Result) error {
	var first error
	for _, r := range results {
		if r.Err == nil {
			return nil
		}
		if first == nil {
			first = r.Err
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("cluster %s: every change failed; the first: %w", c.opts.Name, first)
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
