package kube_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// team replaces the demo's teams and workloads with one team, ml, with the
// given GPU quota on h100, and the given workloads (CUE, in package ml).
func (s *scenario) team(gpus int, workloads string) {
	s.set(map[string]string{
		"teams/teams.cue": fmt.Sprintf(`package teams
teams: ml: {owners: ["@ml"], quota: [
	{flavor: "h100", gpu: nominal: %d, cpu: nominal: 512, memory: nominal: "4Ti"},
	{flavor: "cpu", cpu: nominal: 64, memory: nominal: "256Gi"},
]}
`, gpus),
		"workloads/nlp/pipeline.cue":     "",
		"workloads/serving/services.cue": "",
		"workloads/vision/train.cue":     "",
		"workloads/ml/ml.cue":            "package ml\n" + workloads,
		"platform/policy.cue": `package platform
policy: {
	priorities: {production: {value: 1000, preemptible: false}, normal: value: 100, low: {value: 10, canPreempt: false}}
	defaultPriority: "normal"
}
`,
	})
}

func (s *scenario) job(name string) *batchv1.Job {
	s.t.Helper()
	j, err := s.env.Client.BatchV1().Jobs(s.ns("ml")).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("Job %s: %v", name, err)
	}
	return j
}

// TestQuotaQueues: with the team's quota full the next Job waits,
// suspended, and starts when the first finishes.
func TestQuotaQueues(t *testing.T) {
	s := newScenario(t, "quota", gpuNode())
	s.team(4, `
workloads: ml: first: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "4s", resources: {gpu: 4, flavor: "h100"}}
workloads: ml: second: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 4, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	d := decision(cr, "ml/second")
	if d.Action != berth.ActionQueue || d.Reason == nil || d.Reason.Code != berth.ReasonQuota {
		t.Fatalf("second: %s %+v, want queued for quota", d.Action, d.Reason)
	}
	if j := s.job("second-1"); j.Spec.Suspend == nil || !*j.Spec.Suspend {
		t.Fatal("the waiting Job is not suspended")
	}
	if j := s.job("first-1"); *j.Spec.Suspend {
		t.Fatal("the admitted Job is suspended")
	}
	cr = s.until("second runs", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/second").Holds()
	})
	if p := phase(cr, "ml/first"); p != reconcile.PhaseSucceeded {
		t.Fatalf("second started while first is %s", p)
	}
	s.until("second succeeds", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/second") == reconcile.PhaseSucceeded
	})
}

// TestPreemption: a higher-priority Job preempts a running one, which is
// suspended (its pods go), says why, and resumes after.
func TestPreemption(t *testing.T) {
	s := newScenario(t, "preempt", gpuNode())
	low := `workloads: ml: low: {kind: "batch", image: "img:1", priority: "low", env: BERTH_SIMULATED_DURATION: "4s", resources: {gpu: 8, flavor: "h100"}}
`
	s.team(8, low)
	s.until("low runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/low") == reconcile.PhaseRunning })
	s.team(8, low+`workloads: ml: high: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "3s", resources: {gpu: 8, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/high"); d.Action != berth.ActionPreempt {
		t.Fatalf("high: %s, want preempt\n%s", d.Action, runsText(cr))
	}
	j := s.job("low-1")
	if !*j.Spec.Suspend || j.Annotations[kube.AnnotationPhase] != "preempted" || !strings.Contains(j.Annotations[kube.AnnotationReason], "ml/high") {
		t.Fatalf("low after preemption: suspend=%v annotations=%v", *j.Spec.Suspend, j.Annotations)
	}
	cr = s.mustReconcile()
	if r := run(cr, "ml/low"); r.Phase != reconcile.PhasePreempted || !strings.Contains(r.Reason, "ml/high") {
		t.Fatalf("low: %s %q, want preempted by ml/high", r.Phase, r.Reason)
	}
	cr = s.until("high succeeds and low resumes", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/high") == reconcile.PhaseSucceeded && phase(cr, "ml/low").Holds()
	})
	// Resuming after a preemption is not a new attempt: it uses up no
	// retry.
	if r := run(cr, "ml/low"); r.Attempts != 1 || r.Failures() != 0 {
		t.Errorf("low resumed as attempt %d with %d failures, want attempt 1 and none", r.Attempts, r.Failures())
	}
	s.until("low succeeds", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/low") == reconcile.PhaseSucceeded })
}

// TestGangAllOrNothing: a gang that does not fit has no pod at all until
// every worker has a place.
func TestGangAllOrNothing(t *testing.T) {
	s := newScenario(t, "gang", gpuNode(), gpuNode())
	s.waitReadyNodes(2)
	s.team(16, `
workloads: ml: blocker: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "6s", resources: {gpu: 4, flavor: "h100"}}
workloads: ml: gang: {kind: "training", image: "img:1", priority: "low", workers: 2, env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 8, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/gang"); d.Action != berth.ActionQueue {
		t.Fatalf("gang: %s, want queued behind the blocker\n%s", d.Action, runsText(cr))
	}
	for i := 0; i < 5; i++ {
		if pods := s.pods("ml", "gang"); len(pods) != 0 {
			t.Fatalf("the gang that does not fit has %d pods", len(pods))
		}
		s.mustReconcile()
		time.Sleep(300 * time.Millisecond)
	}
	cr = s.until("the gang runs", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/gang").Holds() })
	if p := phase(cr, "ml/blocker"); p != reconcile.PhaseSucceeded {
		t.Fatalf("the gang started while the blocker is %s", p)
	}
	s.until("the gang succeeds", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/gang") == reconcile.PhaseSucceeded
	})
}

// TestFailureReason: a Job that is OOMKilled on every attempt fails with
// that reason after Kubernetes used its retries, and is not started again.
func TestFailureReason(t *testing.T) {
	s := newScenario(t, "fail", gpuNode())
	s.team(8, `
workloads: ml: oom: {kind: "batch", image: "img:1", retries: 1, resources: {gpu: 1, flavor: "h100"},
	env: {BERTH_SIMULATED_DURATION: "1s", BERTH_SIMULATED_EXIT: "137", BERTH_SIMULATED_REASON: "OOMKilled"}}
`)
	cr := s.until("oom fails", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/oom") == reconcile.PhaseFailed })
	r := run(cr, "ml/oom")
	if !strings.Contains(r.Reason, "OOMKilled") || r.Attempts != 2 {
		t.Fatalf("oom: reason %q attempts %d, want OOMKilled after 2 attempts", r.Reason, r.Attempts)
	}
	if failed := s.job("oom-1").Status.Failed; failed != 2 {
		t.Errorf("Kubernetes ran %d failing pods, want 2 (retries: 1)", failed)
	}
	cr = s.mustReconcile()
	if d := decision(cr, "ml/oom"); d.Action != berth.ActionDone {
		t.Errorf("oom after failing: %s, want done", d.Action)
	}
}

// TestServiceDriftAndPrune: a hand edit of a service is reverted, an
// autoscaler's replicas are left alone, and a service that leaves Git is
// pruned.
func TestServiceDriftAndPrune(t *testing.T) {
	s := newScenario(t, "svc", gpuNode())
	services := `
workloads: ml: web: {kind: "service", image: "nginx:1.27", replicas: 2, ports: [{name: "http", port: 80}], resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
workloads: ml: api: {kind: "service", image: "api:1", ports: [{port: 8080}], resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`
	s.team(8, services)
	s.until("services run", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/web") == reconcile.PhaseRunning && phase(cr, "ml/api") == reconcile.PhaseRunning
	})

	// kubectl edit of the image: berth takes it back.
	s.editDeployment("ml", "web", `{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:hacked"}]}}}}`)
	cr := s.until("the edit is seen", 30*time.Second, func(cr reconcile.ClusterReport) bool {
		for _, r := range cr.Results {
			if r.Change.Workload.Name == "web" && r.Change.Op == reconcile.OpRestart {
				return true
			}
		}
		return false
	})
	for _, r := range cr.Results {
		if r.Err != nil || (r.Change.Workload.Name == "web" && r.Outcome != reconcile.OutcomeConfigured) {
			t.Fatalf("revert: %s %s: %s %v", r.Change.Op, r.Change.Workload.ID(), r.Outcome, r.Err)
		}
	}
	// fluxcd/pkg/ssa's dry run names what changed.
	const edited = "changed outside berth: Deployment /spec/template/spec/containers/0/image"
	if r := run(cr, "ml/web"); !strings.Contains(r.Note, edited) {
		t.Errorf("ml/web's note %q does not say %q", r.Note, edited)
	}
	dep, err := s.env.Client.AppsV1().Deployments(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" {
		t.Fatalf("image after the revert: %s", img)
	}
	before := s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("after the revert a reconcile still changes %+v (%d writes); ml/web: %s", cr.Changes, s.writes.Load()-before, run(cr, "ml/web").Note)
	}

	// An autoscaler (the scale subresource, another manager) owns replicas:
	// berth leaves them, and still reverts an image edit.
	scale := []byte(`{"spec":{"replicas":3}}`)
	if _, err := s.env.Client.AppsV1().Deployments(s.ns("ml")).Patch(s.ctx, "web", types.MergePatchType, scale,
		metav1.PatchOptions{FieldManager: "horizontal-pod-autoscaler"}, "scale"); err != nil {
		t.Fatal(err)
	}
	before = s.writes.Load()
	time.Sleep(200 * time.Millisecond)
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Fatalf("berth fights the autoscaler: %+v", cr.Changes)
	}
	s.editDeployment("ml", "web", `{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:again"}]}}}}`)
	s.until("the second edit is reverted", 30*time.Second, func(cr reconcile.ClusterReport) bool {
		d, err := s.env.Client.AppsV1().Deployments(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == "nginx:1.27"
	})
	dep, _ = s.env.Client.AppsV1().Deployments(s.ns("ml")).Get(s.ctx, "web", metav1.GetOptions{})
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %d after berth's revert, want the autoscaler's 3", *dep.Spec.Replicas)
	}

	// api leaves Git: its Deployment and Service go, and the ledger says why.
	s.team(8, strings.Split(services, "\nworkloads: ml: api")[0]+"\n")
	cr = s.mustReconcile()
	for _, kind := range []string{"Deployment", "Service"} {
		var err error
		if kind == "Deployment" {
			_, err = s.env.Client.AppsV1().Deployments(s.ns("ml")).Get(s.ctx, "api", metav1.GetOptions{})
		} else {
			_, err = s.env.Client.CoreV1().Services(s.ns("ml")).Get(s.ctx, "api", metav1.GetOptions{})
		}
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s api after it left Git: %v", kind, err)
		}
	}
	cr = s.mustReconcile()
	if r := run(cr, "ml/api"); r.Phase != reconcile.PhaseStopped {
		t.Errorf("api: %s, want stopped (from the ledger)", r.Phase)
	}
	if p := phase(cr, "ml/web"); !p.Holds() {
		t.Errorf("web: %s after api was pruned", p)
	}
}

// TestAPIServerOutage: kube-apiserver stops for 30 s while berth keeps
// reconciling (and a commit lands); berth reports the cluster failed, then
// converges once it is back, with nothing lost or run twice. It has a
// control plane of its own: the outage leaves the controllers backing off.
func TestAPIServerOutage(t *testing.T) {
	testenv.SkipOrFail(t, kenvErr)
	s := newScenarioOn(t, testenv.Kube(t), "outage", gpuNode())
	s.team(8, `
workloads: ml: long: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "900s", resources: {gpu: 2, flavor: "h100"}}
workloads: ml: web: {kind: "service", image: "nginx:1.27", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`)
	s.until("running", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/long") == reconcile.PhaseRunning && phase(cr, "ml/web") == reconcile.PhaseRunning
	})
	if err := s.env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	restarted := false
	defer func() {
		if !restarted {
			s.env.StartAPIServer()
		}
	}()
	s.team(8, `
workloads: ml: long: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "900s", resources: {gpu: 2, flavor: "h100"}}
workloads: ml: web: {kind: "service", image: "nginx:1.27", resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
workloads: ml: late: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 2, flavor: "h100"}}
`)
	failures := 0
	for time.Since(stopped) < 30*time.Second {
		rep := s.reconcile()
		if rep.Clusters[0].Err != nil {
			failures++
		}
		time.Sleep(time.Second)
	}
	if failures == 0 {
		t.Fatal("no reconcile failed while the API server was down")
	}
	if err := s.env.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	s.until("the commit made during the outage is applied", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/late").Holds() || phase(cr, "ml/late") == reconcile.PhaseSucceeded
	})
	applied := time.Since(back)
	cr := s.until("converged after the outage", 3*time.Minute, func(cr reconcile.ClusterReport) bool {
		// web holds its place; whether its pod is Ready again is up to
		// KWOK (it marks pods Ready only once, and the node controller
		// may have marked them NotReady while the node's Lease could not
		// be renewed).
		return phase(cr, "ml/late") == reconcile.PhaseSucceeded && phase(cr, "ml/long") == reconcile.PhaseRunning &&
			phase(cr, "ml/web").Holds()
	})
	convergedAfter := time.Since(back)
	for _, id := range []string{"ml/long", "ml/web", "ml/late"} {
		if r := run(cr, id); r.Attempts != 1 {
			t.Errorf("%s: attempt %d after the outage, want 1 (nothing ran twice)", id, r.Attempts)
		}
	}
	jobs, err := s.env.Client.BatchV1().Jobs(s.ns("ml")).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 2 {
		t.Errorf("%d Jobs after the outage, want 2", len(jobs.Items))
	}
	// The second figure includes the kube-scheduler's, the Job
	// controller's and KWOK's own reconnection back-off.
	t.Logf("%d reconciles failed during the outage; %v after the API server was back berth had applied the commit made meanwhile; the cluster ran it by %v",
		failures, applied.Round(time.Millisecond), convergedAfter.Round(time.Millisecond))
}

// TestLeaderElection: of two replicas on one Lease only the holder
// applies; when it stops, the other takes over.
func TestLeaderElection(t *testing.T) {
	testenv.SkipOrFail(t, kenvErr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "berth-system"}}
	if _, err := kenv.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	replica := func(id string) *kube.Cluster {
		c, err := kube.New(kube.Options{Name: "gpu", Config: kenv.Config, LeaderElection: &kube.LeaderElection{
			Namespace: "berth-system", Name: "berth-test", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: %v", what, ctx.Err())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a := replica("replica-a")
	wait("a leads", a.Leading)
	b := replica("replica-b")
	time.Sleep(time.Second)
	if b.Leading() {
		t.Fatal("two replicas lead at once")
	}
	_, err := b.Apply(ctx, nil, []reconcile.Change{{Op: reconcile.OpQueue, Workload: berth.Workload{Team: "x", Name: "y", Kind: berth.KindBatch}}})
	var nl *kube.NotLeaderError
	if !errors.As(err, &nl) || nl.Holder != "replica-a" {
		t.Fatalf("Apply on the replica that does not lead: %v, want NotLeaderError naming replica-a", err)
	}
	start := time.Now()
	a.Close()
	wait("b takes over", b.Leading)
	t.Logf("b took over %v after a stopped", time.Since(start).Round(time.Millisecond))
}

// TestPeriodicTicks: berth creates a Job per cron tick itself (so each
// tick passes admission), and a tick that ran never runs again.
func TestPeriodicTicks(t *testing.T) {
	s := newScenario(t, "cron", gpuNode())
	// The engine's clock: just after today's 03:00 tick.
	y, m, d := time.Now().UTC().Date()
	now := time.Date(y, m, d, 3, 0, 30, 0, time.UTC)
	s.engine = reconcile.New(reconcile.Options{
		Clusters: []reconcile.Cluster{s.cluster},
		Loader:   cue.NewLoader(cue.Options{}),
		Now:      func() time.Time { return now },
	})
	s.team(8, `
workloads: ml: nightly: {kind: "batch", image: "img:1", schedule: "0 3 * * *", env: BERTH_SIMULATED_DURATION: "1s", resources: {gpu: 1, flavor: "h100"}}
`)
	tick := schedule.TickRunID("1", time.Date(y, m, d, 3, 0, 0, 0, time.UTC))
	tickRun := func(cr reconcile.ClusterReport, runID string) reconcile.RunState {
		r, _ := cr.Observed.Run(berth.RunKey{Workload: "ml/nightly", RunID: runID})
		return r
	}
	s.until("the tick ran", time.Minute, func(cr reconcile.ClusterReport) bool {
		return tickRun(cr, tick).Phase == reconcile.PhaseSucceeded
	})
	job := s.job(kube.JobName(berth.RunKey{Workload: "ml/nightly", RunID: tick}))
	if job.Annotations[kube.AnnotationRunID] != tick {
		t.Errorf("the tick's Job says run %q, want %q", job.Annotations[kube.AnnotationRunID], tick)
	}
	now = now.Add(5 * time.Minute)
	cr := s.mustReconcile()
	if r := tickRun(cr, tick); r.Attempts != 1 || len(cr.Changes) != 0 {
		t.Fatalf("the tick again: attempts %d, changes %+v", r.Attempts, cr.Changes)
	}
	// The next night's tick is a new run with a Job of its own.
	now = now.Add(24 * time.Hour)
	next := schedule.TickRunID("1", time.Date(y, m, d, 3, 0, 0, 0, time.UTC).Add(24*time.Hour))
	s.until("the next tick ran", time.Minute, func(cr reconcile.ClusterReport) bool {
		return tickRun(cr, next).Phase == reconcile.PhaseSucceeded
	})
}

// TestJobVanished: a running Job deleted behind berth's back, its ledger
// finalizer forced off, is never started again: the ledger recorded its
// start.
func TestJobVanished(t *testing.T) {
	s := newScenario(t, "vanish", gpuNode())
	s.team(8, `
workloads: ml: long: {kind: "batch", image: "img:1", retries: 1, env: BERTH_SIMULATED_DURATION: "1h", resources: {gpu: 1, flavor: "h100"}}
`)
	s.until("long runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/long") == reconcile.PhaseRunning })
	jobs := s.env.Client.BatchV1().Jobs(s.ns("ml"))
	if err := jobs.Delete(s.ctx, "long-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Patch(s.ctx, "long-1", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := s.until("long is gone", 30*time.Second, func(cr reconcile.ClusterReport) bool {
		_, err := jobs.Get(s.ctx, "long-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && phase(cr, "ml/long").Final()
	})
	r := run(cr, "ml/long")
	// Failed when berth next sees no Job; stopped when it saw the Job
	// terminating first (observe.go's jobRun), which a busy machine
	// sometimes lets it: either way it ended for JobDeleted, and (below)
	// it is never started again.
	if (r.Phase != reconcile.PhaseFailed && r.Phase != reconcile.PhaseStopped) || !strings.Contains(r.Reason, kube.ReasonJobDeleted) {
		t.Fatalf("long after its Job vanished: %s %q, want failed or stopped (JobDeleted)", r.Phase, r.Reason)
	}
	for range 3 {
		s.mustReconcile()
	}
	if _, err := jobs.Get(s.ctx, "long-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("long was started again (err %v)", err)
	}
}

// TestPartialGangGetsItsJobAtTheAdmittedCount: a gang with minWorkers that
// waited (its Job suspended at the full count) and is then admitted with
// fewer workers gets a Job of that many pods, which the Job controller
// and KWOK run to success.
func TestPartialGangGetsItsJobAtTheAdmittedCount(t *testing.T) {
	s := newScenario(t, "partial", gpuNode())
	s.waitReadyNodes(1)
	s.team(8, `
workloads: ml: first: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "4s", resources: {gpu: 7, flavor: "h100"}}
workloads: ml: hold: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "30s", resources: {gpu: 5, flavor: "h100"}}
workloads: ml: gang: {kind: "training", image: "img:1", priority: "low", workers: 4, minWorkers: 2, env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 1, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/gang"); d.Action != berth.ActionQueue {
		t.Fatalf("gang: %s, want queued while first runs\n%s", d.Action, runsText(cr))
	}
	if j := s.job("gang-1"); *j.Spec.Completions != 4 || !*j.Spec.Suspend {
		t.Fatalf("the waiting gang's Job: completions %d, suspended %v; want 4, suspended", *j.Spec.Completions, *j.Spec.Suspend)
	}
	s.until("the gang starts", time.Minute, func(cr reconcile.ClusterReport) bool {
		p := phase(cr, "ml/gang")
		return p.Holds() || p == reconcile.PhaseSucceeded
	})
	j := s.job("gang-1")
	if *j.Spec.Completions != 3 || *j.Spec.Parallelism != 3 || *j.Spec.Suspend {
		t.Fatalf("the admitted gang's Job: completions %d, parallelism %d, suspended %v; want 3, 3, running",
			*j.Spec.Completions, *j.Spec.Parallelism, *j.Spec.Suspend)
	}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "WORLD_SIZE" && e.Value != "3" {
			t.Errorf("WORLD_SIZE %s, want 3", e.Value)
		}
	}
	s.until("the gang succeeds", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/gang") == reconcile.PhaseSucceeded
	})
}
