package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/redact"
)

// dashServer is a server whose engine reconciled a generated repository of
// n workloads in 200 teams on one 8-GPU node (an in-memory cluster): a
// few run, most wait in line, some can never fit.
func dashServer(b *testing.B, n int) *server {
	b.Helper()
	repo := gen.Generate(gen.Options{Teams: 200, Workloads: n, Seed: 1})
	var lines []string
	for _, l := range strings.Split(string(repo["platform/flavors.cue"]), "\n") {
		if strings.Contains(l, "nodeLabels") || strings.Contains(l, "topologyLabel") {
			continue
		}
		lines = append(lines, strings.ReplaceAll(l, `cluster: "prod"`, `cluster: "box"`))
	}
	repo["platform/flavors.cue"] = []byte(strings.Join(lines, "\n"))
	cmd := regexp.MustCompile(`command: \[[^\]]*\]`)
	for p, f := range repo {
		if strings.HasPrefix(p, "teams/") {
			repo[p] = cmd.ReplaceAll(f, []byte(`command: ["sleep", "600"]`))
		}
	}
	c := fake.NewCluster("box", berth.Node{Name: "box", Ready: true, CPU: berth.MustQuantity("256"), Memory: berth.MustQuantity("2Ti"), GPUs: 8, GPUModel: "H100"})
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{}), Redact: &redact.Live{}})
	rev := reconcile.Revision{Name: "main@sha1:1", Commit: "1", FS: repo.FS()}
	var rep reconcile.Report
	for range 2 { // the second sees the runs the first started
		rep = e.ReconcileRevision(context.Background(), rev)
	}
	if rep.Invalid != nil || rep.Clusters[0].Err != nil {
		b.Fatalf("reconcile: %v %v", rep.Invalid, rep.Clusters[0].Err)
	}
	counts := map[berth.Action]int{}
	for _, d := range rep.Clusters[0].Plan.Decisions {
		counts[d.Action]++
	}
	b.Logf("%d decisions: %v", len(rep.Clusters[0].Plan.Decisions), counts)
	s := &server{engine: e}
	s.record(rep)
	return s
}

// BenchmarkDashboard10k serves dashboard pages from a berth serve's
// handler (the status listener's mux, token check and all) with 10,000
// workloads: the first page of the workloads table, a filtered page deep
// in it, the last page and the queues page, and /api/status for scale. It reports the median
// (p50-ms) and p99 of the requests besides the mean.
func BenchmarkDashboard10k(b *testing.B) {
	s := dashServer(b, 10000)
	h := s.handler(prometheus.NewRegistry())
	var team string
	for _, c := range s.status(false).Clusters {
		team = c.Workloads[len(c.Workloads)/2].Team
	}
	for _, bc := range []struct{ name, path string }{
		{"workloads", "/"},
		{"workloads-filtered", "/?team=" + team + "&state=queued&page=1&per=20"},
		{"workloads-last-page", "/?page=200"},
		{"queues", "/queues"},
		// The JSON the pages are drawn from, for scale.
		{"api-status", "/api/status"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			var size int
			for b.Loop() {
				start := time.Now()
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, bc.path, nil))
				took = append(took, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", bc.path, w.Code, w.Body)
				}
				size = w.Body.Len()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(size)/1024, "page-KiB")
		})
	}
}
