package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

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
		if raw := mf.FieldsV1.GetRawBytes(); strings.Contains(string(raw), `"f:replicas"`) && ownsSpecReplicas(raw) {
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

// serviceDrift renders a service's Deployment, Service, Ingress and
// HorizontalPodAutoscaler again from the Deployment's annotations (and the
// autoscaler's) and asks fluxcd/pkg/ssa whether applying them would
// change the live objects (a server-side dry-run apply compared with each
// object as it is: labels, annotations and everything outside metadata
// and status). It names the first object and field that would change:
// "Deployment /spec/template/spec/containers/0/image", or "Service
// chat-api is missing"; "" when nothing would. A Deployment of an earlier
// berth without the annotations is not checked. (An HTTPRoute is not
// checked: its kind may not exist on the cluster, and berth does not
// watch it.)
func (c *Cluster) serviceDrift(ctx context.Context, o RenderOptions, d *appsv1.Deployment, ing *networkingv1.Ingress, hpa *autoscalingv2.HorizontalPodAutoscaler, flavorLabels map[string]string) (string, error) {
	r, ok := runFromAnnotations(d.Annotations)
	if !ok {
		return "", nil
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
		return "", nil
	}
	ingAsked := false
	for _, obj := range objs {
		switch obj.GetKind() {
		case kindDeployment, kindService:
		case kindIngress:
			ingAsked = true
		case kindHPA:
		default:
			continue
		}
		drift, err := c.diffObject(ctx, obj)
		if drift != "" || err != nil {
			return drift, err
		}
	}
	if ing != nil && !ingAsked {
		// The cluster's ingress became a gateway, or went.
		return "Ingress " + ing.Name + " is no longer asked for", nil
	}
	return "", nil
}

// diffObject is ssa's Diff of one object: "" when applying it would change
// nothing, else what would change. ssa reads the object, then dry-runs
// the apply: an object that another writer changed in between (the
// Deployment controller writes its revision annotation as a rollout
// starts) would look drifted, so a result whose live and dry-run
// resourceVersions differ is made again, and after three such tries is an
// error (the caller asks again at its next Observe).
func (c *Cluster) diffObject(ctx context.Context, obj *unstructured.Unstructured) (string, error) {
	for range 3 {
		e, live, merged, err := c.ssa.Diff(ctx, obj, ssa.DefaultDiffOptions())
		if err != nil {
			return "", err
		}
		switch e.Action {
		case ssa.CreatedAction:
			return obj.GetKind() + " " + obj.GetName() + " is missing", nil
		case ssa.ConfiguredAction:
			if live.GetResourceVersion() != merged.GetResourceVersion() {
				continue
			}
			return obj.GetKind() + " " + firstChange(live, merged), nil
		}
		return "", nil
	}
	return "", fmt.Errorf("%s %s/%s: changed while it was compared, three times", obj.GetKind(), obj.GetNamespace(), obj.GetName())
}

// firstChange is the first path (a JSON pointer, in sorted order) at which
// the dry-run result differs from the live object, or "metadata" when
// only labels or annotations do.
func firstChange(live, merged *unstructured.Unstructured) string {
	patch, err := jsondiff.DiffUnstructured(live, merged)
	if err != nil || len(patch) == 0 {
		return "metadata"
	}
	paths := make([]string, len(patch))
	for i, op := range patch {
		paths[i] = op.Path
	}
	return slices.Min(paths)
}
