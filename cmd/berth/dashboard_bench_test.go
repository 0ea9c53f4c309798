package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
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
// in it, the last page and the queues page, and /api/status for scale;
// the workloads page also right after a reconcile, when its data is
// computed again (between reconciles it is kept). It reports the median
// (p50-ms) and p99 of the requests besides the mean.
func BenchmarkDashboard10k(b *testing.B) {
	s := dashServer(b, 10000)
	h := s.handler(prometheus.NewRegistry())
	var team string
	for _, c := range s.status(false).Clusters {
		team = c.Workloads[len(c.Workloads)/2].Team
	}
	for _, bc := range []struct {
		name, path string
		// fresh: each request follows a reconcile (the data is not kept).
		fresh bool
	}{
		{"workloads", "/", false},
		{"workloads-after-reconcile", "/", true},
		{"workloads-filtered", "/?team=" + team + "&state=queued&page=1&per=20", false},
		{"workloads-last-page", "/?page=200", false},
		{"queues", "/queues", false},
		// The JSON the pages are drawn from, for scale.
		{"api-status", "/api/status", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			var size int
			last := s.last
			for b.Loop() {
				if bc.fresh {
					s.record(last)
				}
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

// BenchmarkReconcileUnderDashboardLoad reconciles the 10,000-workload
// repository again and again as serve's resyncs do (the same revision,
// runs unchanged, a pause between reconciles), in pairs: one reconcile
// alone, then one while pages are requested at 10 a second (the workloads
// page, the queues page and a filtered page in turn, from the pause
// before it on), so both of a pair see the same machine. It reports the
// median time of each (quiet-ms, loaded-ms: a reconcile with what the
// serve loop does after it, record the report) and the median of the
// pairs' ratios (loaded/quiet).
func BenchmarkReconcileUnderDashboardLoad(b *testing.B) {
	s := dashServer(b, 10000)
	h := s.handler(prometheus.NewRegistry())
	rev := reconcile.Revision{Name: "main@sha1:1", Commit: "1", FS: s.last.Revision.FS}
	var loaded atomic.Bool
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		paths := []string{"/", "/queues", "/?state=queued&page=3"}
		tick := time.NewTicker(time.Second / 10)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				if loaded.Load() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, paths[i%len(paths)], nil))
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	reconcileOnce := func() time.Duration {
		time.Sleep(500 * time.Millisecond) // the resync's pause: pages are drawn here under load
		start := time.Now()
		s.record(s.engine.ReconcileRevision(context.Background(), rev))
		return time.Since(start)
	}
	var quiet, busy, ratio []float64
	for b.Loop() {
		loaded.Store(false)
		q := reconcileOnce()
		loaded.Store(true)
		l := reconcileOnce()
		quiet, busy, ratio = append(quiet, float64(q)/1e6), append(busy, float64(l)/1e6), append(ratio, float64(l)/float64(q))
	}
	loaded.Store(false)
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(quiet), "quiet-ms")
	b.ReportMetric(median(busy), "loaded-ms")
	b.ReportMetric(median(ratio), "loaded/quiet")
}

// BenchmarkPagesBetweenReconciles is the dashboard's share of the CPU in
// one resync interval: a reconcile's report is recorded, then 20 requests
// come (10 pages a second for serve's 2 s resync), the workloads page, the
// queues page and a filtered page in turn; with the pages drawn once per
// reconcile and kept (cached) and drawn for every request (uncached).
// cpu-ms is the process's CPU time per interval; B/op what it allocated
// (what the garbage collector must then scan while the reconcile runs).
func BenchmarkPagesBetweenReconciles(b *testing.B) {
	s := dashServer(b, 10000)
	h := s.handler(prometheus.NewRegistry())
	last := s.last
	paths := []string{"/", "/queues", "/?state=queued&page=3"}
	for _, kept := range []int{0, 64} {
		name := "uncached"
		if kept > 0 {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			defer func(n int) { maxCachedPages = n }(maxCachedPages)
			maxCachedPages = kept
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				s.record(last) // a reconcile: the data is computed again
				for i := range 20 {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, paths[i%len(paths)], nil))
					if w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
