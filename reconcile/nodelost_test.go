package reconcile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/reconcile"
)

// TestNodeLostRequeues: a run whose node stays not ready is kept through
// the cluster's nodeLostAfter (5 minutes by default), then requeued as a
// preemption by nobody (the reason names the node), and started again on
// a node that is ready: the same run, its queued-since kept (its place in
// the queue), no retry used. A node that disappears loses its runs at
// once.
func TestNodeLostRequeues(t *testing.T) {
	s := &scenario{t: t, now: build.T0, reporter: &fake.Reporter{}}
	a := build.Node("a").GPUs(8, "NVIDIA H100 80GB HBM3").MIG(7, "1g.10gb", 7)
	b := build.Node("b").GPUs(8, "NVIDIA H100 80GB HBM3")
	s.cluster = fake.NewCluster("box", a.Obj(), b.Obj())
	s.cluster.Now = func() time.Time { return s.now }
	s.engine = reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{s.cluster},
		Loader: cue.NewLoader(cue.Options{}), Reporter: s.reporter, Now: func() time.Time { return s.now }})
	s.reconcile(nil)
	const id = "vision/resnet-train"
	first, _ := s.cluster.Run(id, "1")
	if first.Phase != reconcile.PhaseRunning {
		t.Fatalf("%s: %s, want running", id, first.Phase)
	}
	node := first.Placements[0].Node
	other := "b"
	if node == "b" {
		other = "a"
	}
	lost := build.Node(node).GPUs(8, "NVIDIA H100 80GB HBM3")
	if node == "a" {
		lost = lost.MIG(7, "1g.10gb", 7)
	}
	s.cluster.SetNode(lost.NotReadySince(s.now.Add(time.Minute)).Obj())

	// Within the grace: kept.
	s.now = s.now.Add(5 * time.Minute)
	rep := s.reconcile(nil)
	if d, _ := rep.Clusters[0].Plan.Decision(id); d.Action != berth.ActionKeep {
		t.Fatalf("4 minutes not ready: %s %+v, want keep", d.Action, d.Reason)
	}

	// Past it: requeued, saying why.
	s.now = s.now.Add(2 * time.Minute)
	rep = s.reconcile(nil)
	d, _ := rep.Clusters[0].Plan.Decision(id)
	if d.Action != berth.ActionPreempted || d.Reason == nil || d.Reason.Code != berth.ReasonNodeLost ||
		!strings.Contains(d.Reason.Message, "node "+node+" not ready since 2026-") {
		t.Fatalf("6 minutes not ready: %s %+v, want preempted for NodeLost", d.Action, d.Reason)
	}
	if r, _ := s.cluster.Run(id, "1"); r.Phase != reconcile.PhasePreempted || !strings.HasPrefix(r.Reason, "preempted: node "+node) {
		t.Fatalf("after the grace: %s %q, want preempted for the lost node", r.Phase, r.Reason)
	}

	// Started again elsewhere: the same attempt count of failures (none),
	// the same place in the queue.
	s.now = s.now.Add(time.Second)
	s.reconcile(nil)
	r, _ := s.cluster.Run(id, "1")
	if r.Phase != reconcile.PhaseRunning || r.Failures() != 0 || r.Attempts != 2 || !r.QueuedSince.Equal(first.QueuedSince) {
		t.Fatalf("resumed: %s, attempt %d, %d failures, queued since %v (was %v); want running, 0 failures, its place kept",
			r.Phase, r.Attempts, r.Failures(), r.QueuedSince, first.QueuedSince)
	}
	for _, p := range r.Placements {
		if p.Node != other {
			t.Errorf("resumed on %s, want %s (the ready node)", p.Node, other)
		}
	}

	// A node that is gone loses its runs at once.
	s.cluster.RemoveNode(other)
	s.cluster.SetNode(build.Node(node).GPUs(8, "NVIDIA H100 80GB HBM3").Obj())
	s.now = s.now.Add(time.Second)
	rep = s.reconcile(nil)
	if d, _ := rep.Clusters[0].Plan.Decision(id); d.Action != berth.ActionPreempted || !strings.Contains(d.Reason.Message, "node "+other+" is gone") {
		t.Fatalf("node gone: %s %+v, want preempted for NodeLost", d.Action, d.Reason)
	}
}
