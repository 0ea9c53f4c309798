package kube_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
	"github.com/berth-gpu/berth/status"
)

// TestSecretKeyMissingHoldsTheRun (real control plane): a run whose env
// names a Secret that is missing, or lacks the key, is not started: its
// Job stays suspended with no pod, the change fails with a SecretError,
// and the run's status says why. Once the key is there it starts, its pod
// reads the key through a secretKeyRef, and the value is in no object
// berth wrote (the Job, the ledger ConfigMap) nor in its report.
func TestSecretKeyMissingHoldsTheRun(t *testing.T) {
	s := newScenario(t, "secret", gpuNode())
	s.team(8, `
workloads: ml: fetch: {kind: "batch", image: "img:1", resources: {gpu: 1, flavor: "h100"}
	env: {BERTH_SIMULATED_DURATION: "2s", HF_TOKEN: secret: {name: "hf", key: "token"}}
}
`)
	refused := func(want string) {
		t.Helper()
		rep := s.reconcile()
		cr := rep.Clusters[0]
		var se *reconcile.SecretError
		var found bool
		for _, r := range cr.Results {
			if r.Change.Workload.ID() == "ml/fetch" && r.Change.Op == reconcile.OpStart {
				found = true
				if !errors.As(r.Err, &se) || !strings.Contains(se.Error(), want) {
					t.Fatalf("start of ml/fetch: %v, want a SecretError saying %q", r.Err, want)
				}
				if !strings.HasPrefix(se.Error(), "env HF_TOKEN (workloads/ml/ml.cue:") {
					t.Errorf("start of ml/fetch: %q, want it to say where HF_TOKEN is written (file:line:col)", se.Error())
				}
			}
		}
		if !found {
			t.Fatalf("no start of ml/fetch:\n%s", runsText(cr))
		}
		j := s.job("fetch-1")
		if j.Spec.Suspend == nil || !*j.Spec.Suspend || len(s.pods("ml", "fetch")) > 0 {
			t.Fatalf("the run started: suspend %v, %d pods", j.Spec.Suspend, len(s.pods("ml", "fetch")))
		}
		if got := j.Annotations[kube.AnnotationNotStarted]; !strings.Contains(got, want) {
			t.Errorf("the Job says %q, want %q", got, want)
		}
		// The next look at the cluster reports it: admitted, with why it
		// did not start.
		cr = s.reconcile().Clusters[0]
		for _, ws := range status.Workloads("gpu", cr.Plan, cr.Observed.Runs) {
			if ws.Workload == "ml/fetch" && (ws.State != "admitted" || !strings.Contains(ws.Reason, want)) {
				t.Errorf("status of ml/fetch: %s %q, want admitted saying %q", ws.State, ws.Reason, want)
			}
		}
	}
	refused("no Secret hf; create it (kubectl create secret generic hf -n secret-ml --from-literal=token=...)")

	const value = "hf_kube-s3cr3t-94127"
	secrets := s.env.Client.CoreV1().Secrets(s.ns("ml"))
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf"}, StringData: map[string]string{"other": "x"}}
	if _, err := secrets.Create(s.ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	refused("Secret hf has no key token (its keys: other)")

	sec.StringData = map[string]string{"other": "x", "token": value}
	if _, err := secrets.Update(s.ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := s.until("fetch runs", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/fetch").Holds() || phase(cr, "ml/fetch") == reconcile.PhaseSucceeded
	})
	j := s.job("fetch-1")
	if _, ok := j.Annotations[kube.AnnotationNotStarted]; ok {
		t.Errorf("the started Job still says it did not start: %v", j.Annotations)
	}
	var ref *corev1.SecretKeySelector
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "HF_TOKEN" && e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	if ref == nil || ref.Name != "hf" || ref.Key != "token" {
		t.Errorf("HF_TOKEN is not a secretKeyRef to hf/token: %+v", j.Spec.Template.Spec.Containers[0].Env)
	}
	cms, err := s.env.Client.CoreV1().ConfigMaps(s.ns("ml")).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []any{j, cms, runsText(cr)} {
		b, _ := json.Marshal(obj)
		if strings.Contains(string(b), value) {
			t.Errorf("the secret's value is in %T", obj)
		}
	}
}
