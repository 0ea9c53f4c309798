package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
)

// Metrics are the Prometheus metrics of the reconcile loop.
type Metrics struct {
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	clusterDur *prometheus.HistogramVec
	changes    *prometheus.CounterVec
	workloads  *prometheus.GaugeVec
	gpus       *prometheus.GaugeVec
	lastGood   prometheus.Gauge
	clusters   *prometheus.CounterVec
	waited     *prometheus.HistogramVec
}

// NewMetrics registers berth's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_reconciles_total", Help: "Reconciles by outcome: ok, invalid (the commit is wrong), error (berth or a cluster failed).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_reconcile_duration_seconds", Help: "Time one reconcile takes, fetch to report.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		clusterDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_cluster_reconcile_duration_seconds", Help: "Time one cluster's part of a reconcile takes: observe, decide, diff and apply.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"cluster"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_changes_total", Help: "Changes applied, by cluster, operation and outcome.",
		}, []string{"cluster", "op", "outcome"}),
		workloads: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_workloads", Help: "Workload runs by cluster and scheduler action (admit, queue, keep, reject, ...).",
		}, []string{"cluster", "action"}),
		gpus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_gpus_requested", Help: "GPUs of the runs of each action, by cluster.",
		}, []string{"cluster", "action"}),
		lastGood: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_last_valid_revision_timestamp_seconds", Help: "Commit time of the last valid revision reconciled.",
		}),
		clusters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_cluster_reconciles_total", Help: "Reconciles of each cluster by outcome: ok, or error (the cluster failed to observe or apply).",
		}, []string{"cluster", "outcome"}),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_admission_wait_seconds", Help: "How long runs waited in line before they started, by cluster, team and flavor.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 s to 3 days
		}, []string{"cluster", "team", "flavor"}),
	}
	reg.MustRegister(m.reconciles, m.duration, m.clusterDur, m.changes, m.workloads, m.gpus, m.lastGood, m.clusters, m.waited)
	return m
}

// Observe records one reconcile.
func (m *Metrics) Observe(r Report, took time.Duration) {
	outcome := "ok"
	switch {
	case r.Err != nil:
		outcome = "error"
	case r.Invalid != nil:
		outcome = "invalid"
	}
	for _, c := range r.Clusters {
		if c.Err != nil {
			outcome = "error"
		}
	}
	m.reconciles.WithLabelValues(outcome).Inc()
	m.duration.Observe(took.Seconds())
	if !r.Applied.Time.IsZero() {
		m.lastGood.Set(float64(r.Applied.Time.Unix()))
	}
	for _, c := range r.Clusters {
		co := "ok"
		if c.Err != nil {
			co = "error"
		}
		m.clusters.WithLabelValues(c.Name, co).Inc()
		m.clusterDur.WithLabelValues(c.Name).Observe(c.Took.Seconds())
		for _, res := range c.Results {
			m.changes.WithLabelValues(c.Name, string(res.Change.Op), string(res.Outcome)).Inc()
			if res.Change.Op != OpStart || res.Err != nil || c.Observed == nil {
				continue
			}
			if run, ok := c.Observed.Run(res.Change.Key()); ok && !run.QueuedSince.IsZero() {
				d := res.Change.Decision
				m.waited.WithLabelValues(c.Name, d.Team, d.Flavor).Observe(time.Since(run.QueuedSince).Seconds())
			}
		}
		if c.Plan == nil {
			continue
		}
		counts := map[berth.Action]int{}
		gpus := map[berth.Action]float64{}
		for _, d := range c.Plan.Decisions {
			counts[d.Action]++
			gpus[d.Action] += d.GPUs
		}
		for _, a := range []berth.Action{berth.ActionAdmit, berth.ActionPreempt, berth.ActionQueue, berth.ActionReject,
			berth.ActionKeep, berth.ActionPreempted, berth.ActionStop, berth.ActionWait, berth.ActionDone} {
			m.workloads.WithLabelValues(c.Name, string(a)).Set(float64(counts[a]))
			m.gpus.WithLabelValues(c.Name, string(a)).Set(gpus[a])
		}
	}
}
