package kube_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// TestNotebookIdleOnKubernetes: three notebooks with an idle limit of an
// hour, an hour and a minute after they started. quiet's Jupyter never
// answered and nothing in its pod reports activity: it is stopped, its
// GPU freed, with the reason in its status, and it stays stopped (over)
// until its runId changes. busy's pod says it was active 40 minutes in
// (berth.dev/last-activity), and jupyter's server says so at 30 minutes:
// both run on. The clock and Jupyter's answers come from a second berth
// that only checks; the engine's own berth then sees the outcome.
func TestNotebookIdleOnKubernetes(t *testing.T) {
	s := newScenario(t, "idle", gpuNode())
	s.team(8, `
workloads: ml: quiet: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", resources: {gpu: 1, flavor: "h100"}}
workloads: ml: busy: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
workloads: ml: jupyter: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`)
	cr := s.until("the notebooks run", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/quiet") == reconcile.PhaseRunning && phase(cr, "ml/busy") == reconcile.PhaseRunning &&
			phase(cr, "ml/jupyter") == reconcile.PhaseRunning
	})
	started := run(cr, "ml/quiet").StartedAt
	for _, id := range []string{"ml/busy", "ml/jupyter"} {
		started = later(started, run(cr, id).StartedAt)
	}
	ns := s.ns("ml")
	for _, p := range s.pods("ml", "busy") {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, kube.AnnotationLastActivity, started.Add(40*time.Minute).Format(time.RFC3339))
		if _, err := s.env.Client.CoreV1().Pods(ns).Patch(s.ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	checker, err := kube.New(kube.Options{
		Name: "gpu", Config: s.env.Config, IdleCheckEvery: -1,
		Render: kube.RenderOptions{NamespacePrefix: s.name + "-"},
		Now:    func() time.Time { return started.Add(61 * time.Minute) },
		NotebookActivity: func(_ context.Context, nb kube.NotebookTarget) (time.Time, bool, error) {
			if nb.Workload == "ml/jupyter" && nb.Namespace == ns && nb.Service == "jupyter" && nb.Port == "http" {
				return started.Add(30 * time.Minute), true, nil
			}
			return time.Time{}, false, errors.New("no answer")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	stopped, err := checker.CheckIdle(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stopped, []berth.WorkloadID{"ml/quiet"}) {
		t.Fatalf("stopped %v, want ml/quiet only", stopped)
	}

	cr = s.mustReconcile()
	r := run(cr, "ml/quiet")
	if r.Phase != reconcile.PhaseStopped || !r.Over || !strings.HasPrefix(r.Reason, "idle for 1h1m") || !strings.Contains(r.Reason, "(limit 1h): stopped and its GPUs freed") {
		t.Errorf("quiet: %s over=%v %q, want stopped for being idle, over", r.Phase, r.Over, r.Reason)
	}
	for _, id := range []string{"ml/busy", "ml/jupyter"} {
		if p := phase(cr, id); p != reconcile.PhaseRunning {
			t.Errorf("%s: %s, want it running (it was active)", id, p)
		}
	}
	if _, err := s.env.Client.AppsV1().Deployments(ns).Get(s.ctx, "quiet", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("quiet's Deployment: %v, want it deleted", err)
	}
	if _, err := s.env.Client.CoreV1().Services(ns).Get(s.ctx, "quiet", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("quiet's Service: %v, want it deleted", err)
	}
	for _, d := range cr.Plan.Decisions {
		if d.Workload == "ml/quiet" && (d.Action == berth.ActionKeep || d.Action == berth.ActionAdmit) {
			t.Errorf("quiet still holds capacity in the plan: %s %v GPUs", d.Action, d.GPUs)
		}
	}
	if cr := s.mustReconcile(); len(cr.Changes) != 0 {
		t.Errorf("after the idle stop berth changes %+v; want quiet left stopped", cr.Changes)
	}

	// A new runId is a new run: it starts again.
	s.team(8, `
workloads: ml: quiet: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", runId: "2", resources: {gpu: 1, flavor: "h100"}}
workloads: ml: busy: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
workloads: ml: jupyter: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "1h", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`)
	s.until("quiet's run 2 runs", time.Minute, func(cr reconcile.ClusterReport) bool {
		r, _ := cr.Observed.Run(berth.RunKey{Workload: "ml/quiet", RunID: "2"})
		return r.Phase == reconcile.PhaseRunning
	})
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
