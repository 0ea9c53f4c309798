package kube

import (
	"encoding/json"
	"slices"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
)

// The metrics a HorizontalPodAutoscaler reads for a target come from the
// cluster's autoscaleMetrics (RenderOptions.Metrics; by default
// berth.DefaultAutoscaleMetrics: a per-pod request rate and NVIDIA DCGM's
// GPU utilisation, as prometheus-adapter over the service's own metrics
// and dcgm-exporter name them). The cluster must serve them through the
// custom or external metrics API; without it the autoscaler keeps the
// replicas it has.

// AnnotationScale lists, on a service's HorizontalPodAutoscaler, the
// replicas above the minimum berth admitted (ScaleReplica, JSON): the
// autoscaler's maxReplicas is the minimum plus how many there are.
const AnnotationScale = "berth.dev/scale"

// ScaleReplica is one replica of an autoscaled service above its minimum
// that berth admitted: a run of its own (berth.ScaleRunID), charged to the
// team's quota where the scheduler placed it.
type ScaleReplica struct {
	N          int               `json:"n"`
	Flavor     string            `json:"flavor,omitempty"`
	Placements []berth.Placement `json:"placements,omitempty"`
	StartedAt  time.Time         `json:"startedAt"`
}

// renderHPA is an autoscaled service's HorizontalPodAutoscaler: it scales
// the Deployment (which berth then leaves its replicas to) between the
// autoscale's min and the replicas berth admitted, so the autoscaler never
// runs a replica that is not within the team's quota. When it wants more,
// it says so in its status (desiredReplicas, or ScalingLimited at its
// max), and berth decides the next replica like any other run.
func renderHPA(o RenderOptions, r Run) *autoscalingv2.HorizontalPodAutoscaler {
	w := r.Workload
	a := w.Autoscale
	if a == nil {
		return nil
	}
	meta := metav1.ObjectMeta{
		Name: DeploymentName(w.ID()), Namespace: Namespace(o.NamespacePrefix, w.Team),
		Labels: runLabels(r), Annotations: gitAnnotations(o, r),
	}
	scale := slices.Clone(r.Scale)
	slices.SortFunc(scale, func(a, b ScaleReplica) int { return a.N - b.N })
	b, _ := json.Marshal(scale)
	meta.Annotations[AnnotationScale] = string(b)
	min := int32(max(a.Min, 1))
	h := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: kindHPA},
		ObjectMeta: meta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: kindDeployment, Name: meta.Name},
			MinReplicas:    ptr.To(min),
			MaxReplicas:    min + int32(len(scale)),
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To(int32(a.ScaleDownWindow.D().Seconds())),
			}},
		},
	}
	m := o.Metrics
	if a.TargetRPS > 0 {
		h.Spec.Metrics = append(h.Spec.Metrics, metricSpec(m.RequestsPerSecond, *resource.NewMilliQuantity(int64(a.TargetRPS*1000), resource.DecimalSI), w))
	}
	if a.TargetGPUUtilization > 0 {
		h.Spec.Metrics = append(h.Spec.Metrics, metricSpec(m.GPUUtilization, *resource.NewQuantity(int64(a.TargetGPUUtilization), resource.DecimalSI), w))
	}
	return h
}

// metricSpec is the autoscaler's metric for a target of target per
// replica: a Pods metric, or an External one selected by the service's
// pods' labels (the run label left out: a restart keeps the metric).
func metricSpec(src berth.MetricSource, target resource.Quantity, w berth.Workload) autoscalingv2.MetricSpec {
	t := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(target)}
	if src.Type == berth.MetricExternal {
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: w.Team, LabelWorkload: w.Name}}
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: src.Name, Selector: sel}, Target: t}}
	}
	return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: src.Name}, Target: t}}
}

// scaleOf reads the replicas berth admitted from a HorizontalPodAutoscaler's
// annotation.
func scaleOf(a map[string]string) []ScaleReplica {
	var out []ScaleReplica
	if s := a[AnnotationScale]; s != "" {
		_ = json.Unmarshal([]byte(s), &out)
	}
	return out
}

// scaleWant is how many replicas a HorizontalPodAutoscaler asks for: its
// desired count, or, held at its max (ScalingLimited: TooManyReplicas),
// one more than it may have, so berth decides the next replica; the
// autoscaler then asks again.
func scaleWant(h *autoscalingv2.HorizontalPodAutoscaler) int {
	want := int(h.Status.DesiredReplicas)
	for _, c := range h.Status.Conditions {
		if c.Type == autoscalingv2.ScalingLimited && c.Status == "True" && c.Reason == "TooManyReplicas" && want >= int(h.Spec.MaxReplicas) {
			want = int(h.Spec.MaxReplicas) + 1
		}
	}
	return want
}
