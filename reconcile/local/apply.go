package local

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local/traffic"
)

// Apply carries out changes in order and reports each one's outcome:
//
//	queue    created (a new waiting record), configured (an ended run waits
//	         again), unchanged (already waiting, or running)
//	start    created (a new attempt started), unchanged (it runs)
//	restart  configured (stopped and started with the change's spec),
//	         unchanged (every pod runs the same digest)
//	stop     deleted (stopped, or recorded as stopped), unchanged (not
//	         running and already ended or stopped, or unknown)
//	forget   deleted (the waiting record dropped), unchanged (not waiting)
//
// A change that fails is reported failed with its error and does not stop
// the others. Stops are signalled at once and waited for together before
// the next change that is not a stop, so the capacity they free is free
// when the starts come (Diff orders stops first).
//
// After the changes, Apply records in the ledger the runs that have ended
// since it last looked (from exit.json), those it stopped included: with
// nothing new, it writes nothing.
//
// Each change carries all it needs, but for a pipeline step's inputs: the
// configuration says which run of each step it reads is current. The
// cluster's secretsDir is read from it too (where env secrets are files).
func (c *Cluster) Apply(ctx context.Context, cfg *berth.Config, changes []reconcile.Change) ([]reconcile.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg != nil {
		c.secretsDir = cfg.Clusters[c.opts.Name].SecretsDir
		c.cfg = cfg
	}
	results := make([]reconcile.Result, len(changes))
	type pendingStop struct {
		i    int
		wait func(context.Context) error
	}
	var stops []pendingStop
	// Waiting records are written together, in one transaction (one sync
	// to disk), however many a big commit queues.
	var waiting []*record
	var waitingIdx []int
	writeWaiting := func() {
		if len(waiting) == 0 {
			return
		}
		if err := c.ledger.put(waiting...); err != nil {
			for _, i := range waitingIdx {
				results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, changeError(changes[i], err)
			}
		}
		waiting, waitingIdx = nil, nil
	}
	flush := func() {
		for _, s := range stops {
			if err := s.wait(ctx); err != nil {
				results[s.i].Outcome, results[s.i].Err = reconcile.OutcomeFailed, changeError(changes[s.i], err)
			}
		}
		stops = nil
	}
	for i, ch := range changes {
		results[i].Change = ch
		if ch.Op != reconcile.OpStop {
			flush()
		}
		if ch.Op != reconcile.OpQueue {
			writeWaiting()
		}
		if err := ctx.Err(); err != nil {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, changeError(ch, err)
			continue
		}
		out, r, wait, err := c.applyChange(ctx, ch)
		if r != nil {
			waiting, waitingIdx = append(waiting, r), append(waitingIdx, i)
		}
		if wait != nil {
			stops = append(stops, pendingStop{i, wait})
		}
		if err != nil {
			out, err = reconcile.OutcomeFailed, changeError(ch, err)
		}
		results[i].Outcome, results[i].Err = out, err
	}
	flush()
	writeWaiting()
	c.syncTraffic()
	if err := c.settle(); err != nil {
		c.log.Warn("cannot record ended runs", "err", err)
	}
	if err := c.ledger.flushQueue(); err != nil {
		c.log.Warn("cannot write the queue file (berth ledger rebuild reads it)", "err", err)
	}
	return results, nil
}

// applyChange applies one change. A queued run's record comes back to
// be written with the others (waiting), and a stop's wait to be waited
// for with the stops next to it.
func (c *Cluster) applyChange(ctx context.Context, ch reconcile.Change) (out reconcile.Outcome, waiting *record, wait func(context.Context) error, err error) {
	switch ch.Op {
	case reconcile.OpQueue:
		out, waiting, err = c.queue(ch)
	case reconcile.OpForget:
		out, err = c.forget(ch)
	case reconcile.OpStart:
		out, err = c.startChange(ch)
	case reconcile.OpRestart:
		out, err = c.restart(ctx, ch)
	case reconcile.OpStop:
		out, wait, err = c.stop(ch)
	default:
		err = fmt.Errorf("unknown op %q", ch.Op)
	}
	return out, waiting, wait, err
}

func changeError(ch reconcile.Change, err error) error {
	return fmt.Errorf("workload %s run %s: %s: %w", ch.Workload.ID(), ch.RunID, ch.Op, err)
}

// settle records in the ledger the end of every attempt that has ended
// since Apply last looked, in one transaction.
func (c *Cluster) settle() error {
	var ended []*record
	for _, r := range c.ledger.runs {
		if r.Waiting || r.Attempt == nil || r.Attempt.Starting || r.Ended != nil {
			continue
		}
		v := c.view(r)
		if v.live {
			continue
		}
		n := r.clone()
		n.Ended = &ending{Phase: v.phase, Reason: v.reason, FinishedAt: v.finishedAt}
		ended = append(ended, n)
	}
	if err := c.ledger.put(ended...); err != nil {
		return err
	}
	// Only once the ledger says they ended (a crash in between leaves the
	// directories behind, unread).
	for _, r := range ended {
		c.cleanEnded(r)
	}
	return c.expireOutputs()
}

// fromChange fills a record's spec fields from a change: what the run is
// started with.
func fromChange(r *record, ch reconcile.Change) {
	w := ch.Workload
	if w.Kind != "" {
		r.Kind = w.Kind
	}
	if ch.Digest != "" {
		r.Digest = ch.Digest
	} else if len(w.Command) > 0 {
		r.Digest = berth.SpecDigest(w)
	}
	d := ch.Decision
	if d.Flavor != "" {
		r.Flavor = d.Flavor
	}
	r.Priority = d.Priority
	r.Retries = w.Retries
	r.Resources = w.Resources
	r.MaxDuration = w.MaxDuration
	if len(d.Placements) > 0 {
		r.Placements = d.Placements
		r.Roles = nil
		for _, x := range d.Roles {
			if len(x.Placements) > 0 {
				x.PodsAsked, x.MinPods = 0, 0
				r.Roles = append(r.Roles, x)
			}
		}
	}
	if ch.Revision != "" {
		r.Revision = ch.Revision
	}
	if len(w.Command) > 0 || len(w.Roles) > 0 || w.Kind == berth.KindNotebook {
		r.Service = nil
		if ports := w.ServedPorts(); len(ports) > 0 && !w.Kind.RunsOnce() {
			r.Service = &serviceSpec{Ports: ports, Health: w.Health, Rollout: w.Rollout, Expose: w.Expose}
		}
		r.Idle = w.Idle
	}
}

func (c *Cluster) newRecord(ch reconcile.Change) *record {
	r := &record{RunRecord: reconcile.RunRecord{Workload: ch.Workload.ID(), RunID: ch.RunID, QueuedSince: c.opts.Now()}}
	fromChange(r, ch)
	return r
}

// queue returns the record to write (nil: nothing to write); Apply writes
// the waiting records of one Apply together.
func (c *Cluster) queue(ch reconcile.Change) (reconcile.Outcome, *record, error) {
	r, ok := c.ledger.get(ch.Key())
	if !ok {
		r = c.newRecord(ch)
		r.Waiting = true
		return reconcile.OutcomeCreated, r, nil
	}
	if r.Waiting || c.view(r).live {
		return reconcile.OutcomeUnchanged, nil, nil
	}
	// An ended run (a service whose processes ended, a stopped run) waits
	// again, from now.
	r.Waiting, r.QueuedSince = true, c.opts.Now()
	r.Kind = orKind(ch.Workload.Kind, r.Kind)
	r.Priority, r.Retries = ch.Decision.Priority, ch.Workload.Retries
	return reconcile.OutcomeConfigured, r, nil
}

func orKind(k, d berth.Kind) berth.Kind {
	if k == "" {
		return d
	}
	return k
}

func (c *Cluster) forget(ch reconcile.Change) (reconcile.Outcome, error) {
	r, ok := c.ledger.get(ch.Key())
	if !ok || !r.Waiting {
		return reconcile.OutcomeUnchanged, nil
	}
	if r.Attempts == 0 {
		return reconcile.OutcomeDeleted, c.ledger.delete(r.Key())
	}
	// It ran before: its history stays, it just no longer waits.
	r.Waiting = false
	return reconcile.OutcomeDeleted, c.ledger.put(r)
}

func (c *Cluster) startChange(ch reconcile.Change) (reconcile.Outcome, error) {
	r, ok := c.ledger.get(ch.Key())
	if ok && c.view(r).live {
		return reconcile.OutcomeUnchanged, nil
	}
	if !ok {
		r = c.newRecord(ch)
	} else {
		fromChange(r, ch)
	}
	if err := c.start(r, ch.Workload); err != nil {
		return reconcile.OutcomeFailed, err
	}
	return reconcile.OutcomeCreated, nil
}

func (c *Cluster) restart(ctx context.Context, ch reconcile.Change) (reconcile.Outcome, error) {
	r, ok := c.ledger.get(ch.Key())
	if !ok {
		r = c.newRecord(ch)
		if err := c.start(r, ch.Workload); err != nil {
			return reconcile.OutcomeFailed, err
		}
		return reconcile.OutcomeCreated, nil
	}
	v := c.view(r)
	digest := ch.Digest
	if digest == "" {
		digest = berth.SpecDigest(ch.Workload)
	}
	if v.allLive && r.Digest == digest {
		return reconcile.OutcomeUnchanged, nil
	}
	// A notebook is not rolled: it has one owner, and two servers on its
	// one directory would write over each other.
	if v.live && r.Service != nil && traffic.Routed(ch.Workload) && !ch.Workload.Kind.RunsOnce() &&
		ch.Workload.Kind != berth.KindNotebook && r.Attempt != nil && !r.Attempt.Starting {
		if err := c.roll(ctx, r, ch); err != nil {
			return reconcile.OutcomeFailed, err
		}
		return reconcile.OutcomeConfigured, nil
	}
	if v.live {
		reason := "restarting"
		if ch.Reason != "" {
			reason += ": " + ch.Reason
		}
		if r.Stop == nil {
			r.Stop = &stopRequest{Phase: reconcile.PhaseStopped, Reason: reason, At: c.opts.Now()}
			if err := c.ledger.put(r); err != nil {
				return reconcile.OutcomeFailed, err
			}
		}
		if err := c.stopAndWait(ctx, r); err != nil {
			return reconcile.OutcomeFailed, err
		}
	}
	fromChange(r, ch)
	if err := c.start(r, ch.Workload); err != nil {
		return reconcile.OutcomeFailed, err
	}
	return reconcile.OutcomeConfigured, nil
}

// stop records the stop and signals the pods; the returned wait, when not
// nil, waits for them to end.
func (c *Cluster) stop(ch reconcile.Change) (reconcile.Outcome, func(context.Context) error, error) {
	r, ok := c.ledger.get(ch.Key())
	if !ok {
		return reconcile.OutcomeUnchanged, nil, nil
	}
	phase, reason := ch.Phase, ch.Reason
	if phase == "" {
		phase = reconcile.PhaseStopped
	}
	if reason == "" {
		reason = "stopped"
	}
	v := c.view(r)
	if !v.live {
		switch {
		case r.Stop != nil && r.Stop.Phase == phase,
			v.phase == reconcile.PhaseSucceeded, v.phase == reconcile.PhaseFailed, v.phase == reconcile.PhaseStopped:
			return reconcile.OutcomeUnchanged, nil, nil
		}
		// Waiting (queued or preempted): it will not start.
		r.Waiting = false
		r.Stop = &stopRequest{Phase: phase, Reason: reason, At: c.opts.Now()}
		r.Ended = nil
		return reconcile.OutcomeDeleted, nil, c.ledger.put(r)
	}
	if r.Stop == nil || r.Stop.Phase != phase || r.Stop.Reason != reason {
		r.Stop = &stopRequest{Phase: phase, Reason: reason, At: c.opts.Now()}
		if err := c.ledger.put(r); err != nil {
			return reconcile.OutcomeFailed, nil, err
		}
	}
	c.log.Info("stopping run", "workload", r.Workload, "run", r.RunID, "attempt", r.Attempt.N, "phase", phase, "reason", reason)
	signalled := c.signalPods(r, map[int]bool{})
	return reconcile.OutcomeDeleted, func(ctx context.Context) error { return c.waitEnded(ctx, r, signalled) }, nil
}

func (c *Cluster) stopAndWait(ctx context.Context, r *record) error {
	return c.waitEnded(ctx, r, c.signalPods(r, map[int]bool{}))
}

// waitEnded waits until no pod of r's attempt runs, signalling pods whose
// shim had not yet written its pid. The shim itself escalates to SIGKILL
// after the grace period, so this waits that long and a margin.
func (c *Cluster) waitEnded(ctx context.Context, r *record, signalled map[int]bool) error {
	deadline := time.Now().Add(c.opts.GracePeriod + 15*time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !c.view(r).live {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("its processes are still running %s after SIGTERM", c.opts.GracePeriod+15*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		c.signalPods(r, signalled)
	}
}
