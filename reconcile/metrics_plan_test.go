package reconcile_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// scrape serves reg as /metrics does and parses the text with the
// Prometheus parser: each sample as "name{label=value,...}" -> value.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, w.Body)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label { // sorted by name
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestPlanCollector(t *testing.T) {
	limit := int64(4000)
	plan := &berth.Plan{Cluster: "box",
		Decisions: []*berth.Decision{
			{Workload: "vision/train", Team: "vision", Action: berth.ActionKeep, Flavor: "h100", GPUs: 4},
			{Workload: "vision/tune", Team: "vision", Action: berth.ActionAdmit, Flavor: "h100", GPUs: 2},
			{Workload: "vision/nb", Team: "vision", Action: berth.ActionKeep, Flavor: "h100-1g", GPUs: 1, MIG: "1g.10gb"},
			{Workload: "vision/sweep", Team: "vision", Action: berth.ActionQueue, GPUs: 8, Position: 1},
			{Workload: "nlp/eval", Team: "nlp", Action: berth.ActionQueue, GPUs: 1, Position: 2},
			{Workload: "nlp/big", Team: "nlp", Action: berth.ActionQueue, GPUs: 2, Position: 3},
			{Workload: "nlp/huge", Team: "nlp", Action: berth.ActionReject, GPUs: 64},
			{Workload: "nlp/old", Team: "nlp", Action: berth.ActionDone, Flavor: "h100", GPUs: 2},
		},
		Quota: []berth.QuotaUse{
			{Team: "vision", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 4000, BorrowingLimit: &limit, UsedAfter: 6000, BorrowedAfter: 2000},
			{Team: "vision", Flavor: "h100", Resource: berth.ResourceCPU, Nominal: 32000, UsedAfter: 1500},
			{Team: "vision", Flavor: "h100", Resource: berth.ResourceMemory, Nominal: 64 << 30, UsedAfter: 16 << 30},
			{Team: "serving", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 1000},
		},
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	obs := &reconcile.Observed{Runs: []reconcile.RunState{
		{RunRecord: reconcile.RunRecord{Workload: "nlp/eval", RunID: "1", QueuedSince: now.Add(-90 * time.Minute)}, Phase: reconcile.PhaseQueued},
		{RunRecord: reconcile.RunRecord{Workload: "nlp/big", RunID: "1", QueuedSince: now.Add(-5 * time.Minute)}, Phase: reconcile.PhaseQueued},
		{RunRecord: reconcile.RunRecord{Workload: "serving/chat", RunID: "1"}, Phase: reconcile.PhaseRunning, Pods: 3, PodsRunning: 2},
		{RunRecord: reconcile.RunRecord{Workload: "serving/nb", RunID: "1"}, Phase: reconcile.PhaseRunning, Pods: 1, PodsRunning: 1},
	}}
	plan.Decisions = append(plan.Decisions,
		&berth.Decision{Workload: "serving/chat", RunID: "1", Team: "serving", Kind: berth.KindService, Action: berth.ActionKeep, Flavor: "h100", GPUs: 3, Pods: 3},
		&berth.Decision{Workload: "serving/nb", RunID: "1", Team: "serving", Kind: berth.KindNotebook, Action: berth.ActionKeep, Flavor: "h100"})
	for i := range plan.Decisions {
		if plan.Decisions[i].RunID == "" {
			plan.Decisions[i].RunID = "1"
		}
	}
	last := map[string]reconcile.ClusterReport{"box": {Name: "box", Plan: plan, Observed: obs}, "down": {Name: "down"}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(reconcile.NewPlanCollector(reconcile.PlanCollectorOptions{
		Last: func() map[string]reconcile.ClusterReport { return last },
		Now:  func() time.Time { return now },
		Ready: func(cluster string, id berth.WorkloadID) (int, bool) {
			return 1, id == "serving/chat" // probes: 1 of its 2 running replicas is ready
		},
	}))
	want := map[string]float64{
		"berth_queue_length{cluster=box,flavor=,team=vision}":  1,
		"berth_queue_length{cluster=box,flavor=,team=nlp}":     2,
		"berth_queue_length{cluster=box,flavor=,team=serving}": 0,

		"berth_queue_wait_seconds{cluster=box,flavor=,team=vision}":  0, // its run is not recorded yet
		"berth_queue_wait_seconds{cluster=box,flavor=,team=nlp}":     90 * 60,
		"berth_queue_wait_seconds{cluster=box,flavor=,team=serving}": 0,

		"berth_service_replicas{cluster=box,state=desired,team=serving,workload=serving/chat}": 3,
		"berth_service_replicas{cluster=box,state=running,team=serving,workload=serving/chat}": 2,
		"berth_service_replicas{cluster=box,state=ready,team=serving,workload=serving/chat}":   1,
		"berth_service_replicas{cluster=box,state=desired,team=serving,workload=serving/nb}":   1,
		"berth_service_replicas{cluster=box,state=running,team=serving,workload=serving/nb}":   1,
		"berth_service_replicas{cluster=box,state=ready,team=serving,workload=serving/nb}":     1,
		"berth_admitted_gpus{cluster=box,flavor=h100,team=serving}":                            3,

		"berth_admitted_gpus{cluster=box,flavor=h100,team=vision}":    6,
		"berth_admitted_gpus{cluster=box,flavor=h100-1g,team=vision}": 1,

		"berth_quota_nominal{cluster=box,flavor=h100,resource=gpu,team=vision}":     4,
		"berth_quota_used{cluster=box,flavor=h100,resource=gpu,team=vision}":        6,
		"berth_quota_borrowed{cluster=box,flavor=h100,resource=gpu,team=vision}":    2,
		"berth_quota_nominal{cluster=box,flavor=h100,resource=cpu,team=vision}":     32,
		"berth_quota_used{cluster=box,flavor=h100,resource=cpu,team=vision}":        1.5,
		"berth_quota_borrowed{cluster=box,flavor=h100,resource=cpu,team=vision}":    0,
		"berth_quota_nominal{cluster=box,flavor=h100,resource=memory,team=vision}":  64 << 30,
		"berth_quota_used{cluster=box,flavor=h100,resource=memory,team=vision}":     16 << 30,
		"berth_quota_borrowed{cluster=box,flavor=h100,resource=memory,team=vision}": 0,
		"berth_quota_nominal{cluster=box,flavor=h100,resource=gpu,team=serving}":    1,
		"berth_quota_used{cluster=box,flavor=h100,resource=gpu,team=serving}":       0,
		"berth_quota_borrowed{cluster=box,flavor=h100,resource=gpu,team=serving}":   0,
	}
	if d := cmp.Diff(want, scrape(t, reg)); d != "" {
		t.Errorf("/metrics (-want +got):\n%s", d)
	}

	// A team that leaves the plan leaves the metrics.
	plan.Quota, plan.Decisions = plan.Quota[3:], nil
	got := scrape(t, reg)
	for k := range got {
		if strings.Contains(k, "team=vision") || strings.Contains(k, "team=nlp") {
			t.Errorf("after vision and nlp left the plan, /metrics still has %s", k)
		}
	}
}
