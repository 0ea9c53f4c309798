package kube_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// claimsOf is what a pod mounts: pod volume -> claim ("ephemeral" for a
// generic ephemeral volume).
func claimsOf(p corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out[v.Name] = v.PersistentVolumeClaim.ClaimName
		case v.Ephemeral != nil:
			out[v.Name] = "ephemeral"
		}
	}
	return out
}

// livePod is the workload's pod that has not ended, or fails the test.
func (s *scenario) livePod(team, workload string) corev1.Pod {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, p := range s.pods(team, workload) {
			if p.DeletionTimestamp == nil && p.Spec.NodeName != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return p
			}
		}
		s.mustReconcile()
		time.Sleep(100 * time.Millisecond)
	}
	var seen []string
	for _, p := range s.pods(team, workload) {
		why := ""
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				why += " " + string(c.Type) + ": " + c.Message
			}
		}
		seen = append(seen, fmt.Sprintf("%s on %q: %s%s (deleting: %v)", p.Name, p.Spec.NodeName, p.Status.Phase, why, p.DeletionTimestamp != nil))
	}
	s.t.Fatalf("%s/%s has no live pod; its pods: %v", team, workload, seen)
	return corev1.Pod{}
}

// newestPod is the pod of team/workload placed last, once it is another
// than the pod named before (waiting up to a minute for it).
func (s *scenario) newestPod(team, workload, before string) corev1.Pod {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var newest corev1.Pod
		for _, p := range s.pods(team, workload) {
			if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && !p.CreationTimestamp.Before(&newest.CreationTimestamp) {
				newest = p
			}
		}
		if newest.Name != "" && newest.Name != before {
			return newest
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s has no pod placed but %q", team, workload, before)
		}
		s.mustReconcile()
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCheckpointClaimSurvivesPreemption, on the real control plane with
// KWOK nodes: a training run mounts its own checkpoint claim, a dataset's
// existing claim (read-only), a team volume's claim berth makes, and
// scratch; preempted, it comes back on another node and its new pod mounts
// the same claim (the same object: same UID) with berth.dev/resume, which
// BERTH_RESUME reads. When it succeeds, its checkpoint claim and its pods'
// scratch claims go at berth's next reconciles, with no commit, and the
// team volume's stays.
func TestCheckpointClaimSurvivesPreemption(t *testing.T) {
	s := newScenario(t, "ckpt", gpuNode(), gpuNode())
	s.waitReadyNodes(2)
	low := `workloads: ml: low: {kind: "training", image: "img:1", priority: "low", env: BERTH_SIMULATED_DURATION: "30s",
	resources: {gpu: 8, flavor: "h100"}, checkpoint: dir: "/ckpt",
	volumes: {
		imagenet: {kind: "dataset", claim: "imagenet", mountPath: "/data"}
		shared: {kind: "team", size: "1Gi"}
		tmp: {kind: "scratch", size: "1Gi"}
	}}
`
	s.team(8, low)
	s.mustReconcile()
	// The dataset is someone else's claim, there before the run.
	_, err := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).Create(s.ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "imagenet"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.until("low runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/low") == reconcile.PhaseRunning })
	first := s.livePod("ml", "low")
	claim := "low-1-checkpoints"
	want := map[string]string{"berth-checkpoints": claim, "v-imagenet": "imagenet", "v-shared": "team-shared", "v-tmp": "ephemeral"}
	if got := claimsOf(first); !mapsEqual(got, want) {
		t.Fatalf("first pod mounts %v, want %v", got, want)
	}
	for _, v := range first.Spec.Volumes {
		if v.Name == "v-imagenet" && !v.PersistentVolumeClaim.ReadOnly {
			t.Error("the dataset's claim is mounted read-write")
		}
	}
	if first.Annotations[kube.AnnotationResume] != "" {
		t.Errorf("the first attempt's pod says resume (%q)", first.Annotations[kube.AnnotationResume])
	}
	if env := podEnvFrom(first, berth.EnvResume); env != "metadata.annotations['berth.dev/resume']" {
		t.Errorf("BERTH_RESUME comes from %q, want the pod's resume annotation", env)
	}
	pvc, err := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).Get(s.ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Preempted by a run of higher priority, while berth may no longer
	// place anything on the node it ran on: it comes back elsewhere.
	s.team(8, low+`workloads: ml: high: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 8, flavor: "h100"}}
`)
	if d := decision(s.mustReconcile(), "ml/high"); d.Action != berth.ActionPreempt {
		t.Fatalf("high: %s, want preempt", d.Action)
	}
	// Cordoned once high has its pod there.
	s.until("high runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/high") == reconcile.PhaseRunning })
	cordon := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := s.env.Client.CoreV1().Nodes().Patch(s.ctx, first.Spec.NodeName, types.MergePatchType, cordon, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	s.until("high succeeds and low runs again", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/high") == reconcile.PhaseSucceeded && phase(cr, "ml/low") == reconcile.PhaseRunning
	})
	// Its second pod may have run its 30 s out by now: the newest pod
	// placed is the one to look at.
	again := s.newestPod("ml", "low", first.Name)
	if again.Spec.NodeName == first.Spec.NodeName {
		t.Fatalf("low came back on %s, the node it was preempted on (cordoned)", again.Spec.NodeName)
	}
	if got := claimsOf(again); !mapsEqual(got, want) {
		t.Errorf("the resumed pod mounts %v, want %v", got, want)
	}
	if again.Annotations[kube.AnnotationResume] != "1" {
		t.Errorf("the resumed pod's %s = %q, want 1 (BERTH_RESUME=1)", kube.AnnotationResume, again.Annotations[kube.AnnotationResume])
	}
	if now, err := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).Get(s.ctx, claim, metav1.GetOptions{}); err != nil || now.UID != pvc.UID {
		t.Fatalf("checkpoint claim after the preemption: %v (uid %v, was %v): want the same claim", err, now.GetUID(), pvc.UID)
	}

	s.until("low succeeds", 3*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/low") == reconcile.PhaseSucceeded })
	// With no commit and no change due, berth's next reconciles fold the
	// run's end into the ledger and let its checkpoints and its pods'
	// scratch claims go: the storage of a run that ended is due, and the
	// engine applies for it.
	claims := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml"))
	deadline := time.Now().Add(time.Minute)
	for {
		s.mustReconcile()
		left := s.runClaims("low")
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claims of a run that succeeded are still there: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := claims.Get(s.ctx, "team-shared", metav1.GetOptions{}); err != nil {
		t.Errorf("the team volume's claim: %v, want it kept", err)
	}
	// Idempotent: the next reconcile has nothing to delete and writes
	// nothing.
	before := s.writes.Load()
	if cr := s.mustReconcile(); cr.Observed.Prunable != 0 || len(cr.Results) != 0 || s.writes.Load() != before {
		t.Errorf("a reconcile after the cleanup: %d to delete, %d results, %d writes; want none", cr.Observed.Prunable, len(cr.Results), s.writes.Load()-before)
	}
}

// runClaims are the claims of a workload's run that are not being
// deleted: its checkpoint claim, and its pods' scratch claims (the claim
// of a generic ephemeral volume is named after the pod).
func (s *scenario) runClaims(workload string) []string {
	s.t.Helper()
	list, err := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		if c.DeletionTimestamp == nil && strings.HasPrefix(c.Name, workload+"-1-") {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestKeptCheckpointsStay (real control plane): a run whose spec says
// checkpoint.keep keeps its claim after it succeeded, also once its
// workload has left Git; one that does not keep it loses it when it
// leaves Git, though it never ended.
func TestKeptCheckpointsStay(t *testing.T) {
	s := newScenario(t, "keep", gpuNode())
	s.waitReadyNodes(1)
	kept := `workloads: ml: kept: {kind: "training", image: "img:1", env: BERTH_SIMULATED_DURATION: "1s",
	resources: {cpu: 1, flavor: "cpu"}, checkpoint: {dir: "/ckpt", keep: true}}
`
	long := `workloads: ml: long: {kind: "training", image: "img:1", env: BERTH_SIMULATED_DURATION: "10m",
	resources: {cpu: 1, flavor: "cpu"}, checkpoint: dir: "/ckpt"}
`
	s.team(8, kept+long)
	s.until("kept succeeds and long runs", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/kept") == reconcile.PhaseSucceeded && phase(cr, "ml/long") == reconcile.PhaseRunning
	})
	for range 5 {
		s.mustReconcile()
	}
	if got := s.runClaims("kept"); len(got) != 1 || got[0] != "kept-1-checkpoints" {
		t.Errorf("kept's claims after it succeeded: %v, want its checkpoint claim", got)
	}
	// Both leave Git: long is stopped for good and its checkpoints go in
	// the same pass; kept's stay.
	s.team(8, "")
	deadline := time.Now().Add(time.Minute)
	for len(s.runClaims("long")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the checkpoint claim of a run that left Git is still there: %v", s.runClaims("long"))
		}
		s.mustReconcile()
		time.Sleep(200 * time.Millisecond)
	}
	if got := s.runClaims("kept"); len(got) != 1 {
		t.Errorf("kept's claims after it left Git: %v, want its checkpoint claim", got)
	}
}

func podEnvFrom(p corev1.Pod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPipelineOutputsOnKubernetes, on the real control plane: prepare's
// run has an outputs claim mounted at /berth/outputs; train, which reads
// it, mounts that claim read-only at /berth/inputs/prepare; once
// prepare's retention has passed after it succeeded, the claim goes at
// berth's next reconcile.
func TestPipelineOutputsOnKubernetes(t *testing.T) {
	s := newScenario(t, "pipe", gpuNode())
	pipeline := `workloads: ml: prepare: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "1s",
	resources: {cpu: 1, flavor: "cpu"}, outputs: {retention: "2s", size: "1Gi"}}
workloads: ml: train: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "1s",
	resources: {cpu: 1, flavor: "cpu"}, dependsOn: ["prepare"], inputs: ["prepare"]}
`
	s.team(8, pipeline)
	s.until("train succeeds", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/train") == reconcile.PhaseSucceeded })
	mounts := func(workload string) map[string]string {
		pods := s.pods("ml", workload)
		if len(pods) == 0 {
			t.Fatalf("%s has no pod", workload)
		}
		out := map[string]string{}
		for _, m := range pods[0].Spec.Containers[0].VolumeMounts {
			for _, v := range pods[0].Spec.Volumes {
				if v.Name == m.Name && v.PersistentVolumeClaim != nil {
					out[m.MountPath] = v.PersistentVolumeClaim.ClaimName
					if m.ReadOnly != v.PersistentVolumeClaim.ReadOnly {
						t.Errorf("%s mounts %s with readOnly %v, claim readOnly %v", workload, m.MountPath, m.ReadOnly, v.PersistentVolumeClaim.ReadOnly)
					}
					if m.ReadOnly {
						out[m.MountPath] += " (read-only)"
					}
				}
			}
		}
		return out
	}
	if got, want := mounts("prepare"), map[string]string{"/berth/outputs": "prepare-1-outputs"}; !mapsEqual(got, want) {
		t.Errorf("prepare mounts %v, want %v", got, want)
	}
	if got, want := mounts("train"), map[string]string{"/berth/inputs/prepare": "prepare-1-outputs (read-only)"}; !mapsEqual(got, want) {
		t.Errorf("train mounts %v, want %v", got, want)
	}
	// Past the retention, a reconcile lets the outputs go, with no commit
	// and no change due.
	time.Sleep(2 * time.Second)
	deadline := time.Now().Add(time.Minute)
	for {
		s.mustReconcile()
		c, err := s.env.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).Get(s.ctx, "prepare-1-outputs", metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && c.DeletionTimestamp != nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prepare's outputs claim is still there past its retention (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
