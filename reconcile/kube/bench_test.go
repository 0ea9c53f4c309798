package kube_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// The benchmarks each start a fresh control plane and run once:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./reconcile/kube
//
// They report their figures as metrics.

// poolNodes creates KWOK nodes for the generated repositories' flavors
// (fixtures/gen: h100, a100, h100-1g and cpu, selected by berth.dev/pool).
func poolNodes(tb testing.TB, env *testenv.KubeEnv, per map[string]int) {
	tb.Helper()
	ctx := context.Background()
	specs := map[string]testenv.NodeSpec{
		"h100":    {GPUs: 8, Product: h100, MIG: map[string]int{"nvidia.com/gpu.shared": 80}},
		"a100":    {GPUs: 8, Product: "NVIDIA-A100-SXM4-40GB", MIG: map[string]int{"nvidia.com/gpu.shared": 80}},
		"h100-1g": {GPUs: 1, Product: h100, MIG: map[string]int{"1g.10gb": 7}},
		"cpu":     {CPU: "256", Memory: "2Ti"},
	}
	var all []*corev1.Node
	for _, pool := range []string{"h100", "a100", "h100-1g", "cpu"} {
		spec := specs[pool]
		spec.NamePrefix = pool + "-"
		spec.Labels = map[string]string{"berth.dev/pool": pool}
		spec.Pods = "500"
		nodes, err := env.CreateGPUNodes(ctx, per[pool], spec)
		if err != nil {
			tb.Fatal(err)
		}
		all = append(all, nodes...)
	}
	if err := env.WaitNodesReady(ctx, all); err != nil {
		tb.Fatal(err)
	}
}

// longRunning makes a generated repository's batch and training runs last
// an hour on KWOK (the default is 3 s), so the cluster holds still while
// it is measured.
func longRunning(r gen.Repo) gen.Repo {
	p := "templates/templates.cue"
	r[p] = bytes.Replace(r[p], []byte(`env: {PYTHONUNBUFFERED: "1", ...}`), []byte(`env: {PYTHONUNBUFFERED: "1", BERTH_SIMULATED_DURATION: "1h", ...}`), 1)
	return r
}

// noNewerPreemption drops the generated teams' withinTeam
// "lowerOrNewerEqualPriority" preemption. With it, a preempted run that
// resumes has started after every run that waits in its team was queued,
// so the next cycle preempts it again for one of them, and so on: the
// scheduler never settles, and there is no no-op reconcile to measure.
func noNewerPreemption(r gen.Repo) gen.Repo {
	for p, b := range r {
		r[p] = bytes.ReplaceAll(b, []byte("\tpreemption: withinTeam: \"lowerOrNewerEqualPriority\"\n"), nil)
	}
	return r
}

// calm takes from a generated repository what makes berth's scheduler
// preempt on its own between cycles with nothing changing (withinTeam
// preemption of newer runs, cohorts' reclaiming and fair sharing: a
// preempted run that resumes is newer, or tips a share, and is preempted
// again): the no-op reconcile needs a cluster that settles.
func calm(r gen.Repo) gen.Repo {
	r = noNewerPreemption(r)
	for p, b := range r {
		b = bytes.ReplaceAll(b, []byte("fairSharing:     true"), []byte("fairSharing:     false"))
		var out [][]byte
		for _, line := range bytes.Split(b, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte("\tcohort: ")) {
				out = append(out, line)
			}
		}
		r[p] = bytes.Join(out, []byte("\n"))
	}
	return r
}

// recorder keeps the bodies of berth's server-side applies: the rendered
// objects, to hand the same to kubectl. (The ledger's ConfigMaps are
// created as protobuf; they are read back from the cluster instead.)
type recorder struct {
	rt     http.RoundTripper
	mu     *sync.Mutex
	bodies *[][]byte
	// writes counts requests that may write; dryRuns the dry runs (ssa's
	// drift checks), which write nothing.
	writes, dryRuns *atomic.Int64
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	dry := strings.Contains(req.URL.RawQuery, "dryRun")
	switch {
	case dry:
		r.dryRuns.Add(1)
	case req.Method != http.MethodGet:
		r.writes.Add(1)
	}
	apply := req.Method == http.MethodPatch && strings.HasPrefix(req.Header.Get("Content-Type"), "application/apply-patch")
	if req.Body != nil && !dry && apply {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		*r.bodies = append(*r.bodies, b)
		r.mu.Unlock()
	}
	return r.rt.RoundTrip(req)
}

// timedCluster times Apply.
type timedCluster struct {
	*kube.Cluster
	apply time.Duration
}

func (t *timedCluster) Apply(ctx context.Context, cfg *berth.Config, ch []reconcile.Change) ([]reconcile.Result, error) {
	start := time.Now()
	defer func() { t.apply += time.Since(start) }()
	return t.Cluster.Apply(ctx, cfg, ch)
}

// prodKubeconfig is env's kubeconfig with its context named prod (the
// generated repositories' kubernetes cluster names that context).
func prodKubeconfig(tb testing.TB, env *testenv.KubeEnv) string {
	tb.Helper()
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("berth-testenv"), []byte("prod")), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkApply1000 applies a generated repository of 1,000 workloads
// (10 teams) to a fresh cluster with berth, then the very objects berth
// applied (recorded off the wire, in other namespaces) with `kubectl apply
// --server-side`, and reports both and their ratio. Then it reconciles
// again: a no-op, which must send no write.
func BenchmarkApply1000(b *testing.B) {
	env := testenv.Kube(b)
	poolNodes(b, env, map[string]int{"h100": 40, "a100": 40, "h100-1g": 20, "cpu": 20})
	repo := calm(longRunning(gen.Generate(gen.Options{Teams: 10, Workloads: 1000, Seed: 1})))
	cfg := rest.CopyConfig(env.Config)
	var mu sync.Mutex
	var bodies [][]byte
	var writes, dryRuns atomic.Int64
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return recorder{rt: rt, mu: &mu, bodies: &bodies, writes: &writes, dryRuns: &dryRuns}
	}
	kc, err := kube.New(kube.Options{Name: "prod", Config: cfg, Render: kube.RenderOptions{NamespacePrefix: "bb-"}, Workers: benchWorkers(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: benchLogLevel()}))})
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	tc := &timedCluster{Cluster: kc}
	eng := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{tc}, Loader: cue.NewLoader(cue.Options{})})
	ctx := context.Background()
	if err := kc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	rev := reconcile.Revision{Name: "main@sha1:gen1", Commit: "gen1", FS: repo.FS()}

	for b.Loop() {
		start := time.Now()
		rep := eng.ReconcileRevision(ctx, rev)
		total := time.Since(start)
		cr := rep.Clusters[0]
		if cr.Err != nil {
			b.Fatal(cr.Err)
		}
		counts := map[reconcile.Outcome]int{}
		for _, r := range cr.Results {
			if r.Err != nil {
				b.Fatalf("%s %s: %v", r.Change.Op, r.Change.Workload.ID(), r.Err)
			}
			counts[r.Outcome]++
		}
		cms, err := env.Client.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=berth"})
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		for _, cm := range cms.Items {
			obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": cm.Name, "namespace": cm.Namespace, "labels": cm.Labels}, "data": cm.Data}
			body, _ := json.Marshal(obj)
			bodies = append(bodies, body)
		}
		objects := len(bodies)
		mu.Unlock()
		b.Logf("berth: %d changes (%v), %d objects, %d write requests, %d dry runs; apply %v, whole reconcile %v",
			len(cr.Changes), counts, objects, writes.Load(), dryRuns.Load(), tc.apply.Round(time.Millisecond), total.Round(time.Millisecond))

		// A no-op reconcile of the applied state. A cold start's first
		// plan is not final: with the first runs running, the scheduler
		// reclaims borrowed quota and evens out fair shares (preempting),
		// so reconcile until a plan changes nothing, then measure one more.
		settleStart := time.Now()
		for i := 0; ; i++ {
			rep := eng.ReconcileRevision(ctx, rev)
			if err := rep.Clusters[0].Err; err != nil {
				b.Fatal(err)
			}
			if len(rep.Clusters[0].Changes) == 0 {
				b.Logf("converged after %d more reconciles (%v)", i+1, time.Since(settleStart).Round(time.Millisecond))
				break
			}
			ops := map[string]int{}
			for _, ch := range rep.Clusters[0].Changes {
				ops[string(ch.Op)+" "+string(ch.Decision.Action)]++
			}
			b.Logf("reconcile %d: %v", i+2, ops)
			if i >= 3 {
				for _, ch := range rep.Clusters[0].Changes[:min(8, len(rep.Clusters[0].Changes))] {
					r, _ := rep.Clusters[0].Observed.Run(ch.Key())
					b.Logf("  %s %s (%s): %s [observed %s attempts %d %s]", ch.Op, ch.Key(), ch.Decision.Action, ch.Reason, r.Phase, r.Attempts, r.Reason)
				}
			}
			if i == 8 {
				b.Fatalf("still changing after 8 reconciles: %d changes", len(rep.Clusters[0].Changes))
			}
			time.Sleep(time.Second)
		}
		before := writes.Load()
		nstart := time.Now()
		rep = eng.ReconcileRevision(ctx, rev)
		noop := time.Since(nstart)
		if err := rep.Clusters[0].Err; err != nil {
			b.Fatal(err)
		}
		noopWrites := writes.Load() - before
		b.Logf("no-op reconcile of %d workloads: %v, %d changes, %d write requests", len(cr.Plan.Decisions), noop.Round(time.Millisecond), len(rep.Clusters[0].Changes), noopWrites)
		if noopWrites != 0 {
			ops := map[string]int{}
			for i, ch := range rep.Clusters[0].Changes {
				ops[string(ch.Op)+" "+string(ch.Decision.Action)]++
				if i < 5 {
					b.Logf("  %s %s (%s): %s", ch.Op, ch.Key(), ch.Decision.Action, ch.Reason)
				}
			}
			b.Errorf("the no-op reconcile sent %d writes: %v", noopWrites, ops)
		}

		// kubectl, the same objects in namespaces bk-*.
		file := filepath.Join(b.TempDir(), "objects.yaml")
		if err := writeForKubectl(file, bodies); err != nil {
			b.Fatal(err)
		}
		kubectl := func(args ...string) {
			out, err := exec.Command("kubectl", append([]string{"--kubeconfig", env.Kubeconfig}, args...)...).CombinedOutput()
			if err != nil {
				b.Fatalf("kubectl %v: %v\n%s", args, err, lastLines(string(out), 20))
			}
		}
		kubectl("api-resources") // discovery, not timed
		kstart := time.Now()
		kubectl("apply", "--server-side", "--field-manager=kubectl-bench", "-f", file)
		kubectlTook := time.Since(kstart)
		b.Logf("kubectl apply --server-side: %d objects in %v", objects, kubectlTook.Round(time.Millisecond))

		b.ReportMetric(tc.apply.Seconds(), "berth-apply-s")
		b.ReportMetric(total.Seconds(), "berth-reconcile-s")
		b.ReportMetric(kubectlTook.Seconds(), "kubectl-s")
		b.ReportMetric(kubectlTook.Seconds()/tc.apply.Seconds(), "speedup-x")
		b.ReportMetric(float64(objects), "objects")
		b.ReportMetric(float64(noop.Milliseconds()), "noop-ms")
		b.ReportMetric(float64(noopWrites), "noop-writes")
	}
}

// writeForKubectl writes the recorded objects as one YAML stream for
// kubectl, moved from berth's namespaces (bb-*) to bk-*: namespaces first.
func writeForKubectl(file string, bodies [][]byte) error {
	var nss, rest []map[string]any
	seen := map[string]bool{}
	for _, body := range bodies {
		var obj map[string]any
		if err := yaml.Unmarshal(body, &obj); err != nil {
			return err
		}
		meta, _ := obj["metadata"].(map[string]any)
		if ns, ok := meta["namespace"].(string); ok {
			meta["namespace"] = "bk-" + strings.TrimPrefix(ns, "bb-")
		}
		if obj["kind"] == "Namespace" {
			meta["name"] = "bk-" + strings.TrimPrefix(meta["name"].(string), "bb-")
			if seen[meta["name"].(string)] {
				continue
			}
			seen[meta["name"].(string)] = true
			nss = append(nss, obj)
			continue
		}
		rest = append(rest, obj)
	}
	var buf bytes.Buffer
	for _, obj := range append(nss, rest...) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// berthBinary is the berth command, built once.
func berthBinary(tb testing.TB) string { return testenv.BerthBinary(tb) }

// serveProc is `berth serve` on a kubernetes cluster.
type serveProc struct {
	cmd *exec.Cmd
	log string
}

func startServe(tb testing.TB, repo, kubeconfig, cluster string, extra ...string) *serveProc {
	tb.Helper()
	dir := tb.TempDir()
	logPath := filepath.Join(dir, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	args := append([]string{"serve", "--repo", repo, "--cluster", cluster, "--kubeconfig", kubeconfig,
		"--state-dir", filepath.Join(dir, "state"), "--listen", "127.0.0.1:0", "--resync", "2s"}, extra...)
	cmd := exec.Command(berthBinary(tb), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &serveProc{cmd: cmd, log: logPath}
	tb.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		logf.Close()
	})
	return p
}

// memory reads the process's resident set now and at its peak, in MiB.
func (p *serveProc) memory() (rss, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// logText is what serve logged so far.
func (p *serveProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func gitIn(tb testing.TB, dir string, args ...string) {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=b", "-c", "user.email=b@b.invalid"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// BenchmarkCommitToJob measures, with `berth serve` watching a local Git
// repository and applying to a cluster of backend kubernetes, the time
// from `git commit` to the new workload's Job existing in the cluster (seen
// through a watch). It reports the median and the 90th percentile.
func BenchmarkCommitToJob(b *testing.B) {
	env := testenv.Kube(b)
	poolNodes(b, env, map[string]int{"h100": 2, "a100": 1, "h100-1g": 1, "cpu": 2})
	repo := filepath.Join(b.TempDir(), "repo")
	if err := calm(longRunning(gen.Generate(gen.Options{Teams: 2, Workloads: 20, Seed: 1}))).Write(repo); err != nil {
		b.Fatal(err)
	}
	gitIn(b, repo, "init", "-q", "-b", "main")
	gitIn(b, repo, "add", "-A")
	gitIn(b, repo, "commit", "-q", "-m", "generated")
	p := startServe(b, repo, prodKubeconfig(b, env), "prod")

	// Jobs appear in the watch as they are created.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := env.Client.BatchV1().Jobs("").Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=berth"})
	if err != nil {
		b.Fatal(err)
	}
	seen := make(chan string, 1024)
	go func() {
		for ev := range w.ResultChan() {
			if m, ok := ev.Object.(metav1.Object); ok {
				seen <- m.GetName()
			}
		}
	}()
	// Wait for serve's first reconcile (the generated workloads' Jobs).
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(p.logText(), "change") {
		if time.Now().After(deadline) {
			b.Fatalf("serve did not apply anything:\n%s", lastLines(p.logText(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	team := gen.TeamName(0)
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("lat-%03d", i)
		file := filepath.Join(repo, gen.TeamDir(team), name+".cue")
		content := fmt.Sprintf("package %s\n\nworkloads: %q: %q: {kind: \"batch\", image: \"img:1\", resources: {cpu: \"100m\", memory: \"64Mi\", flavor: \"cpu\"}}\n",
			strings.ReplaceAll(team, "-", "_"), team, name)
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		gitIn(b, repo, "add", "-A")
		start := time.Now()
		gitIn(b, repo, "commit", "-q", "-m", "add "+name)
		for got := false; !got; {
			select {
			case n := <-seen:
				got = n == name+"-1"
			case <-time.After(30 * time.Second):
				b.Fatalf("%s: no Job 30 s after the commit\n%s", name, lastLines(p.logText(), 30))
			}
		}
		took = append(took, time.Since(start))
	}
	slices.SortFunc(took, func(a, b time.Duration) int {
		return cmp.Compare(a, b)
	})
	b.Logf("commit to Job created, %d commits: %v", len(took), took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Milliseconds()), "p90-ms")
}

// BenchmarkMemory10k runs `berth serve` on 1,000 KWOK GPU nodes and a
// generated repository of 10,000 workloads (50 teams) until it has applied
// them and reconciled again with nothing to do, and reports its resident
// memory (peak and after).
func BenchmarkMemory10k(b *testing.B) {
	env := testenv.Kube(b)
	poolNodes(b, env, map[string]int{"h100": 400, "a100": 300, "h100-1g": 100, "cpu": 200})
	repo := filepath.Join(b.TempDir(), "repo")
	if err := calm(longRunning(gen.Generate(gen.Options{Teams: 50, Workloads: 10000, Seed: 1}))).Write(repo); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		start := time.Now()
		p := startServe(b, repo, prodKubeconfig(b, env), "prod", "--resync", "5s")
		// Done when a reconcile finds nothing to change after one that did.
		deadline := time.Now().Add(20 * time.Minute)
		var peak, rss float64
		for {
			_, pk := p.memory()
			peak = max(peak, pk)
			log := p.logText()
			if strings.Contains(log, "msg=change ") && settled(env) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("serve did not settle in 20 minutes:\n%s", lastLines(log, 30))
			}
			time.Sleep(2 * time.Second)
		}
		// Two more resyncs with nothing to do.
		time.Sleep(12 * time.Second)
		r, pk := p.memory()
		peak, rss = max(peak, pk), r
		jobs, _ := env.Client.BatchV1().Jobs("").List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=berth"})
		deps, _ := env.Client.AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=berth"})
		b.Logf("berth serve: %d Jobs and %d Deployments on 1000 nodes after %v; RSS %.0f MiB, peak %.0f MiB",
			len(jobs.Items), len(deps.Items), time.Since(start).Round(time.Second), rss, peak)
		b.ReportMetric(peak, "peak-MiB")
		b.ReportMetric(rss, "rss-MiB")
		if peak > 500 {
			b.Errorf("berth's peak memory %.0f MiB is over 500 MiB", peak)
		}
	}
}

// settled reports whether berth's objects stopped changing: two counts of
// Jobs, Deployments and ledger entries 3 s apart agree.
func settled(env *testenv.KubeEnv) bool {
	count := func() string {
		ctx := context.Background()
		sel := metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=berth"}
		jobs, err1 := env.Client.BatchV1().Jobs("").List(ctx, sel)
		deps, err2 := env.Client.AppsV1().Deployments("").List(ctx, sel)
		cms, err3 := env.Client.CoreV1().ConfigMaps("").List(ctx, sel)
		if err1 != nil || err2 != nil || err3 != nil || len(jobs.Items)+len(deps.Items) == 0 {
			return ""
		}
		n := 0
		for _, cm := range cms.Items {
			n += len(cm.Data)
		}
		js, _ := json.Marshal([]int{len(jobs.Items), len(deps.Items), n})
		return string(js)
	}
	a := count()
	time.Sleep(3 * time.Second)
	return a != "" && a == count()
}

// benchLogLevel is debug (Apply's time per step) with $BERTH_KUBE_TRACE.
func benchLogLevel() slog.Level {
	if os.Getenv("BERTH_KUBE_TRACE") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// benchWorkers is $BERTH_KUBE_WORKERS, or the default.
func benchWorkers() int {
	n, _ := strconv.Atoi(os.Getenv("BERTH_KUBE_WORKERS"))
	return n
}
