package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status/dash"
)

// scrapeRegistry serves reg as /metrics does and parses it with the
// Prometheus text parser: "name{label=value,...}" -> the counter's or
// gauge's value.
func scrapeRegistry(t *testing.T, reg *prometheus.Registry) map[string]float64 {
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
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// GPU-hours count what the history billed, a bill taken back included
// (from what comes next: a counter cannot go down); phases count the
// lifecycle events.
func TestGPUHoursAndPhaseMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	cell := history.UsageKey{Day: "2026-12-07", Team: "vision", Cluster: "box", Flavor: "h100"}
	hour := int64(1000 * 3600e3) // one GPU-hour
	m.recorded(history.Outcome{Usage: map[history.UsageKey]int64{cell: 2 * hour},
		Events: []history.Event{{Type: history.EventLifecycle, Cluster: "box", Team: "vision", What: "running"}}})
	m.recorded(history.Outcome{Usage: map[history.UsageKey]int64{cell: -hour / 2}})
	m.recorded(history.Outcome{Usage: map[history.UsageKey]int64{cell: hour},
		Events: []history.Event{
			{Type: history.EventLifecycle, Cluster: "box", Team: "vision", What: "failed"},
			{Type: history.EventDecision, Cluster: "box", Team: "vision", What: "queue"},
		}})
	got := scrapeRegistry(t, reg)
	want := map[string]float64{
		"berth_gpu_hours_total{cluster=box,flavor=h100,team=vision}":    2.5,
		"berth_run_phases_total{cluster=box,phase=running,team=vision}": 1,
		"berth_run_phases_total{cluster=box,phase=failed,team=vision}":  1,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("/metrics (-want +got):\n%s", d)
	}
}

// Each GPU's power and temperature are gauges by cluster, node and GPU;
// a figure NVML does not give is no series (not a zero), and a GPU gone
// since the last reading is gone from the metrics.
func TestGPUBoardMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	m.boards([]dash.Device{{Cluster: "box", Node: "vm", Index: 9, PowerMilliwatts: 1, PowerLimitMilliwatts: 1, TemperatureC: 1}})
	m.boards([]dash.Device{
		{Cluster: "box", Node: "vm", Index: 0, PowerMilliwatts: 301400, PowerLimitMilliwatts: 700000, TemperatureC: 58},
		{Cluster: "box", Node: "vm", Index: 1, PowerMilliwatts: -1, PowerLimitMilliwatts: -1, TemperatureC: 36},
	})
	got := scrapeRegistry(t, reg)
	want := map[string]float64{
		"berth_gpu_power_watts{cluster=box,gpu=0,node=vm}":         301.4,
		"berth_gpu_power_limit_watts{cluster=box,gpu=0,node=vm}":   700,
		"berth_gpu_temperature_celsius{cluster=box,gpu=0,node=vm}": 58,
		"berth_gpu_temperature_celsius{cluster=box,gpu=1,node=vm}": 36,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("/metrics (-want +got):\n%s", d)
	}
}

// The GitHub API's requests are counted by operation and code, failures
// apart.
func TestGitHubRequestMetrics(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/pulls") {
			http.Error(w, "rate limited", http.StatusForbidden)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer api.Close()
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	client := &http.Client{Transport: m.githubTransport(http.DefaultTransport)}
	for _, p := range []string{
		"/repos/o/r/statuses/0123abcd", "/repos/o/r/commits/0123abcd/status", "/repos/o/r/issues/7/comments",
		"/repos/o/r/issues/comments/99", "/repos/o/r/pulls/7", "/repos/o/r/contents/a.cue", "/user",
	} {
		resp, err := client.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if _, err := client.Get(closed.URL + "/api/v3/repos/o/r/statuses/0123"); err == nil {
		t.Fatal("a closed server answered")
	}
	want := map[string]float64{
		"berth_github_requests_total{code=200,operation=statuses}":   2,
		"berth_github_requests_total{code=200,operation=comments}":   2,
		"berth_github_requests_total{code=403,operation=pulls}":      1,
		"berth_github_requests_total{code=200,operation=contents}":   1,
		"berth_github_requests_total{code=200,operation=other}":      1,
		"berth_github_requests_total{code=error,operation=statuses}": 1,
		"berth_github_request_errors_total{operation=pulls}":         1,
		"berth_github_request_errors_total{operation=statuses}":      1,
	}
	if d := cmp.Diff(want, scrapeRegistry(t, reg)); d != "" {
		t.Errorf("/metrics (-want +got):\n%s", d)
	}
}
