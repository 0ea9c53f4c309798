package main

// serve's own metrics, beside the engine's (reconcile.Metrics) and the
// plans' (reconcile.PlanCollector): what the history billed and saw
// happen, each GPU's readings (busy, memory, allocation, power,
// temperature), what may show a stalled run, and the
// GitHub API's calls.

import (
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/status/dash"
)

type serveMetrics struct {
	gpuHours  *prometheus.CounterVec
	phases    *prometheus.CounterVec
	gpuUtil   *prometheus.GaugeVec
	gpuMemory *prometheus.GaugeVec
	gpuAlloc  *prometheus.GaugeVec
	gpuPower  *prometheus.GaugeVec
	gpuLimit  *prometheus.GaugeVec
	gpuTemp   *prometheus.GaugeVec
	outputAge *prometheus.GaugeVec
	runUtil   *prometheus.GaugeVec
	github    *prometheus.CounterVec
	githubErr *prometheus.CounterVec

	// billed and emitted are each cell's total billed since start and the
	// part added to gpuHours: a bill taken back (a run seen running past
	// its end) is taken from what comes next, as a counter cannot go down.
	billed, emitted map[[3]string]int64
}

func newServeMetrics(reg prometheus.Registerer) *serveMetrics {
	runLabels := []string{"cluster", "team", "workload", "run"}
	devLabels := []string{"cluster", "device", "model"}
	boardLabels := []string{"cluster", "node", "gpu"}
	m := &serveMetrics{
		gpuHours: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_gpu_hours_total",
			Help: "GPU-hours billed to runs (GPUs held x the time held, as the cluster measured it), by cluster, team and flavor."},
			[]string{"cluster", "team", "flavor"}),
		phases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_run_phases_total",
			Help: "Runs that entered a phase (queued, admitted, running, succeeded, failed, preempted, stopped), by cluster and team."},
			[]string{"cluster", "team", "phase"}),
		gpuUtil: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_utilization_ratio",
			Help: "A GPU's busy fraction over NVML's last sample period, on machines berth runs (absent where NVML gives none, e.g. MIG mode)."}, devLabels),
		gpuMemory: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_memory_utilization_ratio",
			Help: "A GPU's memory controller busy fraction over NVML's last sample period."}, devLabels),
		gpuAlloc: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_allocated_ratio",
			Help: "The fraction of a GPU berth gave to runs (whole, fractions, MIG slices)."}, devLabels),
		gpuPower: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_power_watts",
			Help: "A GPU board's power draw as NVML reads it, on machines berth runs (a GPU in MIG mode: the whole board's)."}, boardLabels),
		gpuLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_power_limit_watts",
			Help: "The power limit the driver enforces on a GPU board."}, boardLabels),
		gpuTemp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_gpu_temperature_celsius",
			Help: "A GPU's temperature as NVML reads it, on machines berth runs."}, boardLabels),
		outputAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_run_output_age_seconds",
			Help: "Seconds since a running run on this machine last wrote output (its start, if it never did)."}, runLabels),
		runUtil: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_run_gpu_utilization_ratio",
			Help: "The mean busy fraction of the GPUs a running run on this machine holds."}, runLabels),
		github: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_github_requests_total",
			Help: "GitHub API requests by operation (statuses, comments, pulls, contents, other) and HTTP status code (\"error\": no answer)."},
			[]string{"operation", "code"}),
		githubErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_github_request_errors_total",
			Help: "GitHub API requests that failed: no answer, or an answer of 400 or more, by operation."}, []string{"operation"}),
		billed: map[[3]string]int64{}, emitted: map[[3]string]int64{},
	}
	reg.MustRegister(m.gpuHours, m.phases, m.gpuUtil, m.gpuMemory, m.gpuAlloc, m.gpuPower, m.gpuLimit, m.gpuTemp, m.outputAge, m.runUtil, m.github, m.githubErr)
	return m
}

// recorded counts what one reconcile added to the history.
func (m *serveMetrics) recorded(out history.Outcome) {
	for k, v := range out.Usage {
		cell := [3]string{k.Cluster, k.Team, k.Flavor}
		m.billed[cell] += v
		if d := m.billed[cell] - m.emitted[cell]; d > 0 {
			m.gpuHours.WithLabelValues(cell[:]...).Add(history.GPUHours(d))
			m.emitted[cell] = m.billed[cell]
		}
	}
	for _, e := range out.Events {
		if e.Type == history.EventLifecycle {
			m.phases.WithLabelValues(e.Cluster, e.Team, e.What).Inc()
		}
	}
}

// sampled sets each GPU's readings, and each running run's output age and
// GPU use on this machine's clusters.
func (m *serveMetrics) sampled(samples []history.DeviceSample, models map[string]string, runs map[string][]reconcile.RunState, stateDirs map[string]string, now time.Time) {
	m.gpuUtil.Reset()
	m.gpuMemory.Reset()
	m.gpuAlloc.Reset()
	util := map[string]float64{}
	for _, s := range samples {
		l := []string{s.Cluster, s.Device, models[s.Cluster+"\x00"+s.Device]}
		if s.Utilization >= 0 {
			m.gpuUtil.WithLabelValues(l...).Set(float64(s.Utilization) / 100)
			util[s.Cluster+"\x00"+s.Device] = float64(s.Utilization) / 100
		}
		if s.Memory >= 0 {
			m.gpuMemory.WithLabelValues(l...).Set(float64(s.Memory) / 100)
		}
		m.gpuAlloc.WithLabelValues(l...).Set(float64(s.Allocated) / 1000)
	}
	m.outputAge.Reset()
	m.runUtil.Reset()
	for cluster, rs := range runs {
		for _, r := range rs {
			if r.Phase != reconcile.PhaseRunning {
				continue
			}
			l := []string{cluster, r.Workload.Team(), string(r.Workload), r.RunID}
			last := lastOutput(stateDirs[cluster], r)
			m.outputAge.WithLabelValues(l...).Set(now.Sub(last).Seconds())
			var sum float64
			n := 0
			for _, p := range r.Placements {
				for _, g := range p.GPUs {
					if u, ok := util[cluster+"\x00"+deviceName(p.Node, g, -1)]; ok {
						sum += u
						n++
					}
				}
			}
			if n > 0 {
				m.runUtil.WithLabelValues(l...).Set(sum / float64(n))
			}
		}
	}
}

// boards sets each GPU's power draw, power limit and temperature, where
// NVML gives them (-1: it gives none, and the series is absent).
func (m *serveMetrics) boards(devices []dash.Device) {
	m.gpuPower.Reset()
	m.gpuLimit.Reset()
	m.gpuTemp.Reset()
	for _, d := range devices {
		l := []string{d.Cluster, d.Node, strconv.Itoa(d.Index)}
		if d.PowerMilliwatts >= 0 {
			m.gpuPower.WithLabelValues(l...).Set(float64(d.PowerMilliwatts) / 1000)
		}
		if d.PowerLimitMilliwatts >= 0 {
			m.gpuLimit.WithLabelValues(l...).Set(float64(d.PowerLimitMilliwatts) / 1000)
		}
		if d.TemperatureC >= 0 {
			m.gpuTemp.WithLabelValues(l...).Set(float64(d.TemperatureC))
		}
	}
}

// lastOutput is when a run on this machine last wrote to its standard
// output or error (its start if never, or where its files cannot be read).
func lastOutput(stateDir string, r reconcile.RunState) time.Time {
	last := r.StartedAt
	logs, err := local.Logs(stateDir, r.Workload, r.RunID, 0)
	if err != nil {
		return last
	}
	for _, p := range logs.Pods {
		for _, files := range [][]string{p.Stdout, p.Stderr} {
			if len(files) == 0 {
				continue
			}
			if fi, err := os.Stat(files[len(files)-1]); err == nil && fi.ModTime().After(last) {
				last = fi.ModTime()
			}
		}
	}
	return last
}

// githubTransport counts the API's requests and failures.
func (m *serveMetrics) githubTransport(next http.RoundTripper) http.RoundTripper {
	return countingTransport{next: next, m: m}
}

type countingTransport struct {
	next http.RoundTripper
	m    *serveMetrics
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := githubOperation(req.URL.Path)
	resp, err := t.next.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.m.github.WithLabelValues(op, code).Inc()
	if err != nil || resp.StatusCode >= 400 {
		t.m.githubErr.WithLabelValues(op).Inc()
	}
	return resp, err
}

// githubOperation names what an API path does, in the few words the
// metric's label allows (a path holds commit hashes and numbers).
func githubOperation(path string) string {
	p := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+3 < len(p); i++ {
		if p[i] != "repos" {
			continue
		}
		switch rest := p[i+3:]; {
		case rest[0] == "statuses" || rest[0] == "commits" && len(rest) >= 3 && strings.HasPrefix(rest[2], "status"):
			return "statuses"
		case rest[0] == "issues" && slices.Contains(rest, "comments"):
			return "comments"
		case rest[0] == "pulls":
			return "pulls"
		case rest[0] == "contents":
			return "contents"
		}
	}
	return "other"
}

// readyReplicas asks the local clusters how many replicas of a service
// pass readiness.
func readyReplicas(clusters []reconcile.Cluster) func(cluster string, id berth.WorkloadID) (int, bool) {
	byName := map[string]*local.Cluster{}
	for _, c := range clusters {
		if lc, ok := c.(*local.Cluster); ok {
			byName[lc.Name()] = lc
		}
	}
	return func(cluster string, id berth.WorkloadID) (int, bool) {
		lc, ok := byName[cluster]
		if !ok {
			return 0, false
		}
		return lc.ReadyReplicas(id)
	}
}
