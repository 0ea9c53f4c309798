package kube_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

const deployDir = "../../deploy"

func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeployManifests: the API server accepts deploy/ as kustomize renders
// it (a server-side dry run: the image cannot be built here, there is no
// container engine). A dry run does not create the namespace, so on an
// empty cluster every object in it would be refused for a missing
// namespace: the namespace is created first, for real.
func TestDeployManifests(t *testing.T) {
	testenvSkip(t)
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("no kubectl")
	}
	kubectl(t, kenv.Kubeconfig, "apply", "-f", deployDir+"/namespace.yaml")
	out := kubectl(t, kenv.Kubeconfig, "apply", "-k", deployDir, "--dry-run=server")
	for _, want := range []string{"namespace/berth-system", "clusterrole.rbac.authorization.k8s.io/berth", "deployment.apps/berth", "service/berth"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k deploy/ --dry-run=server did not mention %s:\n%s", want, out)
		}
	}
}

// TestRBACIsEnough: berth acting as deploy/'s ServiceAccount, with only
// deploy/rbac.yaml's permissions, queues, starts, finishes, prunes and
// records runs (the ledger), and its writes all succeed.
func TestRBACIsEnough(t *testing.T) {
	testenvSkip(t)
	installGatewayAPI(t)
	for _, f := range []string{"namespace.yaml", "serviceaccount.yaml", "rbac.yaml"} {
		kubectl(t, kenv.Kubeconfig, "apply", "-f", deployDir+"/"+f)
	}
	as := rest.CopyConfig(kenv.Config)
	as.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:berth-system:berth",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:berth-system", "system:authenticated"}}
	s := newScenarioAs(t, kenv, as, "rbac", gpuNode())
	services := `
workloads: ml: web: {kind: "service", image: "nginx:1.27", ports: [{port: 80}], expose: host: "web.acme.example", autoscale: {max: 2, targetRPS: 10}, resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
workloads: ml: train: {kind: "training", image: "img:1", workers: 2, env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 2, flavor: "h100"},
	checkpoint: dir: "/ckpt", outputs: {}, volumes: {shared: {kind: "team", size: "1Gi"}, tmp: {kind: "scratch"}}}
workloads: ml: big: {kind: "batch", image: "img:1", priority: "low", env: BERTH_SIMULATED_DURATION: "60s", resources: {gpu: 8, flavor: "h100"}}
workloads: ml: mpi: {kind: "training", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", roles: {
	launcher: resources: {cpu: 1, flavor: "cpu"}
	worker: {count: 2, resources: {gpu: 1, flavor: "h100"}}
}}
`
	s.team(8, services)
	// mpi's workers wait at berth's scheduling gate for their rank: the
	// pod patch is in the ClusterRole too.
	s.until("train and mpi succeed and big runs", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/train") == reconcile.PhaseSucceeded && phase(cr, "ml/mpi") == reconcile.PhaseSucceeded &&
			phase(cr, "ml/big").Holds()
	})
	// web's Ingress gives way to an HTTPRoute on a gateway: both kinds
	// are applied and pruned as berth's ServiceAccount.
	s.set(map[string]string{"platform/clusters.cue": `package platform
clusters: gpu: {backend: "kubernetes", ingress: gateway: "infra/public"}
`})
	dyn := dynamic.NewForConfigOrDie(s.env.Config)
	s.until("web's HTTPRoute replaces its Ingress", time.Minute, func(cr reconcile.ClusterReport) bool {
		_, ingErr := s.env.Client.NetworkingV1().Ingresses(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		_, err := dyn.Resource(httpRoutes).Namespace(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(ingErr) && err == nil
	})
	s.team(8, strings.Replace(services, `workloads: ml: web:`, `// web: gone`+"\n"+`_web:`, 1))
	s.mustReconcile()
	cr := s.until("web is pruned", time.Minute, func(cr reconcile.ClusterReport) bool {
		_, err := dyn.Resource(httpRoutes).Namespace(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return phase(cr, "ml/web") == reconcile.PhaseStopped && apierrors.IsNotFound(err)
	})
	for _, r := range cr.Results {
		if r.Err != nil {
			t.Errorf("%s %s: %v", r.Change.Op, r.Change.Workload.ID(), r.Err)
		}
	}
	// train's claims were made by the ServiceAccount (its pods ran), and
	// its checkpoints, once it succeeded, deleted by it.
	if c, err := kenv.Client.CoreV1().PersistentVolumeClaims(s.ns("ml")).Get(s.ctx, "train-1-checkpoints", metav1.GetOptions{}); err == nil && c.DeletionTimestamp == nil {
		t.Error("train succeeded and its checkpoint claim is still there")
	}

	// Leader election with the Role in berth-system.
	c, err := kube.New(kube.Options{Name: "gpu", Config: as, LeaderElection: &kube.LeaderElection{
		Namespace: "berth-system", Name: "berth-gpu", Identity: "rbac-test",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("the ServiceAccount cannot take the Lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testenvSkip(t *testing.T) {
	t.Helper()
	if kenvErr != nil {
		skipOrFail(t, kenvErr)
	}
}
