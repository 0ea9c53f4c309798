package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local/traffic"
)

// roll replaces a running service's attempt with one of the change's spec
// without a failed request: it starts the new attempt beside the old one
// (the old is recorded as Retiring first), waits until the proxy has every
// new pod ready and has drained the old ones, and only then stops the old
// pods. A new attempt that does not become ready within ReadyTimeout is
// stopped and the old one goes on serving: the change fails with why.
//
// The whole run is one surge: on one machine every replica of the new
// attempt starts before an old one stops, so the ready count never drops
// below what was asked (rollout.maxSurge is honoured by the scheduler's
// placement, which already holds the run's capacity once).
func (c *Cluster) roll(ctx context.Context, r *record, ch reconcile.Change) error {
	before := r.clone()
	oldEps := c.endpoints(r.Attempt)
	r.Retiring = r.Attempt
	fromChange(r, ch)
	if err := c.start(r, ch.Workload); err != nil {
		c.restore(before, r)
		return err
	}
	w := serviceWorkload(r)
	sctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	err := c.router.Shift(sctx, w, oldEps, c.endpoints(r.Attempt))
	cancel()
	if err != nil {
		c.log.Warn("rollout: the new replicas did not become ready; the old ones go on serving", "workload", r.Workload, "err", err)
		c.signalAttempt(r.Attempt, map[int]bool{})
		c.waitAttempt(ctx, r.Attempt)
		c.restore(before, r)
		return fmt.Errorf("rollout: %w", err)
	}
	retiring := r.Retiring
	c.signalAttempt(retiring, map[int]bool{})
	if err := c.waitAttempt(ctx, retiring); err != nil {
		return fmt.Errorf("rollout: stopping the old replicas: %w", err)
	}
	r.Retiring = nil
	c.log.Info("rolled out", "workload", r.Workload, "run", r.RunID, "attempt", r.Attempt.N, "replaced", retiring.N)
	return c.ledger.put(r)
}

// restore puts a run back as it was before a rollout that failed.
func (c *Cluster) restore(before, r *record) {
	*r = *before
	if err := c.ledger.put(r); err != nil {
		c.log.Warn("rollout: cannot record the old attempt back", "workload", r.Workload, "err", err)
	}
}

// endpoints are an attempt's pods as the proxy reaches them.
func (c *Cluster) endpoints(a *attempt) []traffic.Endpoint {
	if a == nil {
		return nil
	}
	out := make([]traffic.Endpoint, 0, len(a.Pods))
	for _, p := range a.Pods {
		out = append(out, traffic.Endpoint{ID: p.Dir, Ports: p.Ports, Env: p.Env, Dir: p.workDir(c.opts.StateDir)})
	}
	return out
}

// serviceWorkload is the part of a run's workload the proxy needs.
func serviceWorkload(r *record) berth.Workload {
	id := r.Workload
	w := berth.Workload{Name: id.Name(), Team: id.Team(), Kind: r.Kind}
	if s := r.Service; s != nil {
		w.Ports, w.Health, w.Rollout, w.Expose = s.Ports, s.Health, s.Rollout, s.Expose
	}
	return w
}

// syncTraffic tells the router which pods of each service run now: the
// live pods of the latest attempt of each of its runs (the run of its
// autoscale minimum and those of its replicas above it, "1.replica-2"),
// and of an attempt being retired, which a rollout drains itself. A
// service that no longer runs leaves it.
func (c *Cluster) syncTraffic() {
	var runs []*record
	for _, r := range c.ledger.runs {
		if r.Service != nil && r.Attempt != nil && r.Stop == nil {
			runs = append(runs, r)
		}
	}
	// By run, so the service's spec is its first run's and the pods are
	// added in one order.
	slices.SortFunc(runs, func(a, b *record) int { return a.Key().Compare(b.Key()) })
	type service struct {
		w   berth.Workload
		eps []traffic.Endpoint
	}
	var order []berth.WorkloadID
	services := map[berth.WorkloadID]*service{}
	for _, r := range runs {
		v := c.view(r)
		if !v.live {
			continue
		}
		s, ok := services[r.Workload]
		if !ok {
			s = &service{w: serviceWorkload(r)}
			services[r.Workload] = s
			order = append(order, r.Workload)
		}
		for i, ep := range c.endpoints(r.Attempt) {
			if i < len(v.pods) && v.pods[i].state == podLive {
				s.eps = append(s.eps, ep)
			}
		}
		if r.Retiring != nil {
			s.eps = append(s.eps, c.endpoints(r.Retiring)...)
		}
	}
	for _, id := range order {
		if err := c.router.Sync(services[id].w, services[id].eps); err != nil {
			c.log.Warn("cannot route to a service", "workload", id, "err", err)
		}
	}
	for _, id := range c.router.Services() {
		if _, ok := services[id]; !ok {
			c.router.Remove(id)
		}
	}
}

// signalAttempt sends SIGTERM to the shim of every live pod of a not yet
// in signalled (see signalPods).
func (c *Cluster) signalAttempt(a *attempt, signalled map[int]bool) map[int]bool {
	for i, p := range a.Pods {
		if signalled[i] || c.podStatus(p.Dir).state != podLive {
			continue
		}
		pid, err := readPID(filepath.Join(c.opts.StateDir, p.Dir))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil || errors.Is(err, syscall.ESRCH) {
			signalled[i] = true
		}
	}
	return signalled
}

// waitAttempt waits until no pod of a runs, signalling the ones whose
// shim had not written its pid yet.
func (c *Cluster) waitAttempt(ctx context.Context, a *attempt) error {
	deadline := time.Now().Add(c.opts.GracePeriod + 15*time.Second)
	signalled := map[int]bool{}
	for {
		live := false
		for _, p := range a.Pods {
			if c.podStatus(p.Dir).state == podLive {
				live = true
			}
		}
		if !live {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("attempt %d: processes still running %s after SIGTERM", a.N, c.opts.GracePeriod+15*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		c.signalAttempt(a, signalled)
	}
}

// unhealthy ends a pod whose liveness probe failed (the router calls it,
// from its own goroutine): its shim is sent SIGTERM, and the run's pod
// that ended is restarted as any service's whose process exits.
func (c *Cluster) unhealthy(id berth.WorkloadID, pod, why string) {
	dir := filepath.Join(c.opts.StateDir, pod)
	st, err := probePod(dir)
	if err != nil || st.state != podLive {
		return
	}
	pid, err := readPID(dir)
	if err != nil {
		return
	}
	c.log.Warn("stopping a replica whose liveness failed", "workload", id, "pod", pod, "reason", why)
	syscall.Kill(pid, syscall.SIGTERM)
}
