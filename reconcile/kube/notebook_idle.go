package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/notebook"
)

// A notebook with an idle limit is stopped once it has been idle that
// long, as JupyterHub's idle culler stops a single-user server: berth
// reads its last activity, and when the limit is reached records the run
// as stopped (over: not started again until its runId changes) and deletes
// its Deployment, Service and Ingress, so its GPUs are freed. Its volumes
// are claims of their own and stay.
//
// The activity is the later of two readings:
//   - Jupyter's own /api/status last_activity (a request to the server
//     does not count as activity), read through the API server's service
//     proxy with the notebook's token: what a real cluster supports with
//     nothing but berth's own credentials (get services/proxy);
//   - the pod annotation AnnotationLastActivity (RFC 3339), for an image
//     that is not Jupyter: a sidecar or server extension that may patch its
//     own pod writes it.
//
// A notebook that answers neither is measured from its start (or its last
// answer), so one that never comes up does not hold its GPUs for good
// either. The checks run every Options.IdleCheckEvery on the replica that
// leads, beside the engine's reconciles: the engine calls Apply only with
// changes, and a notebook going idle is none.

// AnnotationLastActivity on a notebook's pod is when it was last active,
// RFC 3339, as something in the pod reports it.
const AnnotationLastActivity = "berth.dev/last-activity"

// NotebookActivity reads when a notebook was last active. ok is false when
// it could not say (its server did not answer).
type NotebookActivity func(ctx context.Context, nb NotebookTarget) (last time.Time, ok bool, err error)

// NotebookTarget is the notebook NotebookActivity asks about.
type NotebookTarget struct {
	Workload  berth.WorkloadID
	Namespace string
	// Service is the notebook's Service, and Port the name (or number) of
	// the port its Jupyter server listens on.
	Service, Port string
}

// noteIdleLimits keeps cfg's notebooks' idle limits and the cluster's
// ingress (nil cfg: those kept): a change of the limit alone restarts nothing (it is not in the
// spec digest), so the live Deployment's spec may carry an older one.
func (c *Cluster) noteIdleLimits(cfg *berth.Config) {
	if cfg == nil {
		return
	}
	c.idle.mu.Lock()
	same := c.idle.from == cfg
	c.idle.mu.Unlock()
	if same {
		return // a revision's limits are read once, not every cycle
	}
	limits := cfg.NotebookIdleLimits()
	var ingress *berth.Ingress
	if cl, ok := cfg.Clusters[c.opts.Name]; ok {
		ingress = cl.Ingress
	}
	c.idle.mu.Lock()
	c.idle.limits, c.idle.ingress, c.idle.from = limits, ingress, cfg
	c.idle.mu.Unlock()
}

// idleLimit is the idle limit of the notebook whose spec w is.
func (c *Cluster) idleLimit(w berth.Workload) time.Duration {
	c.idle.mu.Lock()
	defer c.idle.mu.Unlock()
	if d, ok := c.idle.limits[w.ID()]; ok {
		return d
	}
	return w.Idle.D()
}

// watchIdle checks the notebooks every IdleCheckEvery until ctx ends.
func (c *Cluster) watchIdle(ctx context.Context) {
	t := time.NewTicker(c.opts.IdleCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.Leading() {
				if _, err := c.CheckIdle(ctx); err != nil {
					c.opts.Logger.Warn("idle notebooks not checked", "cluster", c.opts.Name, "err", err)
				}
			}
		}
	}
}

// idleNotebook is a running notebook with an idle limit.
type idleNotebook struct {
	d      *appsv1.Deployment
	w      berth.Workload
	target NotebookTarget
	since  time.Time
	limit  time.Duration
}

// CheckIdle reads the activity of every running notebook with an idle
// limit and stops those idle past it. The checks run in parallel,
// bounded like Apply's. It returns the notebooks it stopped. The cluster's
// own loop calls it every IdleCheckEvery while this replica leads.
func (c *Cluster) CheckIdle(ctx context.Context) ([]berth.WorkloadID, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	var nbs []idleNotebook
	for _, d := range c.objs().deployments() {
		if nb, ok := c.idleCandidate(d); ok {
			nbs = append(nbs, nb)
		}
	}
	stop := make([]string, len(nbs))
	c.parallel(len(nbs), func(i int) { stop[i] = c.idleReason(ctx, nbs[i]) })
	var stopped []berth.WorkloadID
	for i, nb := range nbs {
		if stop[i] == "" {
			continue
		}
		if err := c.stopIdle(ctx, nb, stop[i]); err != nil {
			c.opts.Logger.Warn("stopping an idle notebook failed", "cluster", c.opts.Name, "workload", nb.w.ID(), "err", err)
			continue
		}
		c.opts.Logger.Info("stopped an idle notebook", "cluster", c.opts.Name, "workload", nb.w.ID(), "reason", stop[i])
		stopped = append(stopped, nb.w.ID())
	}
	c.idle.forgetGone(c.objs().deployments())
	return stopped, nil
}

// idleCandidate is d's notebook, if d is a running notebook's Deployment
// with an idle limit.
func (c *Cluster) idleCandidate(d *appsv1.Deployment) (idleNotebook, bool) {
	if d.Labels[LabelKind] != string(berth.KindNotebook) {
		return idleNotebook{}, false
	}
	r, ok := c.deploymentRun(d)
	if !ok || !r.Phase.Holds() {
		return idleNotebook{}, false
	}
	w, ok := specOf(d.Annotations)
	if !ok {
		return idleNotebook{}, false
	}
	limit := c.idleLimit(w)
	if limit <= 0 {
		return idleNotebook{}, false
	}
	port := w.ServedPorts()[0]
	pname := port.Name
	if pname == "" {
		pname = strconv.Itoa(port.Port)
	}
	since := r.StartedAt
	if since.IsZero() {
		since = d.CreationTimestamp.Time
	}
	return idleNotebook{d: d, w: w, since: since, limit: limit,
		target: NotebookTarget{Workload: w.ID(), Namespace: d.Namespace, Service: d.Name, Port: pname}}, true
}

// idleReason reads nb's activity and says why it stops now ("" while it
// may run on).
func (c *Cluster) idleReason(ctx context.Context, nb idleNotebook) string {
	rctx, cancel := context.WithTimeout(ctx, c.opts.IdleCheckTimeout)
	last, ok, err := c.opts.NotebookActivity(rctx, nb.target)
	cancel()
	if err != nil {
		c.opts.Logger.Debug("notebook activity", "cluster", c.opts.Name, "workload", nb.w.ID(), "err", err)
	}
	for _, p := range c.objs().workloadPods(nb.d.Namespace, nb.w.Name) {
		if t, err := time.Parse(time.RFC3339, p.Annotations[AnnotationLastActivity]); err == nil && t.After(last) {
			last, ok = t, true
		}
	}
	last = c.idle.seen(nb.d.UID, last, ok)
	idle, stop := notebook.Idle(last, nb.since, c.opts.Now(), nb.limit)
	if !stop {
		return ""
	}
	return notebook.IdleReason(idle, nb.limit)
}

// stopIdle stops an idle notebook as an OpStop does, in Apply's order:
// the ledger records the end first (stopped, over, the reason), then its
// objects go. It holds the apply lock, so it never runs beside an Apply.
func (c *Cluster) stopIdle(ctx context.Context, nb idleNotebook, reason string) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	// The informers' latest: the Deployment may have been replaced since.
	live := c.objs().deployment(nb.d.Namespace, nb.d.Name)
	if live == nil || live.UID != nb.d.UID || live.DeletionTimestamp != nil {
		return nil
	}
	now := c.opts.Now().UTC().Truncate(time.Second)
	prev, _ := runFromAnnotations(live.Annotations)
	end := endRecord(prev, reconcile.Change{Phase: reconcile.PhaseStopped, Reason: reason}, now)
	end.Kind, end.Retries, end.Over = berth.KindNotebook, 0, true
	o := c.opts.Render
	c.idle.mu.Lock()
	o.Ingress = c.idle.ingress
	c.idle.mu.Unlock()
	p := &changePlan{team: nb.w.Team}
	p.stopped(LedgerKey(nb.w.Name, prev.RunID), end, c.serviceRefs(o, live.Namespace, live.Name, nb.w.Team))
	if err := c.writeLedger(ctx, nb.w.Team, p.ledger); err != nil {
		return err
	}
	results := []reconcile.Result{{Outcome: p.outcome}}
	c.applyDeletions(ctx, results, []*changePlan{p}, nil, nil)
	c.waitApplied(ctx)
	return results[0].Err
}

// JupyterActivity is the default NotebookActivity: Jupyter's /api/status,
// through the API server's service proxy, with the token of the notebook's
// Secret (as the query parameter Jupyter takes: the Authorization header
// is the API server's).
func (c *Cluster) JupyterActivity(ctx context.Context, nb NotebookTarget) (time.Time, bool, error) {
	sec, err := c.client.CoreV1().Secrets(nb.Namespace).Get(ctx, NotebookTokenSecret(nb.Workload), metav1.GetOptions{})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("notebook %s: token: %w", nb.Workload, err)
	}
	tok := strings.TrimSpace(string(sec.Data[NotebookTokenKey]))
	b, err := c.client.CoreV1().Services(nb.Namespace).ProxyGet("http", nb.Service, nb.Port, "api/status",
		map[string]string{"token": tok}).DoRaw(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("notebook %s: /api/status through the service proxy: %w", nb.Workload, err)
	}
	var st notebook.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return time.Time{}, false, fmt.Errorf("notebook %s: /api/status: %w", nb.Workload, err)
	}
	return st.LastActivity, true, nil
}

// idleState is what the idle checks keep: the configuration's limits and
// ingress, and each notebook Deployment's last activity heard of.
type idleState struct {
	mu      sync.Mutex
	limits  map[berth.WorkloadID]time.Duration
	ingress *berth.Ingress
	from    *berth.Config // the configuration limits and ingress are of
	last    map[types.UID]time.Time
}

// seen folds a reading into what is kept for Deployment uid: the latest
// activity heard of, so a server that stops answering is measured from
// its last answer.
func (s *idleState) seen(uid types.UID, t time.Time, ok bool) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[types.UID]time.Time{}
	}
	if ok && t.After(s.last[uid]) {
		s.last[uid] = t
	}
	return s.last[uid]
}

// forgetGone drops the activity of Deployments that are gone.
func (s *idleState) forgetGone(live []*appsv1.Deployment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[types.UID]bool{}
	for _, d := range live {
		keep[d.UID] = true
	}
	for uid := range s.last {
		if !keep[uid] {
			delete(s.last, uid)
		}
	}
}
