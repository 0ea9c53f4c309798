package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Builders for Kubernetes test objects, Kueue-style.

type jobB struct{ j *batchv1.Job }

func job() *jobB {
	return &jobB{&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Annotations: map[string]string{}},
		Spec: batchv1.JobSpec{Suspend: ptr.To(false), BackoffLimit: ptr.To(int32(1)), ActiveDeadlineSeconds: ptr.To(int64(7200))}}}
}
func (b *jobB) suspended() *jobB { b.j.Spec.Suspend = ptr.To(true); return b }
func (b *jobB) annotate(k, v string) *jobB {
	b.j.Annotations[k] = v
	return b
}
func (b *jobB) cond(t batchv1.JobConditionType, reason, msg string) *jobB {
	b.j.Status.Conditions = append(b.j.Status.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(t0)})
	return b
}
func (b *jobB) failed(n int32) *jobB { b.j.Status.Failed = n; return b }
func (b *jobB) obj() *batchv1.Job    { return b.j }

type podB struct{ p *corev1.Pod }

func pod(phase corev1.PodPhase) *podB {
	return &podB{&corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: phase}}}
}
func (b *podB) terminated(reason string, code int32) *podB {
	b.p.Status.ContainerStatuses = append(b.p.Status.ContainerStatuses, corev1.ContainerStatus{
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}})
	return b
}
func (b *podB) waiting(reason, msg string) *podB {
	b.p.Status.ContainerStatuses = append(b.p.Status.ContainerStatuses, corev1.ContainerStatus{
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}})
	return b
}
func (b *podB) condition(t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) *podB {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg})
	return b
}
func (b *podB) evicted(msg string) *podB {
	b.p.Status.Reason, b.p.Status.Message = ReasonEvicted, msg
	return b
}
func (b *podB) obj() *corev1.Pod { return b.p }

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func TestJobState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		job    *batchv1.Job
		pods   []*corev1.Pod
		phase  reconcile.Phase
		reason string
	}{
		{"queued", job().suspended().obj(), nil, reconcile.PhaseQueued, ""},
		{"preempted", job().suspended().annotate(AnnotationPhase, "preempted").annotate(AnnotationReason, "preempted by a/b").obj(), nil,
			reconcile.PhasePreempted, "preempted by a/b"},
		{"admitted, unschedulable", job().obj(),
			[]*corev1.Pod{pod(corev1.PodPending).condition(corev1.PodScheduled, corev1.ConditionFalse, corev1.PodReasonUnschedulable, "0/2 nodes are available").obj()},
			reconcile.PhaseAdmitted, "Unschedulable: 0/2 nodes are available"},
		{"admitted, image pull", job().obj(),
			[]*corev1.Pod{pod(corev1.PodPending).waiting("ImagePullBackOff", "Back-off pulling image \"x\"\nmore").obj()},
			reconcile.PhaseAdmitted, `ImagePullBackOff: Back-off pulling image "x"`},
		{"running", job().obj(), []*corev1.Pod{pod(corev1.PodRunning).obj(), pod(corev1.PodPending).obj()}, reconcile.PhaseRunning, ""},
		{"succeeded", job().cond(batchv1.JobComplete, "", "").obj(), nil, reconcile.PhaseSucceeded, ""},
		{"OOMKilled", job().failed(2).cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "").obj(),
			[]*corev1.Pod{pod(corev1.PodFailed).terminated("OOMKilled", 137).obj(), pod(corev1.PodFailed).terminated("OOMKilled", 137).obj()},
			reconcile.PhaseFailed, "OOMKilled (2 pods failed)"},
		{"exit code", job().failed(1).cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "").obj(),
			[]*corev1.Pod{pod(corev1.PodFailed).terminated("Error", 2).obj()}, reconcile.PhaseFailed, "exit code 2"},
		{"deadline", job().cond(batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline").obj(), nil,
			reconcile.PhaseFailed, "DeadlineExceeded: ran longer than its maxDuration (2h0m0s)"},
		{"evicted", job().failed(1).cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "").obj(),
			[]*corev1.Pod{pod(corev1.PodFailed).evicted("The node was low on resource: memory.").obj()},
			reconcile.PhaseFailed, "Evicted: The node was low on resource: memory."},
		{"preempted by the kube-scheduler", job().failed(1).cond(batchv1.JobFailed, batchv1.JobReasonPodFailurePolicy, "").obj(),
			[]*corev1.Pod{pod(corev1.PodFailed).condition(corev1.DisruptionTarget, corev1.ConditionTrue, "PreemptionByScheduler", "").obj()},
			reconcile.PhaseFailed, "Preempted: by the kube-scheduler"},
		{"no pod left to say why", job().cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit").obj(), nil,
			reconcile.PhaseFailed, "BackoffLimitExceeded: Job has reached the specified backoff limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := JobState(tc.job, tc.pods)
			if st.Phase != tc.phase || st.Reason != tc.reason {
				t.Errorf("JobState = %s %q, want %s %q", st.Phase, st.Reason, tc.phase, tc.reason)
			}
		})
	}
}

func TestNodeFromKube(t *testing.T) {
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	node := func(alloc corev1.ResourceList, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{LabelGPUProduct: "NVIDIA-H100-80GB-HBM3", "pool": "a"}},
			Spec:       corev1.NodeSpec{Taints: taints},
			Status: corev1.NodeStatus{Allocatable: alloc,
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
		}
	}
	base := corev1.ResourceList{corev1.ResourceCPU: q("128"), corev1.ResourceMemory: q("1Ti")}
	with := func(extra map[string]string) corev1.ResourceList {
		l := base.DeepCopy()
		for k, v := range extra {
			l[corev1.ResourceName(k)] = q(v)
		}
		return l
	}
	o := RenderOptions{GPUToleration: true}
	for _, tc := range []struct {
		name          string
		node          *corev1.Node
		gpus          int
		mig           []berth.MIGSlices
		unschedulable bool
	}{
		{"whole GPUs", node(with(map[string]string{"nvidia.com/gpu": "8"})), 8, []berth.MIGSlices{}, false},
		{"mixed MIG", node(with(map[string]string{"nvidia.com/gpu": "6", "nvidia.com/mig-1g.10gb": "9", "nvidia.com/mig-3g.40gb": "2"})), 9,
			[]berth.MIGSlices{{GPU: 6, Profile: "1g.10gb", Count: 7}, {GPU: 7, Profile: "1g.10gb", Count: 2}, {GPU: 8, Profile: "3g.40gb", Count: 2}}, false},
		{"shares only", node(with(map[string]string{"nvidia.com/gpu.shared": "40"})), 4, []berth.MIGSlices{}, false},
		{"unknown MIG profile", node(with(map[string]string{"nvidia.com/mig-9g.1tb": "1"})), 0, []berth.MIGSlices{}, false},
		{"GPU taint tolerated", node(with(map[string]string{"nvidia.com/gpu": "8"}), corev1.Taint{Key: ResourceGPU, Effect: corev1.TaintEffectNoSchedule}), 8, []berth.MIGSlices{}, false},
		{"other taint", node(base, corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}), 0, []berth.MIGSlices{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NodeFromKube(tc.node, o)
			if n.GPUs != tc.gpus || n.Unschedulable != tc.unschedulable || !n.Ready || n.GPUModel != "NVIDIA-H100-80GB-HBM3" {
				t.Errorf("node: %d GPUs, unschedulable %v, ready %v, model %q", n.GPUs, n.Unschedulable, n.Ready, n.GPUModel)
			}
			if d := cmp.Diff(tc.mig, n.MIG); d != "" {
				t.Errorf("MIG (-want +got):\n%s", d)
			}
			if n.CPU.String() != "128" || n.Memory.String() != "1Ti" || n.Labels["pool"] != "a" {
				t.Errorf("cpu %s memory %s labels %v", n.CPU, n.Memory, n.Labels)
			}
		})
	}
}

func TestObservedPlacements(t *testing.T) {
	p := func(node string, gpus ...int) berth.Placement { return berth.Placement{Node: node, GPUs: gpus} }
	decided := []berth.Placement{p("a", 0), p("a", 1), p("b", 4)}
	for _, tc := range []struct {
		name  string
		nodes []string
		want  []berth.Placement
	}{
		{"as decided", []string{"a", "a", "b"}, decided},
		{"none bound yet", nil, decided},
		{"one bound", []string{"b"}, []berth.Placement{p("b", 4), p("a", 0), p("a", 1)}},
		{"the kube-scheduler chose c for one", []string{"a", "b", "c"}, []berth.Placement{p("a", 0), p("b", 4), p("c", 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, observedPlacements(decided, tc.nodes)); d != "" {
				t.Errorf("placements (-want +got):\n%s", d)
			}
		})
	}
}
