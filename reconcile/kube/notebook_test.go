package kube_test

import (
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth/reconcile"
)

// TestNotebookOnKubernetes: a notebook that names no port and no command
// runs its image's Jupyter with a token of its own (a Secret berth
// creates once, owned by the notebook's Deployment, handed to the
// container as JUPYTER_TOKEN) behind a Service on 8888, and its run says
// where it is reached.
func TestNotebookOnKubernetes(t *testing.T) {
	s := newScenario(t, "nb", gpuNode())
	s.team(8, `
workloads: ml: explore: {kind: "notebook", image: "jupyter/base-notebook:2024-10", idle: "2h", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`)
	cr := s.until("the notebook runs", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/explore") == reconcile.PhaseRunning
	})
	ns := s.ns("ml")
	if u := run(cr, "ml/explore").URL; u != "http://explore."+ns+".svc:8888/" {
		t.Errorf("URL %q, want its Service's", u)
	}
	svc, err := s.env.Client.CoreV1().Services(ns).Get(s.ctx, "explore", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8888 {
		t.Errorf("Service ports %+v, want Jupyter's 8888", svc.Spec.Ports)
	}
	sec, err := s.env.Client.CoreV1().Secrets(ns).Get(s.ctx, "explore-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tok := string(sec.Data["token"]); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Errorf("token %q, want 64 hex digits", tok)
	}
	dep, err := s.env.Client.AppsV1().Deployments(ns).Get(s.ctx, "explore", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs := sec.OwnerReferences; len(refs) != 1 || refs[0].UID != dep.UID {
		t.Errorf("the token's owners %+v, want the Deployment (it goes with it)", refs)
	}
	var fromSecret bool
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "JUPYTER_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "explore-token" {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Error("the container is not given JUPYTER_TOKEN from the Secret")
	}
	before := s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Errorf("a second reconcile changes %+v (%d writes)", cr.Changes, s.writes.Load()-before)
	}
}
