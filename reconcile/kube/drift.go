package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// drifted reports whether applying obj would change the live object: the
// result of a server-side dry-run apply (defaults and admission included)
// against the object as it is, on labels, annotations and everything
// outside metadata and status. It is fluxcd/pkg/ssa's drift check
// (ResourceManager.Diff): ssa itself cannot be linked into berth, because
// it imports k8s.io/cli-runtime, whose kustomize imports Go's plugin
// package, and a binary that imports plugin is linked with -z now, which
// makes go-nvml's optional symbols fail at start-up ("symbol lookup error:
// undefined symbol: nvmlDeviceGetDramEncryptionMode").
func (c *Cluster) drifted(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(obj.GroupVersionKind())
	err := c.crc.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	dry := obj.DeepCopy()
	if err := c.crc.Patch(ctx, dry, client.Apply, client.DryRunAll, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("dry-run apply: %w", err)
	}
	if !apiequality.Semantic.DeepEqual(dry.GetLabels(), existing.GetLabels()) ||
		!apiequality.Semantic.DeepEqual(dry.GetAnnotations(), existing.GetAnnotations()) {
		return true, nil
	}
	a, b := dry.DeepCopy(), existing.DeepCopy()
	for _, u := range []*unstructured.Unstructured{a, b} {
		delete(u.Object, "metadata")
		delete(u.Object, "status")
	}
	return !apiequality.Semantic.DeepEqual(a.Object, b.Object), nil
}

// Drift compares what berth renders with a live object: every field berth
// sets must be there with the same value. Fields berth does not set (the
// API server's defaults, other managers' fields) are not compared. Lists
// of named items (containers, env, ports) are matched by name, other lists
// by position. It returns the first field that differs, or "".
func Drift(desired *unstructured.Unstructured, live map[string]any) string {
	for _, top := range []string{"metadata", "spec"} {
		d, ok := desired.Object[top]
		if !ok {
			continue
		}
		var lv any
		if live != nil {
			lv = live[top]
		}
		if top == "metadata" {
			dm := d.(map[string]any)
			lm, _ := lv.(map[string]any)
			for _, k := range []string{"labels", "annotations"} {
				if dv, ok := dm[k]; ok {
					var l any
					if lm != nil {
						l = lm[k]
					}
					if p := subset(dv, l, top+"."+k); p != "" {
						return p
					}
				}
			}
			continue
		}
		if p := subset(d, lv, top); p != "" {
			return p
		}
	}
	return ""
}

func subset(d, l any, path string) string {
	switch dv := d.(type) {
	case map[string]any:
		lv, ok := l.(map[string]any)
		if !ok {
			return path
		}
		keys := make([]string, 0, len(dv))
		for k := range dv {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p := subset(dv[k], lv[k], path+"."+k); p != "" {
				return p
			}
		}
		return ""
	case []any:
		lv, ok := l.([]any)
		if !ok {
			return path
		}
		for i, de := range dv {
			if name, ok := itemName(de); ok {
				found := false
				for _, le := range lv {
					if n, ok := itemName(le); ok && n == name {
						if p := subset(de, le, fmt.Sprintf("%s[%s]", path, name)); p != "" {
							return p
						}
						found = true
						break
					}
				}
				if !found {
					return fmt.Sprintf("%s[%s]", path, name)
				}
				continue
			}
			if i >= len(lv) {
				return fmt.Sprintf("%s[%d]", path, i)
			}
			if p := subset(de, lv[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
		// A list of plain values (command, args, node names) is berth's
		// whole: an extra value is drift.
		if len(dv) > 0 && !isMap(dv[0]) && len(lv) != len(dv) {
			return path
		}
		return ""
	default:
		if !scalarEqual(d, l) {
			return path
		}
		return ""
	}
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func itemName(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	n, ok := m["name"].(string)
	return n, ok
}

// scalarEqual compares numbers as numbers and quantities as quantities
// ("1Gi" and "1073741824" are the same memory).
func scalarEqual(d, l any) bool {
	if d == nil {
		return l == nil
	}
	if df, ok := number(d); ok {
		lf, ok := number(l)
		return ok && df == lf
	}
	ds, ok := d.(string)
	if !ok {
		return fmt.Sprint(d) == fmt.Sprint(l)
	}
	ls, ok := l.(string)
	if !ok {
		return false
	}
	if ds == ls {
		return true
	}
	dq, err1 := resource.ParseQuantity(ds)
	lq, err2 := resource.ParseQuantity(ls)
	return err1 == nil && err2 == nil && dq.Cmp(lq) == 0
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// liveMap converts a typed object for Drift.
func liveMap(obj runtime.Object) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil
	}
	return m
}

// runFromAnnotations rebuilds the Run berth rendered an object from, out of
// the annotations it wrote. false when they are missing or unreadable (an
// object of an older berth): such an object is not checked for drift.
func runFromAnnotations(a map[string]string) (Run, bool) {
	var w berth.Workload
	if err := json.Unmarshal([]byte(a[AnnotationSpec]), &w); err != nil || w.Name == "" {
		return Run{}, false
	}
	r := Run{
		Workload:    w,
		RunID:       a[AnnotationRunID],
		Digest:      a[AnnotationDigest],
		Path:        a[AnnotationPath],
		Commit:      a[AnnotationCommit],
		PullRequest: a[AnnotationPullRequest],
		Flavor:      a[AnnotationFlavor],
		Priority:    parseInt(a[AnnotationPriority]),
		Attempts:    parseInt(a[AnnotationAttempts]),
		QueuedSince: parseTime(a[AnnotationQueuedSince]),
		StartedAt:   parseTime(a[AnnotationStartedAt]),
		Phase:       reconcile.Phase(a[AnnotationPhase]),
		Reason:      a[AnnotationReason],
		StoppedAt:   parseTime(a[AnnotationStoppedAt]),
		Resume:      a[AnnotationResume] == "1",
	}
	if p := a[AnnotationPlacements]; p != "" {
		if err := json.Unmarshal([]byte(p), &r.Placements); err != nil {
			return Run{}, false
		}
	}
	if p := a[AnnotationInputs]; p != "" {
		if err := json.Unmarshal([]byte(p), &r.Inputs); err != nil {
			return Run{}, false
		}
	}
	if p := a[AnnotationRoles]; p != "" {
		if err := json.Unmarshal([]byte(p), &r.Roles); err != nil {
			return Run{}, false
		}
	}
	return r, true
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// flavorLabelsOf reads back the flavor's node labels from a live pod
// template's node affinity (single-value In expressions), for when the
// repository's flavors are not known.
func flavorLabelsOf(spec *corev1.PodSpec) map[string]string {
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	out := map[string]string{}
	// Every term carries the same labels: the first says them.
	if terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms; len(terms) > 0 {
		for _, e := range terms[0].MatchExpressions {
			if e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				out[e.Key] = e.Values[0]
			}
		}
	}
	return out
}

// replicasOwnedByOther reports whether a manager other than berth owns a
// Deployment's spec.replicas (an autoscaler, `kubectl scale`): berth then
// leaves replicas out of what it applies.
func replicasOwnedByOther(d *appsv1.Deployment) bool {
	for _, mf := range d.ManagedFields {
		if mf.Manager == FieldManager || mf.FieldsV1 == nil {
			continue
		}
		if strings.Contains(string(mf.FieldsV1.Raw), `"f:replicas"`) && ownsSpecReplicas(mf.FieldsV1.Raw) {
			return true
		}
	}
	return false
}

func ownsSpecReplicas(raw []byte) bool {
	var fs map[string]any
	if err := json.Unmarshal(raw, &fs); err != nil {
		return false
	}
	spec, ok := fs["f:spec"].(map[string]any)
	if !ok {
		return false
	}
	_, ok = spec["f:replicas"]
	return ok
}

// deploymentDrift renders a service's Deployment, Service and Ingress again
// from their annotations and compares them with the live objects. (An
// HTTPRoute is not watched: its kind may not exist on the cluster.)
func deploymentDrift(o RenderOptions, d *appsv1.Deployment, svc *corev1.Service, ing *networkingv1.Ingress, hpa *autoscalingv2.HorizontalPodAutoscaler, flavorLabels map[string]string) string {
	r, ok := runFromAnnotations(d.Annotations)
	if !ok {
		return ""
	}
	r.Started = true
	// The repository berth was started with may be spelt differently
	// today: what the object says is what it was rendered with.
	o.Repository = d.Annotations[AnnotationRepository]
	r.FlavorLabels = flavorLabels
	if r.FlavorLabels == nil {
		r.FlavorLabels = flavorLabelsOf(&d.Spec.Template.Spec)
	}
	r.OmitReplicas = replicasOwnedByOther(d)
	if hpa != nil {
		r.Scale = scaleOf(hpa.Annotations)
	}
	objs, err := Render(o, r)
	if err != nil {
		return ""
	}
	ingAsked := false
	for _, obj := range objs {
		var live map[string]any
		switch obj.GetKind() {
		case kindDeployment:
			live = liveMap(d)
		case kindService:
			if svc == nil {
				return "Service " + obj.GetName() + " is missing"
			}
			live = liveMap(svc)
		case kindIngress:
			if ing == nil {
				return "Ingress " + obj.GetName() + " is missing"
			}
			ingAsked, live = true, liveMap(ing)
		case kindHPA:
			if hpa == nil {
				return "HorizontalPodAutoscaler " + obj.GetName() + " is missing"
			}
			live = liveMap(hpa)
		default:
			continue
		}
		if p := Drift(obj, live); p != "" {
			return obj.GetKind() + " " + p
		}
	}
	if ing != nil && !ingAsked {
		// The cluster's ingress became a gateway, or went.
		return "Ingress " + ing.Name + " is no longer asked for"
	}
	return ""
}
