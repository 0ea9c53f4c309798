package kube_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/berth-gpu/berth/reconcile"
)

var (
	gatewayOnce sync.Once
	gatewayErr  string
)

// installGatewayAPI applies Gateway API's HTTPRoute CRD, as the module
// berth builds against ships it, to the shared control plane (once).
func installGatewayAPI(t *testing.T) {
	t.Helper()
	testenvSkip(t)
	gatewayOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
		if err != nil {
			gatewayErr = "go list -m sigs.k8s.io/gateway-api: " + err.Error()
			return
		}
		crd := filepath.Join(strings.TrimSpace(string(out)), "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml")
		// Server-side: the CRD is larger than client-side apply's
		// last-applied annotation may be.
		for _, args := range [][]string{{"apply", "--server-side", "-f", crd},
			{"wait", "--for", "condition=established", "--timeout", "60s", "crd/httproutes.gateway.networking.k8s.io"}} {
			cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kenv.Kubeconfig}, args...)...)
			if b, err := cmd.CombinedOutput(); err != nil {
				gatewayErr = "kubectl " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(b)
				return
			}
		}
	})
	if gatewayErr != "" {
		t.Fatal(gatewayErr)
	}
}

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// TestExposeIngressAndRoute: a service exposed on a host gets an Ingress
// as the cluster's ingress says (class, TLS, annotations), applied once
// and put back when someone deletes it; when the cluster's ingress names a
// gateway instead, an HTTPRoute attached to it replaces the Ingress; the
// service leaving Git takes its route with it.
func TestExposeIngressAndRoute(t *testing.T) {
	installGatewayAPI(t)
	s := newScenario(t, "expose", gpuNode())
	web := `
workloads: ml: web: {kind: "service", image: "nginx:1.27", ports: [{name: "http", port: 80}, {name: "metrics", port: 9090}],
	expose: {host: "web.acme.example", port: "http"}, resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`
	ingressCluster := `package platform
clusters: gpu: {backend: "kubernetes", ingress: {className: "nginx", tls: {}, annotations: "cert-manager.io/cluster-issuer": "letsencrypt"}}
`
	s.set(map[string]string{"platform/clusters.cue": ingressCluster})
	s.team(8, web)
	// Once every replica is ready, the run says where it is reached.
	s.until("web runs, reached at its host", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/web") == reconcile.PhaseRunning && run(cr, "ml/web").URL == "https://web.acme.example/"
	})

	ing, err := s.env.Client.NetworkingV1().Ingresses(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.SetGroupVersionKind(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"})
	expect(t, ing, map[string]string{
		"metadata.labels.[app.kubernetes.io/managed-by]":        "berth",
		"metadata.annotations.[cert-manager.io/cluster-issuer]": "letsencrypt",
		"spec.ingressClassName":                                 "nginx",
		"spec.rules":                                            `[{"host":"web.acme.example","http":{"paths":[{"backend":{"service":{"name":"web","port":{"name":"http"}}},"path":"/","pathType":"Prefix"}]}}]`,
		"spec.tls":                                              `[{"hosts":["web.acme.example"],"secretName":"web-tls"}]`,
	})
	before := s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("an unchanged exposed service is written again: %+v (%d writes)", cr.Changes, s.writes.Load()-before)
	}

	// Someone deletes the Ingress: berth puts it back.
	if err := s.env.Client.NetworkingV1().Ingresses(s.ns("ml")).Delete(s.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.until("the Ingress is back", 30*time.Second, func(reconcile.ClusterReport) bool {
		_, err := s.env.Client.NetworkingV1().Ingresses(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return err == nil
	})

	// The cluster moves to a Gateway API gateway: an HTTPRoute replaces
	// the Ingress.
	s.set(map[string]string{"platform/clusters.cue": `package platform
clusters: gpu: {backend: "kubernetes", ingress: gateway: "infra/public"}
`})
	dyn := dynamic.NewForConfigOrDie(s.env.Config)
	var route *unstructured.Unstructured
	s.until("an HTTPRoute replaces the Ingress", 30*time.Second, func(reconcile.ClusterReport) bool {
		_, ingErr := s.env.Client.NetworkingV1().Ingresses(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		route, err = dyn.Resource(httpRoutes).Namespace(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(ingErr) && err == nil
	})
	expect(t, route, map[string]string{
		"metadata.labels.[app.kubernetes.io/managed-by]": "berth",
		"spec.hostnames":           `["web.acme.example"]`,
		"spec.parentRefs":          `[{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"public","namespace":"infra"}]`,
		"spec.rules.0.backendRefs": `[{"group":"","kind":"Service","name":"web","port":80,"weight":1}]`,
	})
	before = s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("an unchanged routed service is written again: %+v (%d writes)", cr.Changes, s.writes.Load()-before)
	}

	// web leaves Git: its Deployment, Service and HTTPRoute go.
	s.team(8, "")
	s.until("web is pruned", 30*time.Second, func(cr reconcile.ClusterReport) bool {
		_, err := dyn.Resource(httpRoutes).Namespace(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && phase(cr, "ml/web") == reconcile.PhaseStopped
	})
	if _, err := s.env.Client.CoreV1().Services(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("web's Service after it left Git: %v", err)
	}
}
