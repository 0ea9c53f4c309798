package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// DriftDigest is the digest Observe reports for a service whose objects
// were changed by someone other than berth: it matches no spec, so the
// engine restarts the run and Apply takes the fields back.
const DriftDigest = "drifted"

// Observe reports the cluster from the informers' caches: the nodes, every
// run of berth's Jobs and Deployments, and the ledger's runs that have no
// object (any more, or yet). It writes nothing; its requests are the API
// server's /readyz and, for a service whose objects changed since it last
// looked, fluxcd/pkg/ssa's dry-run drift check. A service whose objects
// differ from what cfg's flavor labels render (someone else changed them)
// gets DriftDigest.
func (c *Cluster) Observe(ctx context.Context, cfg *berth.Config) (*reconcile.Observed, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if err := c.healthy(ctx); err != nil {
		return nil, err
	}
	c.noteIdleLimits(cfg)
	obs := &reconcile.Observed{Snapshot: berth.Snapshot{
		Cluster: c.opts.Name, Time: c.opts.Now().UTC(),
		Nodes: []berth.Node{}, Running: []berth.RunningWorkload{}, Queue: []berth.QueuedWorkload{}, Finished: []berth.FinishedRun{},
	}}
	for _, n := range c.objs().nodeList() {
		obs.Snapshot.Nodes = append(obs.Snapshot.Nodes, NodeFromKube(n, c.opts.Render))
	}

	// Every run below is of an object or ledger this cluster owns (ours):
	// a team's runs live in its one namespace, so the run is key enough.
	seen := map[berth.RunKey]bool{}
	add := func(r reconcile.RunState) {
		seen[r.Key()] = true
		obs.Runs = append(obs.Runs, r)
	}
	c.observeJobs(add)
	scale := c.observeServices(ctx, cfg, add)
	c.observeLedgers(obs, seen)
	slices.SortFunc(obs.Runs, func(a, b reconcile.RunState) int {
		return cmp.Or(
			cmp.Compare(a.Workload, b.Workload),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
	obs.Snapshot.Scale = scale
	fillSnapshot(obs)
	// In order, and with each run's QueuedSince, a snapshot of this
	// cluster shares its lists instead of copying them (reconcile.Snapshot).
	obs.Snapshot.Sort()
	obs.Prunable = len(c.staleClaims(cfg, obs.Snapshot.Time))
	return obs, nil
}

// observeJobs adds the runs of the Jobs: one a Job, or one a group of
// Jobs for a workload with roles.
func (c *Cluster) observeJobs(add func(reconcile.RunState)) {
	single, groups := roleGroups(c.objs().jobs())
	for _, job := range single {
		if r, ok := c.jobRun(job); ok {
			add(r)
		}
	}
	for _, jobs := range groups {
		if r, ok := c.rolesRun(jobs); ok {
			add(r)
		}
	}
}

// observeServices adds the runs of the Deployments, with their drift and
// URL, and the replicas their autoscalers added; it returns what each
// autoscaler wants.
func (c *Cluster) observeServices(ctx context.Context, cfg *berth.Config, add func(reconcile.RunState)) []berth.ScaleWant {
	var scale []berth.ScaleWant
	var deps []*appsv1.Deployment
	var depRuns []reconcile.RunState
	for _, d := range c.objs().deployments() {
		if r, ok := c.deploymentRun(d); ok {
			deps, depRuns = append(deps, d), append(depRuns, r)
		}
	}
	// Drift checks are requests (dry runs) when a service changed: in
	// parallel, bounded like Apply's.
	drifts := make([]string, len(deps))
	c.parallel(len(deps), func(i int) { drifts[i] = c.drift.check(ctx, c, cfg, deps[i]) })
	for i, r := range depRuns {
		d := deps[i]
		if drifts[i] != "" {
			r.Digest = DriftDigest
			r.Note += "; changed outside berth: " + drifts[i]
		}
		if w, ok := specOf(d.Annotations); ok {
			// People are shown it once the run holds (status) or runs:
			// every replica ready (a merged pull request's comment).
			r.URL = serviceURL(c.renderOptions(cfg).Ingress, w, d.Namespace)
		}
		add(r)
		if h := c.objs().hpa(d.Namespace, d.Name); h != nil && r.Phase.Holds() {
			for _, sr := range scaleRuns(r, h) {
				add(sr)
			}
			scale = append(scale, berth.ScaleWant{Workload: r.Workload, RunID: r.RunID, Replicas: scaleWant(h)})
		}
	}
	return scale
}

// observeLedgers adds the runs the ledgers remember that no object
// holds any more (finished, failed, queued).
func (c *Cluster) observeLedgers(obs *reconcile.Observed, seen map[berth.RunKey]bool) {
	ledgers, errs := c.objs().ledgers()
	for _, err := range errs {
		c.opts.Logger.Warn("ledger entry skipped", "cluster", c.opts.Name, "err", err)
	}
	for ns, l := range ledgers {
		team := l.team
		if !c.ours(ns, team) {
			continue
		}
		for _, e := range l.entries {
			id := berth.MakeWorkloadID(team, e.Name)
			if seen[berth.RunKey{Workload: id, RunID: e.RunID}] {
				continue
			}
			obs.Runs = append(obs.Runs, ledgerRun(id, e))
		}
	}
}

// scaleRuns are the replicas above the minimum of a running autoscaled
// service that berth admitted, as its HorizontalPodAutoscaler lists them:
// each a run of its own, charged where the scheduler placed it. They
// carry no digest: a replica follows its service's spec.
func scaleRuns(svc reconcile.RunState, h *autoscalingv2.HorizontalPodAutoscaler) []reconcile.RunState {
	var out []reconcile.RunState
	for _, s := range scaleOf(h.Annotations) {
		r := reconcile.RunState{RunRecord: svc.RunRecord, Phase: svc.Phase, StartedAt: s.StartedAt,
			Note: fmt.Sprintf("replica %d of %s, admitted on HorizontalPodAutoscaler %s/%s", s.N, svc.RunID, h.Namespace, h.Name)}
		r.RunID, r.Digest, r.Attempts, r.Preemptions = berth.ScaleRunID(svc.RunID, s.N), "", 1, 0
		r.Flavor, r.Placements, r.QueuedSince = s.Flavor, s.Placements, time.Time{}
		out = append(out, r)
	}
	return out
}

// ours reports whether an object of a team in a namespace is this
// cluster's: in the namespace its prefix gives the team. Another berth (or
// another repository) with another prefix may share the cluster.
func (c *Cluster) ours(ns, team string) bool {
	return team != "" && ns == Namespace(c.opts.Render.NamespacePrefix, team)
}

// fillSnapshot lists the runs that hold capacity as running (each with
// when it was queued, as reconcile.Normalize would add it), and derives
// the queue and finished runs the way the engine does (for `berth
// snapshot`; the engine derives them again from Runs).
func fillSnapshot(obs *reconcile.Observed) {
	s := &obs.Snapshot
	for _, r := range obs.Runs {
		switch {
		case r.Phase.Holds():
			s.Running = append(s.Running, berth.RunningWorkload{
				Workload: r.Workload, RunID: r.RunID, Kind: r.Kind, Priority: r.Priority, Flavor: r.Flavor,
				Since: r.StartedAt, QueuedSince: r.QueuedSince, Resources: r.Resources, Placements: orEmpty(r.Placements),
				MaxDuration: r.MaxDuration, Roles: r.Roles,
			})
			if len(r.Roles) > 0 {
				// A run of several roles is charged per role.
				run := &s.Running[len(s.Running)-1]
				run.Resources, run.Placements = berth.Resources{}, []berth.Placement{}
			}
		case r.Phase == reconcile.PhaseQueued || r.Phase == reconcile.PhasePreempted:
			since := r.QueuedSince
			if since.IsZero() {
				since = r.StartedAt
			}
			s.Queue = append(s.Queue, berth.QueuedWorkload{Workload: r.Workload, RunID: r.RunID, Since: since})
		case r.Kind.RunsOnce() && r.Phase.Final():
			s.Finished = append(s.Finished, berth.FinishedRun{Workload: r.Workload, RunID: r.RunID,
				Succeeded: r.Phase == reconcile.PhaseSucceeded, Reason: r.Reason, At: r.FinishedAt})
		}
	}
	s.Sort()
}

func orEmpty(ps []berth.Placement) []berth.Placement {
	if ps == nil {
		return []berth.Placement{}
	}
	return ps
}

// specOf reads the workload berth.dev/spec recorded.
func specOf(a map[string]string) (berth.Workload, bool) {
	var w berth.Workload
	if err := json.Unmarshal([]byte(a[AnnotationSpec]), &w); err != nil {
		return berth.Workload{}, false
	}
	return w, true
}

func placementsOf(a map[string]string) []berth.Placement {
	var ps []berth.Placement
	if s := a[AnnotationPlacements]; s != "" {
		_ = json.Unmarshal([]byte(s), &ps)
	}
	return ps
}

// jobRun is the run a Job carries.
func (c *Cluster) jobRun(job *batchv1.Job) (reconcile.RunState, bool) {
	a := job.Annotations
	team, name, runID := job.Labels[LabelTeam], job.Labels[LabelWorkload], a[AnnotationRunID]
	if !c.ours(job.Namespace, team) || name == "" || runID == "" {
		return reconcile.RunState{}, false
	}
	w, _ := specOf(a)
	pods := c.objs().jobPods(job)
	st := JobState(job, pods)
	r := jobRunState(team, name, runID, job.Labels[LabelKind], a, w, st.Phase, st.Reason, st.FinishedAt)
	r.Resources = w.Resources
	r.Note = "job " + job.Namespace + "/" + job.Name
	if job.DeletionTimestamp != nil && !st.Phase.Final() {
		// Deleted by someone else before it ended: a run-once run is
		// never started again.
		r.Phase = reconcile.PhaseStopped
		r.Reason = ReasonJobDeleted + ": the Job was deleted before it ended"
		r.FinishedAt = job.DeletionTimestamp.Time
	}
	if r.Phase == reconcile.PhaseFailed && job.Spec.BackoffLimit != nil {
		// Kubernetes used every retry: the engine must not start it again.
		r.Attempts = max(r.Attempts, int(*job.Spec.BackoffLimit)+1)
	}
	if r.Phase.Holds() {
		r.Placements = observedPlacements(placementsOf(a), podNodes(pods))
	}
	return r, true
}

// deploymentRun is the run a service's Deployment carries.
func (c *Cluster) deploymentRun(d *appsv1.Deployment) (reconcile.RunState, bool) {
	a := d.Annotations
	team, name, runID := d.Labels[LabelTeam], d.Labels[LabelWorkload], a[AnnotationRunID]
	if !c.ours(d.Namespace, team) || name == "" || runID == "" || d.DeletionTimestamp != nil {
		return reconcile.RunState{}, false
	}
	w, _ := specOf(a)
	pods := c.objs().workloadPods(d.Namespace, name)
	phase, reason := DeploymentState(d, pods)
	r := reconcile.RunState{RunRecord: annotatedRun(team, name, runID, d.Labels[LabelKind], a, w),
		Phase: phase, Reason: reason, StartedAt: parseTime(a[AnnotationStartedAt]),
		Note: "deployment " + d.Namespace + "/" + d.Name}
	r.Resources = w.Resources
	r.Placements = observedPlacements(placementsOf(a), podNodes(pods))
	return r, true
}

// ledgerRun is a run only the ledger knows: a waiting service, a stopped or
// preempted service, or a run-once run whose Job is gone. A run whose start
// is recorded but whose Job vanished without its end being recorded failed
// for berth: it is not started again.
func ledgerRun(id berth.WorkloadID, e ledgerEntry) reconcile.RunState {
	r := reconcile.RunState{
		RunRecord: reconcile.RunRecord{Workload: id, RunID: e.RunID, Kind: e.Kind, Digest: e.Digest, QueuedSince: e.QueuedSince, Attempts: e.Attempts},
		Phase:     e.Phase, Reason: e.Reason, StartedAt: e.StartedAt, FinishedAt: e.FinishedAt, Note: "ledger",
		Over: e.Over,
	}
	if e.Phase.Holds() {
		if e.Kind.RunsOnce() {
			r.Phase = reconcile.PhaseFailed
			r.Reason = ReasonJobDeleted + ": the Job disappeared before berth saw it end"
			r.Attempts = max(r.Attempts, e.Retries+1)
			r.FinishedAt = e.StartedAt
		} else {
			r.Phase = reconcile.PhaseStopped
			r.Reason = "its Deployment disappeared"
			r.FinishedAt = e.StartedAt
		}
	}
	return r
}

// podNodes lists the nodes of the pods that hold capacity (bound and not
// ended), sorted.
func podNodes(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, p.Spec.NodeName)
	}
	slices.Sort(out)
	return out
}

// observedPlacements reconciles berth's placements with where the pods
// landed: a pod on a node berth chose takes that placement; a pod the
// kube-scheduler put on another node of the allowed set takes a placement
// berth did not see used, moved to its node. Placements of pods not bound
// yet stay as berth chose them: the capacity is promised.
func observedPlacements(decided []berth.Placement, nodes []string) []berth.Placement {
	if len(decided) == 0 {
		return nil
	}
	used := make([]bool, len(decided))
	out := make([]berth.Placement, 0, len(decided))
	var strays []string
	for _, n := range nodes {
		found := false
		for i, p := range decided {
			if !used[i] && p.Node == n {
				used[i] = true
				out = append(out, p)
				found = true
				break
			}
		}
		if !found {
			strays = append(strays, n)
		}
	}
	for i, p := range decided {
		if used[i] {
			continue
		}
		if len(strays) > 0 {
			p.Node = strays[0]
			strays = strays[1:]
		}
		out = append(out, p)
	}
	return out
}

// driftCache remembers each Deployment's drift check (a dry run per
// object, serviceDrift) by what it was made at: the Deployment's
// generation, labels and annotations (its status changes often and says
// nothing of drift), the Service's and Ingress's resourceVersions, the
// autoscaler's generation, labels and annotations, the flavor's labels
// and the cluster's ingress. An unchanged service costs
// no request.
type driftCache struct {
	mu sync.Mutex
	m  map[string]driftResult
}

type driftResult struct {
	at    string
	drift string
}

func (dc *driftCache) check(ctx context.Context, c *Cluster, cfg *berth.Config, d *appsv1.Deployment) string {
	labels := flavorLabels(cfg, d.Annotations[AnnotationFlavor])
	o := c.renderOptions(cfg)
	svcRV, ingRV := "", ""
	if svc := c.objs().service(d.Namespace, d.Name); svc != nil {
		svcRV = svc.ResourceVersion
	}
	ing := c.objs().ingress(d.Namespace, d.Name)
	if ing != nil {
		ingRV = ing.ResourceVersion
	}
	// An autoscaler's status changes with every metrics sample: its
	// generation, labels and annotations (berth's scale) are what count.
	hpa := c.objs().hpa(d.Namespace, d.Name)
	h := fnv.New64a()
	metas := []map[string]string{d.Labels, d.Annotations, labels}
	if hpa != nil {
		fmt.Fprintf(h, "hpa %d,", hpa.Generation)
		metas = append(metas, hpa.Labels, hpa.Annotations)
	}
	for _, m := range metas {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(h, "%q=%q,", k, m[k])
		}
		h.Write([]byte{0})
	}
	if o.Ingress != nil {
		fmt.Fprint(h, *o.Ingress, o.Ingress.TLS)
	}
	at := fmt.Sprintf("%d/%s/%s/%x", d.Generation, svcRV, ingRV, h.Sum64())
	key := d.Namespace + "/" + d.Name
	dc.mu.Lock()
	if r, ok := dc.m[key]; ok && r.at == at {
		dc.mu.Unlock()
		return r.drift
	}
	dc.mu.Unlock()
	drift, err := c.serviceDrift(ctx, o, d, ing, hpa, labels)
	if err != nil {
		// Not remembered: the next Observe asks again.
		c.opts.Logger.Debug("drift check failed", "cluster", c.opts.Name, "deployment", key, "err", err)
		return ""
	}
	dc.mu.Lock()
	if dc.m == nil {
		dc.m = map[string]driftResult{}
	}
	dc.m[key] = driftResult{at: at, drift: drift}
	dc.mu.Unlock()
	return drift
}

// sinceOrNow is t, or now when t is zero, in UTC and as precise as given:
// a queued-since the scheduler gave (when it first saw the run waiting)
// is recorded as it is, so that runs first seen in the same second keep
// their order (formatTime).
func sinceOrNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now.UTC()
	}
	return t.UTC()
}

// annotatedRun is the run record an object of a run (a Job, the first Job
// of a run of several roles, a Deployment) carries in its labels and
// annotations; w is the spec it recorded.
func annotatedRun(team, name, runID, kindLabel string, a map[string]string, w berth.Workload) reconcile.RunRecord {
	r := reconcile.RunRecord{
		Workload:    berth.MakeWorkloadID(team, name),
		RunID:       runID,
		Kind:        berth.Kind(kindLabel),
		Digest:      a[AnnotationDigest],
		QueuedSince: parseTime(a[AnnotationQueuedSince]),
		Attempts:    parseInt(a[AnnotationAttempts]),
		Flavor:      a[AnnotationFlavor],
		Priority:    parseInt(a[AnnotationPriority]),
		MaxDuration: w.MaxDuration,
	}
	if r.Kind == "" {
		r.Kind = w.Kind
	}
	return r
}

// jobRunState is the run a Job (or the Jobs of a run of several roles)
// records in its labels and annotations, in the phase observed.
func jobRunState(team, name, runID, kindLabel string, a map[string]string, w berth.Workload,
	phase reconcile.Phase, reason string, finished time.Time) reconcile.RunState {
	return reconcile.RunState{RunRecord: annotatedRun(team, name, runID, kindLabel, a, w),
		Phase: phase, Reason: reason, StartedAt: parseTime(a[AnnotationStartedAt]), FinishedAt: finished}
}
