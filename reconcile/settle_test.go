package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/reconcile"
)

// TestPlanSettles: when nothing changes (no commit, no run ends), the
// cluster converges within a few reconciles (reclaims and fair-share
// preemptions correct the first cycles' allocation), and then stays put:
// no preemption back and forth. A generated repository with cohorts,
// fair sharing, reclaiming and lowerOrNewerEqualPriority, on a cluster too
// small for it.
func TestPlanSettles(t *testing.T) {
	repo := gen.Generate(gen.Options{Teams: 10, Workloads: 1000, Seed: 1})
	var nodes []berth.Node
	add := func(prefix string, n int, b func(*build.NodeBuilder) *build.NodeBuilder) {
		for i := range n {
			nodes = append(nodes, b(build.Node(fmt.Sprintf("%s-%02d", prefix, i))).Obj())
		}
	}
	add("h100", 40, func(b *build.NodeBuilder) *build.NodeBuilder {
		return b.GPUs(8, "NVIDIA-H100-80GB-HBM3").Label("berth.dev/pool", "h100").Label("topology.kubernetes.io/rack", "r1")
	})
	add("a100", 40, func(b *build.NodeBuilder) *build.NodeBuilder {
		return b.GPUs(8, "NVIDIA-A100-SXM4-40GB").Label("berth.dev/pool", "a100")
	})
	add("mig", 20, func(b *build.NodeBuilder) *build.NodeBuilder {
		b = b.GPUs(8, "NVIDIA-H100-80GB-HBM3").Label("berth.dev/pool", "h100-1g")
		for g := range 8 {
			b = b.MIG(g, "1g.10gb", 7)
		}
		return b
	})
	add("cpu", 20, func(b *build.NodeBuilder) *build.NodeBuilder { return b.Label("berth.dev/pool", "cpu") })
	now := build.T0
	cluster := fake.NewCluster("prod", nodes...)
	cluster.Now = func() time.Time { return now }
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{cluster}, Loader: cue.NewLoader(cue.Options{}),
		Now: func() time.Time { return now }})
	rev := reconcile.Revision{Name: "main@sha1:1", Commit: "1", FS: repo.FS()}
	settled := -1
	for i := range 30 {
		now = now.Add(10 * time.Second)
		rep := e.ReconcileRevision(context.Background(), rev)
		c := rep.Clusters[0]
		if rep.Invalid != nil || c.Err != nil {
			t.Fatalf("reconcile %d: %v %v", i, rep.Invalid, c.Err)
		}
		counts := map[reconcile.Op]int{}
		var preempts []string
		for _, ch := range c.Changes {
			counts[ch.Op]++
			if ch.Decision.Action == berth.ActionPreempt {
				preempts = append(preempts, fmt.Sprintf("%s preempts %v", ch.Workload.ID(), victimIDs(ch.Decision)))
			}
		}
		t.Logf("reconcile %d: %v", i, counts)
		if len(c.Changes) == 0 && settled < 0 {
			settled = i
		}
		if settled >= 0 && len(c.Changes) > 0 || i == 10 && settled < 0 {
			for _, p := range preempts {
				t.Log(p)
			}
			for _, ch := range c.Changes {
				if ch.Op == reconcile.OpStop {
					t.Logf("stop %s: %s", ch.Workload.ID(), ch.Reason)
				}
			}
			t.Fatalf("reconcile %d changes %d things with nothing new (settled at %d)", i, len(c.Changes), settled)
		}
	}
}

func victimIDs(d berth.Decision) []string {
	var out []string
	for _, v := range d.Victims {
		out = append(out, string(v.Workload))
	}
	return out
}
