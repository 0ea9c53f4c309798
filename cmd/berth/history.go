package main

// serve's history (reconcile/history): opened in the state directory,
// written after every reconcile, read by the dashboard, /api/usage,
// /api/events, 'berth usage' and 'berth status -o json'.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/status/dash"
)

// historyFile is the history's file in the state directory.
const historyFile = "history.db"

// sampleEvery is how often serve reads the GPUs of its local clusters
// for the utilisation history.
const sampleEvery = 10 * time.Second

// recordHistory adds a reconcile's outcome to the history and the
// metrics, and every sampleEvery the local clusters' GPU readings. A
// failure is logged: the history is for people, and reconciling goes on
// without it.
func (s *server) recordHistory(ctx context.Context, rep reconcile.Report, clusters []reconcile.Cluster, now time.Time, log *slog.Logger) {
	if s.hist == nil {
		return
	}
	out, err := s.hist.Record(rep, now)
	if err != nil {
		log.Warn("history not written", "err", err)
	}
	if s.metrics != nil {
		s.metrics.recorded(out)
	}
	if now.Sub(s.sampled) < sampleEvery {
		return
	}
	s.sampled = now
	var samples []history.DeviceSample
	var devices []dash.Device
	models := map[string]string{}
	runs := map[string][]reconcile.RunState{}
	dirs := map[string]string{}
	for _, c := range clusters {
		lc, ok := c.(*local.Cluster)
		if !ok {
			continue
		}
		gpus, err := lc.GPUs(ctx)
		if err != nil {
			log.Warn("GPU readings not taken", "cluster", c.Name(), "err", err)
			continue
		}
		node := lc.Node().Name
		for _, g := range gpus {
			models[lc.Name()+"\x00"+deviceName(node, g.Index, -1)] = g.Name
			dv := dash.Device{Cluster: lc.Name(), Node: node, Index: g.Index, Name: g.Name, UUID: g.UUID, MemoryMiB: g.MemoryMiB,
				Utilization: g.Utilization, MemoryUtilization: g.MemoryUtilization, MIGEnabled: g.MIGEnabled,
				PowerMilliwatts: g.PowerMilliwatts, PowerLimitMilliwatts: g.PowerLimitMilliwatts, TemperatureC: g.TemperatureC}
			for _, m := range g.MIG {
				dv.MIG = append(dv.MIG, m.Profile)
			}
			devices = append(devices, dv)
		}
		samples = append(samples, deviceSamples(lc.Name(), node, gpus, rep)...)
		dirs[lc.Name()] = lc.StateDir()
		for _, cr := range rep.Clusters {
			if cr.Name == lc.Name() && cr.Observed != nil {
				runs[cr.Name] = cr.Observed.Runs
			}
		}
	}
	s.mu.Lock()
	s.devices = devices // the GPUs page's figures: NVML is read here only
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.sampled(samples, models, runs, dirs, now)
		s.metrics.boards(devices)
	}
	if len(samples) == 0 {
		return
	}
	if err := s.hist.Sample(now, samples); err != nil {
		log.Warn("history not written", "err", err)
	}
}

// deviceSamples are one machine's GPU readings with what berth gave to
// runs of each (from the cluster's last observation).
func deviceSamples(cluster, node string, gpus []local.GPU, rep reconcile.Report) []history.DeviceSample {
	alloc := map[string]int{} // device -> thousandths given
	for _, cr := range rep.Clusters {
		if cr.Name != cluster || cr.Observed == nil {
			continue
		}
		for _, rw := range cr.Observed.Snapshot.Running {
			for _, p := range rw.Placements {
				for _, g := range p.GPUs {
					n := 1000
					if p.GPUFraction > 0 {
						n = int(p.GPUFraction*1000 + 0.5)
					}
					alloc[deviceName(p.Node, g, -1)] += n
				}
				for _, m := range p.MIG {
					if per := berth.MIGSlicesPerGPU(m.Profile); per > 0 {
						alloc[deviceName(p.Node, m.GPU, -1)] += 1000 / per
					}
				}
			}
		}
	}
	out := make([]history.DeviceSample, 0, len(gpus))
	for _, g := range gpus {
		d := deviceName(node, g.Index, -1)
		out = append(out, history.DeviceSample{Cluster: cluster, Device: d, Utilization: g.Utilization, Memory: g.MemoryUtilization, Allocated: alloc[d]})
	}
	return out
}

// deviceName names a GPU ("box/0") or a MIG device of one ("box/0/mig-1").
func deviceName(node string, gpu, mig int) string {
	if mig >= 0 {
		return fmt.Sprintf("%s/%d/mig-%d", node, gpu, mig)
	}
	return fmt.Sprintf("%s/%d", node, gpu)
}

// usageResponse is what /api/usage answers and 'berth usage -o json'
// prints: GPU-hours per team over days From..To (UTC, inclusive), and each
// team, cluster and flavor's day.
type usageResponse struct {
	From  string              `json:"from"`
	To    string              `json:"to"`
	Teams []history.TeamUsage `json:"teams"`
	Rows  []usageRow          `json:"rows"`
}

type usageRow struct {
	history.UsageKey
	GPUHours       float64 `json:"gpuHours"`
	MilliGPUMillis int64   `json:"milliGpuMillis"`
}

// usage reads the history's GPU-hours from..to.
func (s *server) usage(from, to string) (usageResponse, error) {
	resp := usageResponse{From: from, To: to, Teams: []history.TeamUsage{}, Rows: []usageRow{}}
	if s.hist == nil {
		return resp, nil
	}
	u, err := s.hist.Usage(from, to)
	if err != nil {
		return resp, err
	}
	for _, x := range u {
		resp.Rows = append(resp.Rows, usageRow{UsageKey: x.UsageKey, GPUHours: x.GPUHours(), MilliGPUMillis: x.MilliGPUMillis})
	}
	resp.Teams = history.ByTeam(u)
	return resp, nil
}

// usageRange reads from= and to= (days, "2026-12-01"; default: this
// month to today).
func usageRange(q url.Values, now time.Time) (from, to string, err error) {
	from, to = q.Get("from"), q.Get("to")
	if from == "" {
		from = history.MonthStart(now)
	}
	if to == "" {
		to = history.Day(now)
	}
	for _, d := range []string{from, to} {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return "", "", fmt.Errorf("%q is not a day (YYYY-MM-DD)", d)
		}
	}
	if to < from {
		return "", "", fmt.Errorf("range %s..%s ends before it starts", from, to)
	}
	return from, to, nil
}

// mountHistory adds /api/usage and /api/events.
func (s *server) mountHistory(api *http.ServeMux) {
	api.HandleFunc("GET /api/usage", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := usageRange(r.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := s.usage(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	api.HandleFunc("GET /api/events", s.serveEvents)
}

// eventQuery reads an events filter: since= and until= (RFC 3339), team=,
// cluster=, workload=, type= (repeat), q= (text in what or reason),
// limit= (newest N; default and at most 10,000).
func eventQuery(v url.Values) (history.Query, error) {
	q := history.Query{Team: v.Get("team"), Cluster: v.Get("cluster"), Workload: v.Get("workload"), Match: v.Get("q"), Limit: 10000}
	for _, t := range v["type"] {
		if t != "" {
			q.Types = append(q.Types, history.EventType(t))
		}
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, fmt.Errorf("%s=%q is not an RFC 3339 time", name, s)
			}
			*dst = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit=%q is not a positive number", s)
		}
		q.Limit = min(n, 10000)
	}
	return q, nil
}

// events reads the history's events, scrubbed like the status API.
func (s *server) events(q history.Query) ([]history.Event, error) {
	if s.hist == nil {
		return nil, nil
	}
	evs, err := s.hist.Events(q)
	if err != nil {
		return nil, err
	}
	scrub := s.engine.Scrubber()
	for i := range evs {
		evs[i].Reason = scrub.String(evs[i].Reason)
	}
	return evs, nil
}

// serveEvents answers the events a query selects, as JSON, or CSV with
// format=csv.
func (s *server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q, err := eventQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	evs, err := s.events(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="berth-audit.csv"`)
		writeEventsCSV(w, evs)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if evs == nil {
		evs = []history.Event{}
	}
	json.NewEncoder(w).Encode(evs)
}

// eventColumns are the CSV export's columns, in order.
var eventColumns = []string{"time", "type", "cluster", "team", "workload", "run", "what", "reason", "attempt", "gpus", "flavor", "revision", "commit", "pr", "merged_by"}

func writeEventsCSV(w http.ResponseWriter, evs []history.Event) {
	cw := csv.NewWriter(w)
	cw.Write(eventColumns)
	for _, e := range evs {
		pr := ""
		if e.PR > 0 {
			pr = strconv.Itoa(e.PR)
		}
		cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), string(e.Type), e.Cluster, e.Team, string(e.Workload), e.RunID,
			e.What, e.Reason, strconv.Itoa(e.Attempt), strconv.FormatFloat(e.GPUs, 'f', -1, 64), e.Flavor, e.Revision, e.Commit, pr,
			strings.TrimSpace(e.MergedBy)})
	}
	cw.Flush()
}
