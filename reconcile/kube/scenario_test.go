package kube_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// expect checks fields of a live object, by dotted path ("spec.template.
// spec.containers.0.image"), against their values printed with %v.
func expect(t *testing.T, obj runtime.Object, want map[string]string) {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := obj.(metav1.Object)
	for path, w := range want {
		var cur any = m
		for _, part := range splitPath(path) {
			switch x := cur.(type) {
			case map[string]any:
				cur = x[part]
			case []any:
				var i int
				fmt.Sscan(part, &i)
				if i < len(x) {
					cur = x[i]
				} else {
					cur = nil
				}
			default:
				cur = nil
			}
		}
		got := fmt.Sprint(cur)
		if b, err := json.Marshal(cur); err == nil && (strings.HasPrefix(string(b), "[") || strings.HasPrefix(string(b), "{")) {
			got = string(b)
		}
		if got != w {
			t.Errorf("%s %s: %s = %s, want %s", obj.GetObjectKind().GroupVersionKind().Kind, meta.GetName(), path, got, w)
		}
	}
}

// splitPath splits at dots outside brackets: annotation keys keep theirs
// ("metadata.annotations.[berth.dev/run-id]").
func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == '.' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// TestDemo applies the demo repository: the objects carry exactly what the
// workloads say; a second reconcile sends the API server no write; the
// pipeline runs to completion on KWOK GPU nodes and berth reports each step
// succeeded; a finished Job that is deleted is never run again.
func TestDemo(t *testing.T) {
	s := newScenario(t, "demo", gpuNode(), migNode())
	cr := s.mustReconcile()
	cfg, _, _ := s.engine.LastConfig()
	obs, err := s.cluster.Observe(s.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	after := reconcile.ClusterReport{Observed: obs, Plan: cr.Plan}
	nodes := map[string]bool{}
	for _, n := range obs.Snapshot.Nodes {
		if n.Labels["berth.dev/pool"] == "demo" {
			nodes[n.Name] = true
		}
	}
	if len(nodes) != 2 {
		t.Fatalf("berth sees %d of the test's nodes, want 2", len(nodes))
	}
	for id, want := range map[string]reconcile.Phase{
		"nlp/prepare-data": reconcile.PhaseAdmitted, "vision/resnet-train": reconcile.PhaseAdmitted,
		"serving/chat-api": reconcile.PhaseAdmitted, "serving/docs-site": reconcile.PhaseAdmitted,
		"vision/label-notebook": reconcile.PhaseAdmitted, "nlp/finetune": "",
	} {
		if got := phase(after, id); got != want && !(want == reconcile.PhaseAdmitted && got == reconcile.PhaseRunning) {
			t.Errorf("%s: %q after the first reconcile, want %q\n%s", id, got, want, runsText(after))
		}
	}

	cs := s.env.Client
	get := func(kind, team, name string) runtime.Object {
		t.Helper()
		var obj runtime.Object
		var err error
		ns := s.ns(team)
		switch kind {
		case "Job":
			obj, err = cs.BatchV1().Jobs(ns).Get(s.ctx, name, metav1.GetOptions{})
		case "Deployment":
			obj, err = cs.AppsV1().Deployments(ns).Get(s.ctx, name, metav1.GetOptions{})
		case "Service":
			obj, err = cs.CoreV1().Services(ns).Get(s.ctx, name, metav1.GetOptions{})
		case "Ingress":
			obj, err = cs.NetworkingV1().Ingresses(ns).Get(s.ctx, name, metav1.GetOptions{})
		case "ResourceQuota":
			obj, err = cs.CoreV1().ResourceQuotas(ns).Get(s.ctx, name, metav1.GetOptions{})
		case "Namespace":
			obj, err = cs.CoreV1().Namespaces().Get(s.ctx, ns, metav1.GetOptions{})
		}
		if err != nil {
			t.Fatalf("%s %s/%s: %v", kind, ns, name, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk(kind))
		return obj
	}
	pinned := func(id string) string {
		d := decision(cr, id)
		seen := map[string]bool{}
		var ns []string
		for _, p := range d.Placements {
			if !seen[p.Node] {
				seen[p.Node] = true
				ns = append(ns, p.Node)
			}
		}
		slices.Sort(ns)
		var terms []string
		for _, n := range ns {
			terms = append(terms, `{"matchExpressions":[{"key":"berth.dev/pool","operator":"In","values":["demo"]}],"matchFields":[{"key":"metadata.name","operator":"In","values":["`+n+`"]}]}`)
		}
		return "[" + strings.Join(terms, ",") + "]"
	}
	affinity := "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
	expect(t, get("Namespace", "vision", ""), map[string]string{
		"metadata.labels.[app.kubernetes.io/managed-by]": "berth", "metadata.labels.[berth.dev/team]": "vision",
	})
	expect(t, get("ResourceQuota", "vision", kube.QuotaName), map[string]string{
		"spec.hard.[requests.nvidia.com/gpu]": "5", "spec.hard.[requests.nvidia.com/mig-1g.10gb]": "7",
		"spec.hard.[requests.cpu]": "64", "spec.hard.[requests.memory]": "576Gi",
	})
	expect(t, get("Job", "nlp", "prepare-data-1"), map[string]string{
		"metadata.labels.[app.kubernetes.io/managed-by]": "berth",
		"metadata.annotations.[berth.dev/commit]":        "main@sha1:c1",
		"metadata.annotations.[berth.dev/path]":          "workloads/nlp/pipeline.cue:7:17",
		"metadata.annotations.[berth.dev/repository]":    "https://git.example.com/acme/gpu-platform",
		"metadata.annotations.[berth.dev/run-id]":        "1",
		"metadata.annotations.[berth.dev/spec-digest]":   berth.SpecDigest(s.workload("nlp/prepare-data")),
		"metadata.finalizers":                            `["berth.dev/ledger"]`,
		"spec.suspend":                                   "false",
		"spec.parallelism":                               "1",
		"spec.completions":                               "1",
		"spec.backoffLimit":                              "0",
		"spec.activeDeadlineSeconds":                     "1800",
		"spec.template.spec.restartPolicy":               "Never",
		"spec.template.spec.containers.0.image":          "ghcr.io/acme/pytorch:2.4",
		"spec.template.spec.containers.0.resources":      `{"limits":{"memory":"8Gi"},"requests":{"cpu":"4","memory":"8Gi"}}`,
		affinity: pinned("nlp/prepare-data"),
	})
	expect(t, get("Job", "vision", "resnet-train-1"), map[string]string{
		"spec.suspend": "false", "spec.completionMode": "Indexed", "spec.completions": "2", "spec.parallelism": "2",
		"spec.backoffLimit": "2", "spec.activeDeadlineSeconds": "7200",
		"spec.template.spec.subdomain":                     "resnet-train-1",
		"spec.template.spec.containers.0.resources.limits": `{"memory":"64Gi","nvidia.com/gpu":"1"}`,
		affinity: pinned("vision/resnet-train"),
	})
	expect(t, get("Service", "vision", "resnet-train-1"), map[string]string{
		"spec.clusterIP": "None", "spec.ports.0.port": "29500", "spec.publishNotReadyAddresses": "true",
	})
	expect(t, get("Deployment", "serving", "chat-api"), map[string]string{
		"spec.replicas": "2",
		"spec.template.spec.containers.0.resources.limits":                   `{"memory":"16Gi","nvidia.com/gpu.shared":"5"}`,
		"spec.template.spec.containers.0.readinessProbe.httpGet.path":        "/healthz",
		"spec.template.spec.containers.0.readinessProbe.httpGet.port":        "http",
		"spec.template.spec.containers.0.readinessProbe.initialDelaySeconds": "<nil>",
		"spec.template.spec.containers.0.startupProbe":                       "<nil>",
		"spec.strategy.rollingUpdate":                                        `{"maxSurge":1,"maxUnavailable":0}`,
		"metadata.annotations.[berth.dev/path]":                              "workloads/serving/services.cue:6:21",
	})
	expect(t, get("Service", "serving", "chat-api"), map[string]string{
		"spec.type": "ClusterIP", "spec.ports.0.port": "8080", "spec.ports.0.targetPort": "http",
		"spec.selector": `{"app.kubernetes.io/managed-by":"berth","berth.dev/workload":"chat-api"}`,
	})
	expect(t, get("Ingress", "serving", "chat-api"), map[string]string{
		"spec.ingressClassName":                     "nginx",
		"spec.rules.0.host":                         "chat.acme.example",
		"spec.rules.0.http.paths.0.backend.service": `{"name":"chat-api","port":{"name":"http"}}`,
	})
	// docs-site: its two named ports, a liveness check with a start-up
	// grace (a startup probe of grace / period + threshold checks), and its
	// rollout, as the API server keeps them.
	expect(t, get("Deployment", "serving", "docs-site"), map[string]string{
		"spec.replicas":                                 "2",
		"spec.strategy.rollingUpdate":                   `{"maxSurge":2,"maxUnavailable":1}`,
		"spec.template.spec.containers.0.ports":         `[{"containerPort":8080,"name":"http","protocol":"TCP"},{"containerPort":9090,"name":"metrics","protocol":"TCP"}]`,
		"spec.template.spec.containers.0.livenessProbe": `{"failureThreshold":3,"periodSeconds":20,"successThreshold":1,"tcpSocket":{"port":"http"},"timeoutSeconds":1}`,
		"spec.template.spec.containers.0.startupProbe":  `{"failureThreshold":6,"periodSeconds":20,"successThreshold":1,"tcpSocket":{"port":"http"},"timeoutSeconds":1}`,
	})
	expect(t, get("Service", "serving", "docs-site"), map[string]string{
		"spec.ports": `[{"name":"http","port":8080,"protocol":"TCP","targetPort":"http"},{"name":"metrics","port":9090,"protocol":"TCP","targetPort":"metrics"}]`,
	})
	expect(t, get("Deployment", "vision", "label-notebook"), map[string]string{
		"spec.template.spec.containers.0.resources.limits": `{"memory":"8Gi","nvidia.com/mig-1g.10gb":"1"}`,
	})
	if _, err := cs.BatchV1().Jobs(s.ns("nlp")).Get(s.ctx, "finetune-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("finetune waits for prepare-data, but its Job exists (err %v)", err)
	}

	// An unchanged state sends the API server no write.
	before := s.writes.Load()
	cr = s.mustReconcile()
	if len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("the second reconcile wrote %d times; changes %+v", s.writes.Load()-before, cr.Changes)
	}

	// The pipeline runs on the KWOK nodes: each step succeeds, the next
	// starts, berth reports it.
	cr = s.until("the nlp pipeline succeeded", 3*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "nlp/evaluate") == reconcile.PhaseSucceeded
	})
	for _, id := range []string{"nlp/prepare-data", "nlp/finetune", "nlp/evaluate"} {
		if r := run(cr, id); r.Phase != reconcile.PhaseSucceeded || r.Attempts != 1 || r.FinishedAt.IsZero() {
			t.Errorf("%s: %+v, want succeeded after one attempt", id, r)
		}
	}
	for _, id := range []string{"serving/chat-api", "serving/docs-site", "vision/label-notebook", "vision/resnet-train"} {
		if p := phase(cr, id); p != reconcile.PhaseRunning {
			t.Errorf("%s: %s, want running\n%s", id, p, runsText(cr))
		}
	}

	// Deleting a finished Job (a TTL, a person) does not make it run
	// again: the ledger keeps its end, and berth lets it go once recorded.
	if err := cs.BatchV1().Jobs(s.ns("nlp")).Delete(s.ctx, "prepare-data-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.set(map[string]string{"workloads/serving/extra.cue": `package serving
workloads: serving: extra: {kind: "service", image: "nginx:1.27", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`})
	cr = s.mustReconcile()
	if _, err := cs.BatchV1().Jobs(s.ns("nlp")).Get(s.ctx, "prepare-data-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the deleted Job is still there once its end was recorded (err %v)", err)
	}
	cr = s.mustReconcile()
	if r := run(cr, "nlp/prepare-data"); r.Phase != reconcile.PhaseSucceeded || r.Attempts != 1 {
		t.Errorf("prepare-data after its Job was deleted: %+v, want succeeded (from the ledger)", r)
	}
	if d := decision(cr, "nlp/prepare-data"); d.Action != berth.ActionDone {
		t.Errorf("prepare-data: %s, want done", d.Action)
	}
	if _, err := cs.BatchV1().Jobs(s.ns("nlp")).Get(s.ctx, "prepare-data-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("prepare-data ran again (err %v)", err)
	}

	// `berth snapshot`'s format: the observed state passes the schema.
	snap := cr.Observed.Snapshot
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cue.LoadSnapshot("snapshot.json", b); err != nil {
		t.Fatalf("the observed snapshot does not load: %v\n%s", err, b)
	}
}

func gvk(kind string) schema.GroupVersionKind {
	switch kind {
	case "Job":
		return batchv1.SchemeGroupVersion.WithKind(kind)
	case "Deployment":
		return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
	case "Ingress":
		return schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: kind}
	}
	return corev1.SchemeGroupVersion.WithKind(kind)
}

// workload is the spec of a workload in the scenario's repository.
func (s *scenario) workload(id string) berth.Workload {
	s.t.Helper()
	cfg, err := cue.Load(s.repo(), cue.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg.Workloads[berth.WorkloadID(id)]
}

// editDeployment changes a Deployment as `kubectl edit` does: a strategic
// merge patch under another field manager.
func (s *scenario) editDeployment(team, name, patch string) {
	s.t.Helper()
	_, err := s.env.Client.AppsV1().Deployments(s.ns(team)).Patch(s.ctx, name, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		s.t.Fatal(err)
	}
}
