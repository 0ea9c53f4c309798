package reconcile_test

import (
	"context"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local"
)

// localRepo is a generated repository of teams and workloads whose flavors
// all live on the local cluster "box".
func localRepo(teams, workloads int) gen.Repo {
	repo := gen.Generate(gen.Options{Teams: teams, Workloads: workloads, Seed: 1})
	var lines []string
	for _, l := range strings.Split(string(repo["platform/flavors.cue"]), "\n") {
		// The one local node carries no pool labels.
		if strings.Contains(l, "nodeLabels") || strings.Contains(l, "topologyLabel") {
			continue
		}
		lines = append(lines, strings.ReplaceAll(l, `cluster: "prod"`, `cluster: "box"`))
	}
	repo["platform/flavors.cue"] = []byte(strings.Join(lines, "\n"))
	// Every workload runs something that exists here and keeps running.
	cmd := regexp.MustCompile(`command: \[[^\]]*\]`)
	for p, b := range repo {
		if strings.HasPrefix(p, "teams/") {
			repo[p] = cmd.ReplaceAll(b, []byte(`command: ["sleep", "600"]`))
		}
	}
	return repo
}

// BenchmarkReconcileUnchanged10k reconciles, again and again, a revision
// of 10,000 workloads in 200 teams that the local cluster has already
// applied: it must write nothing. It reports the heap in use after the
// first reconcile (berth's memory with 10,000 workloads).
func BenchmarkReconcileUnchanged10k(b *testing.B) {
	repo := localRepo(200, 10000)
	state := b.TempDir()
	c, err := local.New(local.Options{Name: "box", StateDir: state, SimulatedGPUs: "8xH100"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	defer killRuns(state)
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{})})
	rev := reconcile.Revision{Name: "main@sha1:1", Commit: "1", FS: repo.FS()}
	ctx := context.Background()
	first := e.ReconcileRevision(ctx, rev)
	if first.Invalid != nil || first.Clusters[0].Err != nil {
		b.Fatalf("first reconcile: %v %v", first.Invalid, first.Clusters[0].Err)
	}
	counts := map[string]int{}
	for _, d := range first.Clusters[0].Plan.Decisions {
		counts[string(d.Action)]++
	}
	b.Logf("first reconcile: %d changes; decisions %v", len(first.Clusters[0].Changes), counts)
	// Let processes that started settle: the runs the box admitted are real
	// processes; unchanged means nothing new to do for those that run.
	for i := 0; i < 3; i++ {
		e.ReconcileRevision(ctx, rev)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapInuse) / (1 << 20)
	b.ResetTimer()
	for b.Loop() {
		rep := e.ReconcileRevision(ctx, rev)
		if n := rep.Clusters[0].Writes(); n != 0 || len(rep.Clusters[0].Changes) != 0 {
			b.Fatalf("an unchanged revision changed %d things: %+v", n, rep.Clusters[0].Changes)
		}
	}
	b.ReportMetric(heap, "heap-MiB")
}
