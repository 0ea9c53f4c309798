package kube_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// TestNodeLostRequeues (real control plane): a running Job's KWOK node
// stops being ready (KWOK lets go of it, its Ready condition turns False);
// past the cluster's nodeLostAfter berth requeues the run as a preemption
// naming the node, and starts it again on the other node: the same Job,
// no retry used (attempt 1, no failures), its queued-since kept.
func TestNodeLostRequeues(t *testing.T) {
	s := newScenario(t, "nodelost", gpuNode(), gpuNode())
	s.files["platform/clusters.cue"] = `package platform
clusters: gpu: {backend: "kubernetes", nodeLostAfter: "2s"}
`
	s.team(16, `
workloads: ml: train: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "10m", resources: {gpu: 8, flavor: "h100"}, retries: 0}
`)
	s.waitReadyNodes(2)
	cr := s.until("train runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/train") == reconcile.PhaseRunning })
	before := run(cr, "ml/train")
	var lost string
	for _, p := range s.pods("ml", "train") {
		if p.Spec.NodeName != "" {
			lost = p.Spec.NodeName
		}
	}
	if lost == "" {
		t.Fatal("the running Job has no pod on a node")
	}

	s.loseNode(lost)

	cr = s.until("train is requeued for its node", time.Minute, func(cr reconcile.ClusterReport) bool {
		r := run(cr, "ml/train")
		return r.Phase == reconcile.PhasePreempted || (r.Phase.Holds() && r.Placements[0].Node != lost)
	})
	// (The reconcile that observes it preempted may start it again at
	// once: the Job is then already the new one.)
	if r := run(cr, "ml/train"); r.Phase == reconcile.PhasePreempted && !strings.Contains(r.Reason, "node "+lost+" not ready since") {
		t.Errorf("requeued: %q; want preempted naming node %s", r.Reason, lost)
	}
	cr = s.until("train runs on the other node", time.Minute, func(cr reconcile.ClusterReport) bool {
		r := run(cr, "ml/train")
		return r.Phase == reconcile.PhaseRunning && len(r.Placements) > 0 && r.Placements[0].Node != lost
	})
	r := run(cr, "ml/train")
	if r.Attempts != before.Attempts || r.Failures() != 0 || !r.QueuedSince.Equal(before.QueuedSince) {
		t.Errorf("after the move: attempt %d (was %d), %d failures, queued since %v (was %v); want the same attempt, none, its place kept",
			r.Attempts, before.Attempts, r.Failures(), r.QueuedSince, before.QueuedSince)
	}
	if j := s.job("train-1"); j.Annotations[kube.AnnotationPhase] != "" || strings.Contains(j.Annotations[kube.AnnotationPlacements], lost) {
		t.Errorf("the running Job still says %v", j.Annotations)
	}
	if d := decision(cr, "ml/train"); d.Action != berth.ActionKeep {
		t.Errorf("decision after the move: %s", d.Action)
	}
	running := 0
	for _, p := range s.pods("ml", "train") {
		if p.Spec.NodeName != lost && p.Status.Phase == corev1.PodRunning {
			running++
		}
	}
	if running != 1 {
		t.Errorf("%d pods run on the other node, want 1", running)
	}
}

// loseNode makes a KWOK node NotReady as a node whose kubelet died: KWOK
// stops managing it, and its Ready condition turns False now.
func (s *scenario) loseNode(name string) {
	s.t.Helper()
	nodes := s.env.Client.CoreV1().Nodes()
	n, err := nodes.Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	n.Annotations[testenv.AnnotationKWOKNode] = "lost"
	if n, err = nodes.Update(s.ctx, n, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = corev1.ConditionFalse
			n.Status.Conditions[i].Reason = "KubeletStopped"
			n.Status.Conditions[i].LastTransitionTime = metav1.Now()
			n.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
		}
	}
	if _, err := nodes.UpdateStatus(s.ctx, n, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// TestNodeLostResumesFromCheckpoint (real control plane), end to end: a
// training run with a checkpoint runs on a KWOK node, and a run of the
// same priority queued after it waits for the team's quota. The node
// turns NotReady; past nodeLostAfter berth requeues the run without using
// a retry, and it keeps its place: it, not the later run, is admitted
// again, on the other node. Its new pod mounts the same claim (same UID),
// carries berth's resume mark, and, started as its container would be
// with the claim holding checkpoints, gets BERTH_RESUME=1 and the newest
// as BERTH_RESUME_FROM.
func TestNodeLostResumesFromCheckpoint(t *testing.T) {
	s := newScenario(t, "lostckpt", gpuNode(), gpuNode())
	s.files["platform/clusters.cue"] = `package platform
clusters: gpu: {backend: "kubernetes", nodeLostAfter: "2s"}
`
	train := `workloads: ml: train: {kind: "training", image: "img:1", command: ["env"], env: BERTH_SIMULATED_DURATION: "10m",
	resources: {gpu: 8, flavor: "h100"}, checkpoint: dir: "/ckpt", retries: 1}
`
	s.team(8, train)
	s.waitReadyNodes(2)
	cr := s.until("train runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/train") == reconcile.PhaseRunning })
	before := run(cr, "ml/train")
	first := s.livePod("ml", "train")
	claims := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml"))
	claim, err := claims.Get(s.ctx, "train-1-checkpoints", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.team(8, train+`workloads: ml: later: {kind: "training", image: "img:1", env: BERTH_SIMULATED_DURATION: "10m", resources: {gpu: 8, flavor: "h100"}}
`)
	if cr := s.mustReconcile(); decision(cr, "ml/later").Action != berth.ActionQueue {
		t.Fatalf("later: %s, want it queued behind train", decision(cr, "ml/later").Action)
	}

	s.loseNode(first.Spec.NodeName)
	cr = s.until("train runs on the other node", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		r := run(cr, "ml/train")
		return r.Phase == reconcile.PhaseRunning && len(r.Placements) > 0 && r.Placements[0].Node != first.Spec.NodeName
	})
	r := run(cr, "ml/train")
	if r.Attempts != before.Attempts || r.Failures() != 0 || !r.QueuedSince.Equal(before.QueuedSince) {
		t.Errorf("after the node loss: attempt %d (was %d), %d failures, queued since %v (was %v); want no retry used and its place kept",
			r.Attempts, before.Attempts, r.Failures(), r.QueuedSince, before.QueuedSince)
	}
	if p := phase(cr, "ml/later"); p != reconcile.PhaseQueued {
		t.Errorf("later is %s, want still queued behind train", p)
	}
	var again corev1.Pod
	for _, p := range s.pods("ml", "train") {
		if p.Spec.NodeName != "" && p.Spec.NodeName != first.Spec.NodeName && p.DeletionTimestamp == nil {
			again = p
		}
	}
	if again.Name == "" {
		t.Fatal("train has no pod on the other node")
	}
	if got := claimsOf(again)["berth-checkpoints"]; got != claim.Name {
		t.Errorf("the new pod mounts %q as its checkpoints, want %s", got, claim.Name)
	}
	if now, err := claims.Get(s.ctx, claim.Name, metav1.GetOptions{}); err != nil || now.UID != claim.UID || now.DeletionTimestamp != nil {
		t.Errorf("the checkpoint claim after the node loss: %v (uid %v, was %v), want the same claim, kept", err, now.GetUID(), claim.UID)
	}
	if again.Annotations[kube.AnnotationResume] != "1" {
		t.Errorf("the new pod's %s = %q, want 1", kube.AnnotationResume, again.Annotations[kube.AnnotationResume])
	}
	dir := t.TempDir()
	for _, name := range []string{"step-100", "step-200"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "step-100"), old, old); err != nil {
		t.Fatal(err)
	}
	env := startContainer(t, again.Spec.Containers[0], dir)
	if env[berth.EnvResume] != "1" || env[berth.EnvResumeFrom] != filepath.Join(dir, "step-200") {
		t.Errorf("the new pod's process gets BERTH_RESUME=%q BERTH_RESUME_FROM=%q, want 1 and the newest checkpoint", env[berth.EnvResume], env[berth.EnvResumeFrom])
	}
}
