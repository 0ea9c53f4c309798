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

	"github.com/berth-gpu/berth"
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
	pages.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(dash.Assets())))
	guarded := requireToken(s.token, pages)
	for _, p := range []string{"GET /{$}", "GET /queues", "GET /workloads/", "GET /assets/"} {
		mux.Handle(p, guarded)
	}
}

// dashData is what the pages are drawn from: the status API's answer, with
// the plans and runs, and what the configuration in force says of teams
// and workloads.
func (s *server) dashData() dash.Data {
	resp := s.status(true)
	s.mu.Lock()
	commit := s.last.Applied.Commit
	s.mu.Unlock()
	d := dash.Data{Revision: resp.Revision, Applied: resp.Applied, Commit: commit, RepoURL: s.repoURL, Error: resp.Error, Now: resp.Time}
	for _, e := range resp.Invalid {
		d.Invalid = append(d.Invalid, e.Error())
	}
	for _, c := range resp.Clusters {
		d.Clusters = append(d.Clusters, dash.Cluster{Name: c.Name, Error: c.Error, Workloads: c.Workloads, Runs: c.Runs, Plan: resp.Plans[c.Name]})
	}
	if cfg, _, ok := s.engine.LastConfig(); ok {
		d.Config = cfg
	}
	return d
}

func (s *server) dashWorkloads(w http.ResponseWriter, r *http.Request) {
	writePage(w, func(out io.Writer) error { return dash.Workloads(out, s.dashData(), dash.ParseQuery(r.URL.Query())) })
}

func (s *server) dashQueues(w http.ResponseWriter, r *http.Request) {
	writePage(w, func(out io.Writer) error { return dash.Queues(out, s.dashData()) })
}

func (s *server) dashWorkload(w http.ResponseWriter, r *http.Request) {
	id := berth.MakeWorkloadID(r.PathValue("team"), r.PathValue("name"))
	p := dash.WorkloadPage{Workload: id, Cluster: r.URL.Query().Get("cluster"), RunID: r.URL.Query().Get("run")}
	d := s.dashData()
	tail := s.logTail(p, d)
	var buf bytes.Buffer
	err := dash.Workload(&buf, d, p, tail)
	var none dash.ErrNoWorkload
	if errors.As(err, &none) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writePage(w, func(out io.Writer) error {
		if err != nil {
			return err
		}
		_, err := out.Write(buf.Bytes())
		return err
	})
}

func writePage(w http.ResponseWriter, draw func(io.Writer) error) {
	var buf bytes.Buffer
	if err := draw(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
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
