package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
)

// slowObserve is a cluster whose observation takes d on the scenario's
// clock.
type slowObserve struct {
	reconcile.Cluster
	s *scenario
	d time.Duration
}

func (c slowObserve) Observe(ctx context.Context, cfg *berth.Config) (*reconcile.Observed, error) {
	c.s.now = c.s.now.Add(c.d)
	return c.Cluster.Observe(ctx, cfg)
}

// A cluster's part of a reconcile is timed on the engine's clock, and the
// per-cluster histogram holds it, apart from the other clusters'.
func TestClusterReconcileDuration(t *testing.T) {
	s := newScenario(t)
	s.engine = reconcile.New(reconcile.Options{
		Clusters: []reconcile.Cluster{slowObserve{Cluster: s.cluster, s: s, d: 1500 * time.Millisecond}},
		Loader:   cue.NewLoader(cue.Options{}),
		Now:      func() time.Time { return s.now },
	})
	rep := s.reconcile(nil)
	if got := rep.Clusters[0].Took; got != 1500*time.Millisecond {
		t.Fatalf("box took %v, want the 1.5s its observation took", got)
	}
	reg := prometheus.NewRegistry()
	m := reconcile.NewMetrics(reg)
	m.Observe(rep, 2*time.Second)
	other := rep
	other.Clusters = []reconcile.ClusterReport{{Name: "lab", Took: 20 * time.Millisecond}}
	m.Observe(other, time.Second)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{} // cluster -> count, sum
	for _, f := range families {
		if f.GetName() != "berth_cluster_reconcile_duration_seconds" {
			continue
		}
		for _, mt := range f.Metric {
			h := mt.GetHistogram()
			got[mt.Label[0].GetValue()] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
		}
	}
	want := map[string][2]float64{"box": {1, 1.5}, "lab": {1, 0.02}}
	if len(got) != len(want) || got["box"] != want["box"] || got["lab"] != want["lab"] {
		t.Errorf("berth_cluster_reconcile_duration_seconds (count, sum) by cluster: %v, want %v", got, want)
	}
}
