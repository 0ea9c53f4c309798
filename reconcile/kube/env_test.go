package kube_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// One control plane for the package: the scenarios share it and keep out of
// each other's way with their own namespaces (a namespace prefix per test)
// and their own nodes (a pool label the test's flavors select).
var (
	kenv    *testenv.KubeEnv
	kenvErr error
)

func TestMain(m *testing.M) {
	start := time.Now()
	kenv, kenvErr = testenv.StartKube(testenv.KubeOptions{})
	if kenvErr == nil {
		fmt.Fprintf(os.Stderr, "kube: control plane ready in %v (%s)\n", time.Since(start).Round(time.Millisecond), kenv.Dir)
	}
	code := m.Run()
	if kenv != nil {
		if err := kenv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "kube: stop:", err)
		}
	}
	os.Exit(code)
}

const kubeDemoDir = "../../fixtures/repos/kube-demo"

const h100 = "NVIDIA-H100-80GB-HBM3"

// writeCounter counts the requests that may write: every verb but GET
// (watches and lists are GETs too), and not a dry run (ssa's drift check).
type writeCounter struct {
	rt     http.RoundTripper
	writes *atomic.Int64
}

func (w writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !r.URL.Query().Has("dryRun") {
		w.writes.Add(1)
	}
	return w.rt.RoundTrip(r)
}

// scenario is berth's real engine, the cue loader and a kube.Cluster on
// the shared control plane, with the kube-demo repository (files can be
// replaced per commit) confined to the test's namespaces and nodes.
type scenario struct {
	t       *testing.T
	env     *testenv.KubeEnv
	ctx     context.Context
	name    string
	cluster *kube.Cluster
	engine  *reconcile.Engine
	files   map[string]string
	commit  int
	writes  atomic.Int64
	last    reconcile.Report
}

// newScenario creates the test's nodes (pool label = name) and a berth for
// them. The repository's flavors all select the pool.
func newScenario(t *testing.T, name string, nodes ...testenv.NodeSpec) *scenario {
	t.Helper()
	testenv.SkipOrFail(t, kenvErr)
	return newScenarioOn(t, kenv, name, nodes...)
}

// newScenarioOn is newScenario on another control plane (one a test may
// disrupt).
func newScenarioOn(t *testing.T, kenv *testenv.KubeEnv, name string, nodes ...testenv.NodeSpec) *scenario {
	t.Helper()
	return newScenarioAs(t, kenv, kenv.Config, name, nodes...)
}

// newScenarioAs is newScenarioOn with berth reaching the API server with
// cfg (another identity); the test itself stays admin.
func newScenarioAs(t *testing.T, kenv *testenv.KubeEnv, berthCfg *rest.Config, name string, nodes ...testenv.NodeSpec) *scenario {
	t.Helper()
	name = uniqueName(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	s := &scenario{t: t, env: kenv, ctx: ctx, name: name, files: map[string]string{}}
	for i, spec := range nodes {
		spec.NamePrefix = fmt.Sprintf("%s-%d-", name, i)
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels["berth.dev/pool"] = name
		created, err := kenv.CreateGPUNodes(ctx, 1, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := kenv.WaitNodesReady(ctx, created); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			kenv.Client.CoreV1().Nodes().Delete(context.Background(), created[0].Name, metav1.DeleteOptions{})
		})
	}
	// The schema's namespacePrefix is a #Name, which cannot end in "-":
	// the test's prefix is given to the cluster directly.
	s.files["platform/clusters.cue"] = `package platform
clusters: gpu: {backend: "kubernetes", ingress: className: "nginx"}
`
	s.files["platform/flavors.cue"] = fmt.Sprintf(`package platform
flavors: h100: {gpuModel: "H100", nodeLabels: "berth.dev/pool": %[1]q}
flavors: "h100-1g": {gpuModel: "H100", mig: "1g.10gb", nodeLabels: "berth.dev/pool": %[1]q}
flavors: cpu: nodeLabels: "berth.dev/pool": %[1]q
`, name)

	cfg := rest.CopyConfig(berthCfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return writeCounter{rt: rt, writes: &s.writes} }
	c, err := kube.New(kube.Options{
		Name:   "gpu",
		Config: cfg,
		Render: kube.RenderOptions{NamespacePrefix: name + "-", Repository: "https://git.example.com/acme/gpu-platform", GPUToleration: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s.cluster = c
	s.engine = reconcile.New(reconcile.Options{
		Clusters: []reconcile.Cluster{c},
		Loader:   cue.NewLoader(cue.Options{}),
	})
	return s
}

// scenarioNames counts the scenarios of each name this process made.
var scenarioNames = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// uniqueName is name, or, for a second scenario of that name on the shared
// control plane (go test -count=N runs a test again), name-N: a scenario
// leaves its namespaces, Jobs and ledgers behind, and the next must not
// find them.
func uniqueName(name string) string {
	scenarioNames.Lock()
	defer scenarioNames.Unlock()
	scenarioNames.n[name]++
	if n := scenarioNames.n[name]; n > 1 {
		return fmt.Sprintf("%s-%d", name, n)
	}
	return name
}

// gpuNode is an 8-GPU H100 node that also offers shares of its GPUs.
func gpuNode() testenv.NodeSpec {
	return testenv.NodeSpec{GPUs: 8, Product: h100, CPU: "128", Memory: "1Ti",
		// Not MIG: the map also takes full resource names (the fractional
		// resource berth requests for gpuFraction).
		MIG: map[string]int{"nvidia.com/gpu.shared": 80}}
}

// migNode is an H100 node with seven whole GPUs and one carved into seven
// 1g.10gb slices.
func migNode() testenv.NodeSpec {
	return testenv.NodeSpec{GPUs: 7, Product: h100, CPU: "128", Memory: "1Ti", MIG: map[string]int{"1g.10gb": 7, "nvidia.com/gpu.shared": 70}}
}

// repo is the kube-demo repository with the scenario's files (an empty
// content removes a file).
func (s *scenario) repo() fs.FS {
	s.t.Helper()
	m := fstest.MapFS{}
	demo := os.DirFS(kubeDemoDir)
	err := fs.WalkDir(demo, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(demo, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	for p, c := range s.files {
		if c == "" {
			delete(m, p)
			continue
		}
		m[p] = &fstest.MapFile{Data: []byte(c)}
	}
	return m
}

// set replaces files for the next commit.
func (s *scenario) set(files map[string]string) {
	for p, c := range files {
		s.files[p] = c
	}
	s.commit++
}

// reconcile reconciles the current files as commit c<N>.
func (s *scenario) reconcile() reconcile.Report {
	s.t.Helper()
	if s.commit == 0 {
		s.commit = 1
	}
	c := fmt.Sprintf("c%d", s.commit)
	rep := s.engine.ReconcileRevision(s.ctx, reconcile.Revision{Name: "main@sha1:" + c, Commit: c, FS: s.repo()})
	s.last = rep
	if rep.Invalid != nil {
		s.t.Fatalf("commit %s is invalid: %v", c, rep.Invalid)
	}
	return rep
}

// mustReconcile reconciles and fails the test on a cluster or change error.
// waitReadyNodes waits until the cluster observes n ready GPU nodes of
// this scenario: on a loaded machine a KWOK node can lag behind its
// creation, and a plan made before sees less capacity than the test means.
func (s *scenario) waitReadyNodes(n int) {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		obs, err := s.cluster.Observe(s.ctx, nil)
		ready := 0
		if err == nil {
			for _, node := range obs.Snapshot.Nodes {
				if node.Ready && !node.Unschedulable && node.GPUs > 0 && node.Labels["berth.dev/pool"] == s.name {
					ready++
				}
			}
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the cluster observes %d ready GPU nodes of pool %s, want %d (err %v)", ready, s.name, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *scenario) mustReconcile() reconcile.ClusterReport {
	s.t.Helper()
	rep := s.reconcile()
	cr := rep.Clusters[0]
	if cr.Err != nil {
		s.t.Fatalf("reconcile: %v", cr.Err)
	}
	for _, r := range cr.Results {
		if r.Err != nil {
			s.t.Fatalf("%s %s: %v", r.Change.Op, r.Change.Workload.ID(), r.Err)
		}
	}
	return cr
}

// until reconciles every 300 ms until cond holds on the report.
func (s *scenario) until(what string, timeout time.Duration, cond func(cr reconcile.ClusterReport) bool) reconcile.ClusterReport {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep := s.reconcile()
		cr := rep.Clusters[0]
		if cr.Err == nil && cond(cr) {
			return cr
		}
		if testing.Verbose() && os.Getenv("BERTH_KUBE_TRACE") != "" {
			s.t.Logf("%s: err=%v\n%s", what, cr.Err, runsText(cr))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not after %v (last error %v)\nruns:\n%s\nscheduler:\n%s", what, timeout, cr.Err, runsText(cr), s.env.LogTail("scheduler", 10))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func runsText(cr reconcile.ClusterReport) string {
	if cr.Observed == nil {
		return "(not observed)"
	}
	var b strings.Builder
	for _, r := range cr.Observed.Runs {
		fmt.Fprintf(&b, "  %s %s attempts=%d queued-since=%s %s %s\n", r.Key(), r.Phase, r.Attempts, r.QueuedSince.Format(time.RFC3339Nano), r.Reason, r.Note)
	}
	if cr.Plan != nil {
		for _, d := range cr.Plan.Decisions {
			reason := ""
			if d.Reason != nil {
				reason = d.Reason.Message
			}
			fmt.Fprintf(&b, "  plan %s %s %s\n", d.Key(), d.Action, reason)
		}
	}
	return b.String()
}

func run(cr reconcile.ClusterReport, id string) reconcile.RunState {
	if cr.Observed == nil {
		return reconcile.RunState{}
	}
	for _, r := range cr.Observed.Runs {
		if string(r.Workload) == id && r.RunID == "1" {
			return r
		}
	}
	return reconcile.RunState{}
}

func phase(cr reconcile.ClusterReport, id string) reconcile.Phase { return run(cr, id).Phase }

func (s *scenario) ns(team string) string { return s.name + "-" + team }

// pods lists a workload's pods.
func (s *scenario) pods(team, workload string) []corev1.Pod {
	s.t.Helper()
	list, err := s.env.Client.CoreV1().Pods(s.ns(team)).List(s.ctx, metav1.ListOptions{LabelSelector: kube.LabelWorkload + "=" + workload})
	if err != nil {
		s.t.Fatal(err)
	}
	return list.Items
}

func decision(cr reconcile.ClusterReport, id string) berth.Decision {
	d, _ := cr.Plan.Decision(berth.WorkloadID(id))
	return d
}

func skipOrFail(t *testing.T, err error) { testenv.SkipOrFail(t, err) }
