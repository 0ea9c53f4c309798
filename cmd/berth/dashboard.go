package main

// The dashboard: HTML pages on the status listener, drawn by status/dash
// from what /api/status computes (server.status), behind the same token.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/status/dash"
)

// logTailLines and logTailBytes bound the log tail a workload page shows.
const (
	logTailLines = 100
	logTailBytes = 64 << 10
)

// mountDashboard adds the pages and their assets to mux.
func (s *server) mountDashboard(mux *http.ServeMux) {
	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", s.dashWorkloads)
	pages.HandleFunc("GET /queues", s.dashQueues)
	pages.HandleFunc("GET /workloads/{team}/{name}", s.dashWorkload)
	pages.HandleFunc("GET /gpus", s.dashGPUs)
	pages.HandleFunc("GET /teams", s.dashTeams)
	pages.HandleFunc("GET /audit", s.dashAudit)
	pages.HandleFunc("GET /audit/export", s.serveEvents) // history.go: ?format=json|csv
	if s.sessions == nil {
		s.sessions = newSessions(s.token, s.github.secret())
	}
	guarded := guardPages(s.token, s.github, s.sessions, pages) // session.go
	s.mountLogin(mux)
	// The stylesheet is open: the sign-in page needs it, and it holds
	// nothing of this serve's.
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(dash.Assets())))
	for _, p := range []string{"GET /{$}", "GET /queues", "GET /workloads/", "GET /gpus", "GET /teams", "GET /audit", "GET /audit/"} {
		mux.Handle(p, guarded)
	}
}

// dashCache holds the dashboard's data between reconciles: a page is a
// filter and a render over it, and the work of /api/status (every
// workload's status, scrubbed) is done once per reconcile, not per
// request, so pages under load take little from the reconcile loop.
type dashCache struct {
	mu   sync.Mutex
	key  dashKey
	data dash.Data
	ok   bool
	// pages are the pages drawn from data, by path and query: the same
	// page asked again before the next reconcile is the same bytes (its
	// "as of" the first request's), so a dashboard refreshed by many
	// people costs one render per page and reconcile, not one per request.
	pages map[string][]byte
}

// maxCachedPages bounds the pages kept between reconciles (a variable for
// the benchmark that measures what they save).
var maxCachedPages = 64

// dashKey names what the data was computed from: the reports recorded,
// and the plans and observations of each cluster (the engine replaces
// them at each reconcile).
type dashKey struct {
	gen      uint64
	clusters string
}

func (s *server) dashKey() dashKey {
	s.mu.Lock()
	k := dashKey{gen: s.gen}
	s.mu.Unlock()
	var b strings.Builder
	reports := s.engine.Last()
	names := make([]string, 0, len(reports))
	for n := range reports {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %p %p\n", n, reports[n].Plan, reports[n].Observed)
	}
	k.clusters = b.String()
	return k
}

// dashData is what the pages are drawn from: the status API's answer, with
// the plans and runs, and the configuration in force; as of now. Pages
// only read it: it is shared by the requests until the next reconcile.
func (s *server) dashData() dash.Data {
	d, _ := s.dashDataKey()
	return d
}

// dashDataKey is dashData and the key it was computed for.
func (s *server) dashDataKey() (dash.Data, dashKey) {
	key := s.dashKey()
	s.dash.mu.Lock()
	defer s.dash.mu.Unlock()
	if !s.dash.ok || s.dash.key != key {
		s.dash.data, s.dash.key, s.dash.ok = s.computeDashData(), key, true
		s.dash.pages = map[string][]byte{}
	}
	d := s.dash.data
	d.Now = time.Now().UTC()
	return d, key
}

func (s *server) computeDashData() dash.Data {
	resp := s.status(true)
	s.mu.Lock()
	commit := s.last.Applied.Commit
	s.mu.Unlock()
	d := dash.Data{Revision: resp.Revision, Applied: resp.Applied, Commit: commit, RepoURL: s.repoURL, Error: resp.Error, Now: resp.Time}
	for _, e := range resp.Invalid {
		d.Invalid = append(d.Invalid, e.Error())
	}
	reports := s.engine.Last()
	for _, c := range resp.Clusters {
		dc := dash.Cluster{Name: c.Name, Error: c.Error, Workloads: c.Workloads, Runs: c.Runs, Plan: resp.Plans[c.Name]}
		if obs := reports[c.Name].Observed; obs != nil {
			dc.Nodes, dc.Running = obs.Snapshot.Nodes, obs.Snapshot.Running
		}
		d.Clusters = append(d.Clusters, dc)
	}
	if cfg, _, ok := s.engine.LastConfig(); ok {
		d.Config = cfg
	}
	s.addHistory(&d, resp.Time)
	return d
}

// addHistory adds what the pages read from the history and this
// machine's GPUs: this month's GPU-hours, each GPU's readings over the
// last two hours, and NVML's last figures (read every sampleEvery by the
// reconcile loop: NVML runs in a helper process, not once per page).
func (s *server) addHistory(d *dash.Data, now time.Time) {
	if s.hist == nil {
		return
	}
	if u, err := s.hist.Usage(history.MonthStart(now), history.Day(now)); err == nil {
		d.Usage = u
	}
	d.Origins = s.hist.Origins()
	d.Series = map[dash.DeviceKey][]history.Point{}
	s.mu.Lock()
	d.Devices = s.devices
	s.mu.Unlock()
	for _, dv := range d.Devices {
		dev := history.Device(dv.Node, dv.Index)
		if pts, err := s.hist.Series(dv.Cluster, dev, now.Add(-2*time.Hour), now); err == nil && len(pts) > 0 {
			d.Series[dash.DeviceKey{Cluster: dv.Cluster, Device: dev}] = pts
		}
	}
}

func (s *server) dashGPUs(w http.ResponseWriter, r *http.Request) {
	s.cachedPage(w, r, func(out io.Writer, d dash.Data) error { return dash.GPUs(out, d) })
}

func (s *server) dashTeams(w http.ResponseWriter, r *http.Request) {
	s.cachedPage(w, r, func(out io.Writer, d dash.Data) error { return dash.Teams(out, d) })
}

func (s *server) dashAudit(w http.ResponseWriter, r *http.Request) {
	q := dash.ParseAuditQuery(r.URL.Query())
	evs, err := s.events(q.History(dash.MaxAudit))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writePage(w, r, func(out io.Writer) error { return dash.Audit(out, s.dashData(), q, evs) })
}

func (s *server) dashWorkloads(w http.ResponseWriter, r *http.Request) {
	s.cachedPage(w, r, func(out io.Writer, d dash.Data) error { return dash.Workloads(out, d, dash.ParseQuery(r.URL.Query())) })
}

func (s *server) dashQueues(w http.ResponseWriter, r *http.Request) {
	s.cachedPage(w, r, func(out io.Writer, d dash.Data) error { return dash.Queues(out, d) })
}

// cachedPage writes the page r asks for as drawn from the data of the
// last reconcile: drawn once, then kept until the next (dashCache.pages).
func (s *server) cachedPage(w http.ResponseWriter, r *http.Request, draw func(io.Writer, dash.Data) error) {
	d, gen := s.dashDataKey()
	key := r.URL.Path + "?" + r.URL.Query().Encode() // sorted: the same query, the same key
	s.dash.mu.Lock()
	b, ok := s.dash.pages[key]
	if s.dash.key != gen {
		ok = false
	}
	s.dash.mu.Unlock()
	if !ok {
		var buf bytes.Buffer
		if err := draw(&buf, d); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b = buf.Bytes()
		s.dash.mu.Lock()
		if s.dash.key == gen && len(s.dash.pages) < maxCachedPages {
			s.dash.pages[key] = b
		}
		s.dash.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(dash.SignedIn(b, signedIn(r)))
}

func (s *server) dashWorkload(w http.ResponseWriter, r *http.Request) {
	id := berth.MakeWorkloadID(r.PathValue("team"), r.PathValue("name"))
	p := dash.WorkloadPage{Workload: id, Cluster: r.URL.Query().Get("cluster"), RunID: r.URL.Query().Get("run")}
	p.History, _ = s.events(history.Query{Workload: string(id), Limit: 1000}) // none: the run's own times
	d := s.dashData()
	tail := s.logTail(p, d)
	var buf bytes.Buffer
	err := dash.Workload(&buf, d, p, tail)
	var none dash.ErrNoWorkload
	if errors.As(err, &none) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writePage(w, r, func(out io.Writer) error {
		if err != nil {
			return err
		}
		_, err := out.Write(buf.Bytes())
		return err
	})
}

func writePage(w http.ResponseWriter, r *http.Request, draw func(io.Writer) error) {
	var buf bytes.Buffer
	if err := draw(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(dash.SignedIn(buf.Bytes(), signedIn(r)))
}

// logTail reads the end of the workload's output on a local cluster: the
// run and cluster the page names, else the first local cluster that has
// one. What it shows is scrubbed like the API.
func (s *server) logTail(p dash.WorkloadPage, d dash.Data) dash.LogTail {
	cfg, _, ok := s.engine.LastConfig()
	if !ok {
		return dash.LogTail{Missing: "no valid revision has been loaded yet"}
	}
	var clusters []string
	for _, c := range d.Clusters {
		if p.Cluster != "" && c.Name != p.Cluster {
			continue
		}
		if cc, ok := cfg.Clusters[c.Name]; ok && cc.Backend == berth.BackendLocal {
			clusters = append(clusters, c.Name)
		}
	}
	if len(clusters) == 0 {
		return dash.LogTail{Missing: "logs are shown for runs on this machine (backend local); read a Kubernetes run's logs with kubectl: berth's labels name the run"}
	}
	var logs *local.RunLogs
	var err error
	for _, c := range clusters {
		dir := filepath.Join(s.stateDir, "clusters", c)
		if p.RunID != "" {
			logs, err = local.Logs(dir, p.Workload, p.RunID, 0)
		} else {
			logs, err = local.LatestLogs(dir, p.Workload)
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		if errors.Is(err, local.ErrNoRuns) {
			return dash.LogTail{Missing: "no run of it has started on this machine yet"}
		}
		return dash.LogTail{Missing: s.engine.Scrubber().String(err.Error())}
	}
	// The last pod's standard output: one machine's view, as 'berth logs
	// --pod N' gives it; a run's pods are listed in order.
	var files []string
	pod := 0
	for _, pl := range logs.Pods {
		if len(pl.Stdout) > 0 {
			files, pod = pl.Stdout, pl.Pod
			break
		}
	}
	if len(files) == 0 {
		return dash.LogTail{Missing: fmt.Sprintf("run %s attempt %d has written nothing yet", logs.RunID, logs.Attempt)}
	}
	lines, truncated, err := tailFile(files[len(files)-1], logTailBytes, logTailLines)
	if err != nil {
		return dash.LogTail{Missing: s.engine.Scrubber().String(err.Error())}
	}
	scrub := s.engine.Scrubber()
	for i := range lines {
		lines[i] = scrub.String(lines[i])
	}
	return dash.LogTail{Source: fmt.Sprintf("run %s attempt %d pod %d, standard output", logs.RunID, logs.Attempt, pod), Lines: lines, Truncated: truncated || len(files) > 1}
}

// tailFile reads at most maxBytes from the end of path and returns its
// last maxLines complete lines (and a last line without its newline).
func tailFile(path string, maxBytes int64, maxLines int) ([]string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	off := max(0, fi.Size()-maxBytes)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	truncated := off > 0
	if truncated {
		// The first line read is likely cut: drop it.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	text := strings.TrimSuffix(string(b), "\n")
	if text == "" {
		return nil, truncated, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > maxLines {
		lines, truncated = lines[len(lines)-maxLines:], true
	}
	return lines, truncated, nil
}
