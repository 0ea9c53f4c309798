package kube

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-gpu/berth/reconcile"
)

// Reasons berth reports, as the Kubernetes components name them where they
// have a name.
const (
	ReasonOOMKilled        = "OOMKilled"
	ReasonDeadlineExceeded = "DeadlineExceeded"
	ReasonEvicted          = "Evicted"
	ReasonPreempted        = "Preempted"
	ReasonJobDeleted       = "JobDeleted"
)

// waitingReasons are container waiting reasons worth telling a person.
var waitingReasons = map[string]bool{
	"ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true, "CrashLoopBackOff": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// jobState is a run's phase as its Job and pods say, why (for a failed or
// stuck run), and when it ended.
type jobState struct {
	Phase      reconcile.Phase
	Reason     string
	FinishedAt time.Time
	// Failed pods the Job controller counted (each a used attempt).
	Failed int
}

// JobState derives a run's phase from its Job and the Job's pods:
//   - Complete: succeeded; Failed: failed, with the reason (OOMKilled, exit
//     code N, DeadlineExceeded, Evicted, Preempted);
//   - suspended by berth for a preemption or a stop: that phase, with the
//     reason berth recorded; otherwise suspended: queued;
//   - unsuspended: running once a pod runs, admitted before (with the reason
//     a pod is stuck: ImagePullBackOff, Unschedulable, ...).
func JobState(job *batchv1.Job, pods []*corev1.Pod) jobState {
	st := jobState{Failed: int(job.Status.Failed)}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.Phase = reconcile.PhaseSucceeded
			st.FinishedAt = c.LastTransitionTime.Time
			if job.Status.CompletionTime != nil {
				st.FinishedAt = job.Status.CompletionTime.Time
			}
			return st
		case batchv1.JobFailed:
			st.Phase = reconcile.PhaseFailed
			st.FinishedAt = c.LastTransitionTime.Time
			st.Reason = failureReason(job, c, pods)
			return st
		}
	}
	a := job.Annotations
	if p := reconcile.Phase(a[AnnotationPhase]); p == reconcile.PhasePreempted || p == reconcile.PhaseStopped || p == reconcile.PhaseFailed {
		st.Phase = p
		st.Reason = a[AnnotationReason]
		st.FinishedAt, _ = time.Parse(time.RFC3339, a[AnnotationStoppedAt])
		return st
	}
	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		st.Phase = reconcile.PhaseQueued
		st.Reason = a[AnnotationNotStarted]
		return st
	}
	st.Phase = reconcile.PhaseAdmitted
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded {
			st.Phase = reconcile.PhaseRunning
		}
	}
	st.Reason = podsReason(pods)
	return st
}

func failureReason(job *batchv1.Job, c batchv1.JobCondition, pods []*corev1.Pod) string {
	switch c.Reason {
	case batchv1.JobReasonDeadlineExceeded:
		if d := job.Spec.ActiveDeadlineSeconds; d != nil {
			return fmt.Sprintf("%s: ran longer than its maxDuration (%v)", ReasonDeadlineExceeded, time.Duration(*d)*time.Second)
		}
		return ReasonDeadlineExceeded
	}
	var reasons []string
	seen := map[string]bool{}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodFailed {
			continue
		}
		if r := podReason(p); r != "" && !seen[r] {
			seen[r] = true
			reasons = append(reasons, r)
		}
	}
	slices.Sort(reasons)
	switch {
	case len(reasons) > 0:
		s := strings.Join(reasons, "; ")
		if n := job.Status.Failed; n > 1 {
			s += fmt.Sprintf(" (%d pods failed)", n)
		}
		return s
	case c.Message != "":
		return c.Reason + ": " + c.Message
	}
	return c.Reason
}

// podsReason is the first telling reason among pods that have not run
// (sorted, so it does not depend on the order pods were listed in).
func podsReason(pods []*corev1.Pod) string {
	var reasons []string
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if r := podReason(p); r != "" {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	slices.Sort(reasons)
	return reasons[0]
}

// podReason says why a pod failed or is stuck: OOMKilled, an exit code,
// an eviction or preemption, an image that cannot be pulled, or why it
// cannot be scheduled.
func podReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			if c.Reason == "PreemptionByScheduler" {
				return ReasonPreempted + ": by the kube-scheduler"
			}
			return ReasonEvicted + ": " + c.Reason
		}
	}
	if p.Status.Reason == ReasonEvicted {
		return ReasonEvicted + ": " + firstLine(p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && (t.Reason == ReasonOOMKilled || t.ExitCode != 0) {
			if t.Reason == ReasonOOMKilled {
				return ReasonOOMKilled
			}
			return fmt.Sprintf("exit code %d", t.ExitCode)
		}
		if w := cs.State.Waiting; w != nil && waitingReasons[w.Reason] {
			if t := cs.LastTerminationState.Terminated; w.Reason == "CrashLoopBackOff" && t != nil && t.Reason == ReasonOOMKilled {
				return "CrashLoopBackOff: OOMKilled"
			}
			return w.Reason + ": " + firstLine(w.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "Unschedulable: " + firstLine(c.Message)
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// DeploymentState is a service's phase: running once kstatus finds its
// Deployment Current (every replica updated and available), admitted
// before, with the reason its pods are stuck or kstatus's message.
func DeploymentState(d *appsv1.Deployment, pods []*corev1.Pod) (reconcile.Phase, string) {
	obj := d.DeepCopy()
	obj.APIVersion, obj.Kind = "apps/v1", "Deployment"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return reconcile.PhaseAdmitted, err.Error()
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		return reconcile.PhaseAdmitted, err.Error()
	}
	if r := podsReason(pods); r != "" {
		return phaseOf(res.Status), r
	}
	if res.Status == status.CurrentStatus {
		return reconcile.PhaseRunning, ""
	}
	return phaseOf(res.Status), res.Message
}

func phaseOf(s status.Status) reconcile.Phase {
	if s == status.CurrentStatus {
		return reconcile.PhaseRunning
	}
	return reconcile.PhaseAdmitted
}
