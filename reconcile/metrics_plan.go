package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
)

// PlanCollector exports, at each scrape, what the clusters' last plans say
// of every team: its quota per flavor and resource (nominal, used,
// borrowed), the GPUs its runs hold, and how many of its runs wait. It
// reads the plans when scraped, so a team or flavor that left the
// configuration leaves the metrics with it.
type PlanCollector struct {
	opts PlanCollectorOptions

	queued, wait, admittedGPUs, quotaNominal, quotaUsed, quotaBorrowed, replicas *prometheus.Desc
}

// PlanCollectorOptions wire a PlanCollector. Last is required.
type PlanCollectorOptions struct {
	// Last is the engine's Last: each cluster's last report.
	Last func() map[string]ClusterReport
	// Now is the clock waits are measured to (default time.Now).
	Now func() time.Time
	// Ready, when set, says how many replicas of a service on a cluster
	// pass readiness (ok false: the backend does not know; its running
	// pods are taken).
	Ready func(cluster string, id berth.WorkloadID) (n int, ok bool)
}

// NewPlanCollector collects from the engine's last reports.
func NewPlanCollector(opts PlanCollectorOptions) *PlanCollector {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &PlanCollector{
		opts: opts,
		queued: prometheus.NewDesc("berth_queue_length",
			"Runs waiting in line for admission (action queue), by cluster, team and flavor (the flavor the scheduler chose, \"\" when none yet).",
			[]string{"cluster", "team", "flavor"}, nil),
		wait: prometheus.NewDesc("berth_queue_wait_seconds",
			"How long the longest-waiting queued run of a team has waited, by cluster, team and flavor (0: none waits).",
			[]string{"cluster", "team", "flavor"}, nil),
		replicas: prometheus.NewDesc("berth_service_replicas",
			"Replicas of a running service, inference server or notebook: desired (pods of its run), running, and ready (passing readiness; running where the backend has no probe results).",
			[]string{"cluster", "team", "workload", "state"}, nil),
		admittedGPUs: prometheus.NewDesc("berth_admitted_gpus",
			"GPUs (or MIG slices, by flavor) of the runs that run or start now (admit, preempt, keep, and preempted until stopped), by cluster, team and flavor.",
			[]string{"cluster", "team", "flavor"}, nil),
		quotaNominal: prometheus.NewDesc("berth_quota_nominal",
			"A team's nominal quota of a resource of a flavor: GPUs, CPU cores, memory bytes.", []string{"cluster", "team", "flavor", "resource"}, nil),
		quotaUsed: prometheus.NewDesc("berth_quota_used",
			"What a team uses of a resource of a flavor once the plan's admissions start: GPUs, CPU cores, memory bytes.", []string{"cluster", "team", "flavor", "resource"}, nil),
		quotaBorrowed: prometheus.NewDesc("berth_quota_borrowed",
			"What a team uses above its nominal quota, lent by its cohort: GPUs, CPU cores, memory bytes.", []string{"cluster", "team", "flavor", "resource"}, nil),
	}
}

// Describe sends the metrics' descriptions.
func (c *PlanCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.wait, c.admittedGPUs, c.quotaNominal, c.quotaUsed, c.quotaBorrowed, c.replicas} {
		ch <- d
	}
}

// Collect sends the metrics of the last plan of every cluster.
func (c *PlanCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.opts.Now()
	for cluster, cr := range c.opts.Last() {
		if cr.Plan == nil {
			continue
		}
		type teamFlavor struct{ team, flavor string }
		queued := map[teamFlavor]int{}
		waited := map[teamFlavor]time.Duration{}
		gpus := map[teamFlavor]float64{}
		for _, d := range cr.Plan.Decisions {
			tf := teamFlavor{d.Team, d.Flavor}
			switch d.Action {
			case berth.ActionQueue:
				queued[tf]++
				if cr.Observed == nil {
					break
				}
				if r, ok := cr.Observed.Run(d.Key()); ok && !r.QueuedSince.IsZero() {
					waited[tf] = max(waited[tf], now.Sub(r.QueuedSince))
				}
			case berth.ActionAdmit, berth.ActionPreempt, berth.ActionKeep, berth.ActionPreempted:
				gpus[tf] += d.GPUs
			}
			if d.Action == berth.ActionKeep && !d.Kind.RunsOnce() && cr.Observed != nil {
				c.collectReplicas(ch, cluster, *d, cr.Observed)
			}
		}
		// Every team with quota has a queue length, 0 included, so that
		// an alert on it sees the team.
		for _, q := range cr.Plan.Quota {
			if _, ok := queued[teamFlavor{q.Team, ""}]; !ok {
				queued[teamFlavor{q.Team, ""}] = 0
			}
			labels := []string{cluster, q.Team, q.Flavor, string(q.Resource)}
			ch <- prometheus.MustNewConstMetric(c.quotaNominal, prometheus.GaugeValue, amount(q.Resource, q.Nominal), labels...)
			ch <- prometheus.MustNewConstMetric(c.quotaUsed, prometheus.GaugeValue, amount(q.Resource, q.UsedAfter), labels...)
			ch <- prometheus.MustNewConstMetric(c.quotaBorrowed, prometheus.GaugeValue, amount(q.Resource, q.BorrowedAfter), labels...)
		}
		for tf, n := range queued {
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(n), cluster, tf.team, tf.flavor)
			ch <- prometheus.MustNewConstMetric(c.wait, prometheus.GaugeValue, waited[tf].Seconds(), cluster, tf.team, tf.flavor)
		}
		for tf, n := range gpus {
			ch <- prometheus.MustNewConstMetric(c.admittedGPUs, prometheus.GaugeValue, n, cluster, tf.team, tf.flavor)
		}
	}
}

// collectReplicas sends a running service's replicas: desired, running
// and ready.
func (c *PlanCollector) collectReplicas(ch chan<- prometheus.Metric, cluster string, d berth.Decision, obs *Observed) {
	r, ok := obs.Run(d.Key())
	if !ok || !r.Phase.Holds() {
		return
	}
	ready := r.PodsRunning
	if c.opts.Ready != nil {
		if n, ok := c.opts.Ready(cluster, d.Workload); ok {
			ready = n
		}
	}
	for state, n := range map[string]int{"desired": max(r.Pods, d.Pods), "running": r.PodsRunning, "ready": ready} {
		ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(n), cluster, d.Team, string(d.Workload), state)
	}
}

// amount is a quota amount in the resource's base unit: GPUs and cores
// (kept in thousandths), bytes.
func amount(r berth.Resource, n int64) float64 {
	if r == berth.ResourceMemory {
		return float64(n)
	}
	return float64(n) / 1000
}
