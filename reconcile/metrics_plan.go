package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
)

// PlanCollector exports, at each scrape, what the clusters' last plans say
// of every team: its quota per flavor and resource (nominal, used,
// borrowed), the GPUs its runs hold, and how many of its runs wait. It
// reads the plans when scraped, so a team or flavor that left the
// configuration leaves the metrics with it.
type PlanCollector struct {
	last func() map[string]ClusterReport

	queued, admittedGPUs, quotaNominal, quotaUsed, quotaBorrowed *prometheus.Desc
}

// NewPlanCollector collects from last, the engine's Last.
func NewPlanCollector(last func() map[string]ClusterReport) *PlanCollector {
	return &PlanCollector{
		last: last,
		queued: prometheus.NewDesc("berth_queue_length",
			"Runs waiting in line for admission (action queue), by cluster and team.", []string{"cluster", "team"}, nil),
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
	for _, d := range []*prometheus.Desc{c.queued, c.admittedGPUs, c.quotaNominal, c.quotaUsed, c.quotaBorrowed} {
		ch <- d
	}
}

// Collect sends the metrics of the last plan of every cluster.
func (c *PlanCollector) Collect(ch chan<- prometheus.Metric) {
	for cluster, cr := range c.last() {
		if cr.Plan == nil {
			continue
		}
		type teamFlavor struct{ team, flavor string }
		queued := map[string]int{}
		gpus := map[teamFlavor]float64{}
		for _, d := range cr.Plan.Decisions {
			switch d.Action {
			case berth.ActionQueue:
				queued[d.Team]++
			case berth.ActionAdmit, berth.ActionPreempt, berth.ActionKeep, berth.ActionPreempted:
				gpus[teamFlavor{d.Team, d.Flavor}] += d.GPUs
			}
		}
		// Every team with quota has a queue length, 0 included, so that
		// an alert on it sees the team.
		for _, q := range cr.Plan.Quota {
			if _, ok := queued[q.Team]; !ok {
				queued[q.Team] = 0
			}
			labels := []string{cluster, q.Team, q.Flavor, string(q.Resource)}
			ch <- prometheus.MustNewConstMetric(c.quotaNominal, prometheus.GaugeValue, amount(q.Resource, q.Nominal), labels...)
			ch <- prometheus.MustNewConstMetric(c.quotaUsed, prometheus.GaugeValue, amount(q.Resource, q.UsedAfter), labels...)
			ch <- prometheus.MustNewConstMetric(c.quotaBorrowed, prometheus.GaugeValue, amount(q.Resource, q.BorrowedAfter), labels...)
		}
		for team, n := range queued {
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(n), cluster, team)
		}
		for tf, n := range gpus {
			ch <- prometheus.MustNewConstMetric(c.admittedGPUs, prometheus.GaugeValue, n, cluster, tf.team, tf.flavor)
		}
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
