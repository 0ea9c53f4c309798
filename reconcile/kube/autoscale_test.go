package kube_test

import (
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// TestAutoscaleWithinQuota: an autoscaled service gets a
// HorizontalPodAutoscaler whose max is the replicas berth admitted. The
// autoscaler asks for 5 (its status set here: there is no metrics server);
// the team's quota of 3 GPUs holds the service's minimum, one other run and
// one more replica: replica 2 is admitted (max 2), replicas 3-5 wait for
// quota. The autoscaler then scales the Deployment itself and berth leaves
// its replicas alone. When the other run leaves, replica 3 is admitted;
// when the autoscaler asks for 2 again, replica 3 stops and the waiting
// ones are dropped.
func TestAutoscaleWithinQuota(t *testing.T) {
	s := newScenario(t, "hpa", gpuNode())
	workloads := `
workloads: ml: web: {kind: "inference", image: "vllm:1", ports: [{name: "http", port: 8000}],
	autoscale: {min: 1, max: 6, targetRPS: 20}, resources: {gpu: 1, flavor: "h100"}}
workloads: ml: other: {kind: "service", image: "img:1", resources: {gpu: 1, flavor: "h100"}}
`
	s.team(3, workloads)
	s.until("web and other run", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/web").Holds() && phase(cr, "ml/other").Holds()
	})
	hpas := s.env.Client.AutoscalingV2().HorizontalPodAutoscalers(s.ns("ml"))
	hpa := func() *autoscalingv2.HorizontalPodAutoscaler {
		t.Helper()
		h, err := hpas.Get(s.ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := hpa()
	h.SetGroupVersionKind(autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	expect(t, h, map[string]string{
		"spec.scaleTargetRef": `{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}`,
		"spec.minReplicas":    "1", "spec.maxReplicas": "1",
		"spec.metrics": `[{"pods":{"metric":{"name":"http_requests_per_second"},"target":{"averageValue":"20","type":"AverageValue"}},"type":"Pods"}]`,
		"spec.behavior.scaleDown.stabilizationWindowSeconds": "300",
	})
	dep, err := s.env.Client.AppsV1().Deployments(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range dep.ManagedFields {
		if mf.Manager == "berth" && strings.Contains(mf.FieldsV1.GetRawString(), `"f:replicas"`) {
			t.Errorf("berth owns the autoscaled Deployment's replicas: %s", mf.FieldsV1.GetRawString())
		}
	}

	// The autoscaler asks for 5.
	desire := func(n int32) {
		t.Helper()
		for {
			h := hpa()
			h.Status.DesiredReplicas = n
			_, err := hpas.UpdateStatus(s.ctx, h, metav1.UpdateOptions{})
			if err == nil {
				return
			}
			if !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
	}
	desire(5)
	replica := func(n int) berth.RunKey { return berth.RunKey{Workload: "ml/web", RunID: berth.ScaleRunID("1", n)} }
	cr := s.until("replica 2 admitted, 3-5 waiting", time.Minute, func(cr reconcile.ClusterReport) bool {
		return runOf(cr, replica(2)).Phase.Holds() && hpa().Spec.MaxReplicas == 2
	})
	for n := 3; n <= 5; n++ {
		d := decisionOf(cr, replica(n))
		if d.Action != berth.ActionQueue || d.Reason == nil || d.Reason.Code != berth.ReasonQuota {
			t.Errorf("replica %d: %s %+v, want queued for quota", n, d.Action, d.Reason)
		}
		if r := runOf(cr, replica(n)); r.Phase != reconcile.PhaseQueued || r.QueuedSince.IsZero() {
			t.Errorf("replica %d as observed: %s since %v, want queued (the ledger keeps when)", n, r.Phase, r.QueuedSince)
		}
	}
	if d := decisionOf(cr, replica(3)); !strings.Contains(d.Reason.Message, "insufficient unused h100 quota in team ml") {
		t.Errorf("replica 3 waits: %q", d.Reason.Message)
	}

	// The autoscaler scales the Deployment to its max: berth leaves it.
	if _, err := s.env.Client.AppsV1().Deployments(s.ns("ml")).Patch(s.ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`),
		metav1.PatchOptions{FieldManager: "horizontal-pod-autoscaler"}, "scale"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	before := s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("with the autoscaler's replicas berth still changes %+v (%d writes)", cr.Changes, s.writes.Load()-before)
	}

	// other leaves Git: its GPU goes to replica 3, first in line.
	s.team(3, strings.Split(workloads, "\nworkloads: ml: other")[0]+"\n")
	s.until("replica 3 admitted", time.Minute, func(cr reconcile.ClusterReport) bool {
		return runOf(cr, replica(3)).Phase.Holds() && hpa().Spec.MaxReplicas == 3
	})

	// The autoscaler asks for 2: replica 3 stops, 4 and 5 no longer wait.
	desire(2)
	s.until("scaled down to 2", time.Minute, func(cr reconcile.ClusterReport) bool {
		return hpa().Spec.MaxReplicas == 2 && !runOf(cr, replica(3)).Phase.Holds()
	})
	cr = s.mustReconcile()
	for n := 4; n <= 5; n++ {
		if r := runOf(cr, replica(n)); r.Phase == reconcile.PhaseQueued {
			t.Errorf("replica %d still waits after the autoscaler asked for 2", n)
		}
	}
	if r := runOf(cr, replica(2)); !r.Phase.Holds() {
		t.Errorf("replica 2: %s, want it kept", r.Phase)
	}
	// What the scheduler charges: the minimum and replica 2, 1 GPU each.
	var gpus float64
	for _, d := range cr.Plan.Decisions {
		if d.Workload == "ml/web" && (d.Action == berth.ActionKeep || d.Action == berth.ActionAdmit) {
			gpus += d.GPUs
		}
	}
	if gpus != 2 {
		t.Errorf("web holds %v GPUs, want 2", gpus)
	}
}

// decisionOf is the plan's decision about a run.
func decisionOf(cr reconcile.ClusterReport, k berth.RunKey) berth.Decision {
	for _, d := range cr.Plan.Decisions {
		if d.Key() == k {
			return *d
		}
	}
	return berth.Decision{}
}

// runOf is the observed state of a run.
func runOf(cr reconcile.ClusterReport, k berth.RunKey) reconcile.RunState {
	if cr.Observed != nil {
		if r, ok := cr.Observed.Run(k); ok {
			return r
		}
	}
	return reconcile.RunState{}
}
