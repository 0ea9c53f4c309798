package kube_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// mpi is a workload of two roles: a launcher on the CPU pool and four
// workers of two GPUs each, every pod running for the given time.
func mpi(priority, duration string) string {
	return `workloads: ml: mpi: {kind: "training", image: "img:1", priority: "` + priority + `", command: ["/pi"],
	roles: {
		launcher: {command: ["mpirun", "/pi"], resources: {cpu: "1", memory: "1Gi", flavor: "cpu"}, env: BERTH_SIMULATED_DURATION: "` + duration + `"}
		worker: {count: 4, resources: {gpu: 2, flavor: "h100"}, env: BERTH_SIMULATED_DURATION: "` + duration + `"}
	}}
`
}

// roleJobs returns the run's Jobs, launcher and worker, and its Service.
func (s *scenario) roleJobs() (launcher, worker *batchv1.Job) {
	s.t.Helper()
	return s.job("mpi-1-launcher"), s.job("mpi-1-worker")
}

// TestRolesRun: a workload of a launcher and workers waits behind a
// blocker with every role's Job created suspended, then is admitted whole:
// every role's Job is started in the same apply, each pinned to its
// flavor's nodes, with one Service for the run; KWOK runs every pod to
// completion and the run succeeds once every role has.
func TestRolesRun(t *testing.T) {
	s := newScenario(t, "roles", gpuNode(), gpuNode())
	s.waitReadyNodes(2)
	s.team(16, mpi("low", "3s")+`workloads: ml: blocker: {kind: "batch", image: "img:1", parallelism: 2, completions: 2,
	env: BERTH_SIMULATED_DURATION: "3s", resources: {gpu: 8, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/mpi"); d.Action != berth.ActionQueue {
		t.Fatalf("mpi: %s, want queued behind the blocker\n%s", d.Action, runsText(cr))
	}
	launcher, worker := s.roleJobs()
	for _, j := range []*batchv1.Job{launcher, worker} {
		if j.Spec.Suspend == nil || !*j.Spec.Suspend {
			t.Fatalf("Job %s of a waiting run is not suspended", j.Name)
		}
	}
	if pods := s.pods("ml", "mpi"); len(pods) != 0 {
		t.Fatalf("the waiting run has %d pods", len(pods))
	}
	cr = s.until("mpi is admitted", time.Minute, func(cr reconcile.ClusterReport) bool {
		return decision(cr, "ml/mpi").Action == berth.ActionAdmit
	})
	d := decision(cr, "ml/mpi")
	if len(d.Roles) != 2 {
		t.Fatalf("mpi admitted with roles %+v, want two", d.Roles)
	}
	for _, r := range cr.Results {
		if r.Err != nil {
			t.Fatalf("apply %s %s: %v", r.Change.Op, r.Change.Workload.ID(), r.Err)
		}
	}
	launcher, worker = s.roleJobs()
	for _, j := range []*batchv1.Job{launcher, worker} {
		if j.Spec.Suspend == nil || *j.Spec.Suspend {
			t.Fatalf("Job %s is suspended after the apply that admitted the run", j.Name)
		}
	}
	if n := *worker.Spec.Completions; n != 4 {
		t.Errorf("worker Job: %d completions, want 4", n)
	}
	if n := *launcher.Spec.Completions; n != 1 {
		t.Errorf("launcher Job: %d completions, want 1", n)
	}
	if cmd := launcher.Spec.Template.Spec.Containers[0].Command; strings.Join(cmd, " ") != "mpirun /pi" {
		t.Errorf("launcher command %v, want its role's", cmd)
	}
	// Each role pinned to the nodes berth chose for it.
	var workerNodes []string
	for _, rp := range d.Roles {
		if rp.Role == "worker" {
			for _, p := range rp.Placements {
				workerNodes = append(workerNodes, p.Node)
			}
		}
	}
	terms := worker.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for _, term := range terms {
		if n := term.MatchFields[0].Values[0]; !contains(workerNodes, n) {
			t.Errorf("worker Job allows node %s, which berth did not choose for workers (%v)", n, workerNodes)
		}
	}
	if _, err := s.env.Client.CoreV1().Services(s.ns("ml")).Get(s.ctx, "mpi-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("the run's Service: %v", err)
	}

	cr = s.until("every role runs", time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/mpi") == reconcile.PhaseRunning
	})
	r := run(cr, "ml/mpi")
	if len(r.Roles) != 2 || len(r.Roles[1].Placements) != 4 || r.Roles[1].Flavor != "h100" || r.Roles[0].Flavor != "cpu" {
		t.Errorf("observed roles %+v, want launcher on cpu and 4 workers on h100", r.Roles)
	}
	s.until("every pod of every role runs", time.Minute, func(reconcile.ClusterReport) bool {
		n := 0
		for _, p := range s.pods("ml", "mpi") {
			if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded {
				n++
			}
		}
		return n == 5
	})
	// Every pod has its global rank, as the local backend gives it: the
	// launcher's is its index (0); each worker's, written while it waited
	// at berth's scheduling gate, is the launcher's one pod plus its index.
	ranks := map[string]bool{}
	for _, p := range s.pods("ml", "mpi") {
		if len(p.Spec.SchedulingGates) > 0 {
			t.Errorf("pod %s still waits at %v", p.Name, p.Spec.SchedulingGates)
		}
		idx := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		rank := idx
		if p.Labels[kube.LabelRole] == "worker" {
			i, _ := strconv.Atoi(idx)
			if rank = p.Annotations[kube.AnnotationRank]; rank != strconv.Itoa(1+i) {
				t.Errorf("worker pod %s of index %s has rank %q, want %d", p.Name, idx, rank, 1+i)
			}
		}
		ranks[rank] = true
	}
	if len(ranks) != 5 || !ranks["0"] || !ranks["4"] {
		t.Errorf("the ranks of the run's pods are %v, want 0 to 4, each once", ranks)
	}
	s.until("the run succeeds", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/mpi") == reconcile.PhaseSucceeded
	})
	launcher, worker = s.roleJobs()
	for _, j := range []*batchv1.Job{launcher, worker} {
		if j.Status.Succeeded != *j.Spec.Completions {
			t.Errorf("Job %s: %d of %d pods succeeded", j.Name, j.Status.Succeeded, *j.Spec.Completions)
		}
	}
	// The ledger rebuilt from the objects has one entry for the run.
	if _, err := s.cluster.RebuildLedger(s.ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	cm, err := s.env.Client.CoreV1().ConfigMaps(s.ns("ml")).Get(s.ctx, kube.LedgerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e := cm.Data["mpi.1"]; !strings.Contains(e, `"phase":"succeeded"`) {
		t.Errorf("rebuilt ledger entry of mpi: %q, want succeeded", e)
	}
	// Done is done: a reconcile changes nothing.
	before := s.writes.Load()
	if cr := s.mustReconcile(); len(cr.Changes) != 0 || s.writes.Load() != before {
		t.Errorf("after the run succeeded a reconcile still changes %+v (%d writes)", cr.Changes, s.writes.Load()-before)
	}
}

// TestRolesPreempted: a higher-priority Job preempts a running run of
// several roles: every role's Job is suspended and says why, and the run
// resumes whole once the preemptor is done.
func TestRolesPreempted(t *testing.T) {
	s := newScenario(t, "rolespre", gpuNode())
	s.team(8, mpi("low", "4s"))
	s.until("mpi runs", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/mpi") == reconcile.PhaseRunning })
	s.team(8, mpi("low", "4s")+`workloads: ml: high: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 8, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/high"); d.Action != berth.ActionPreempt {
		t.Fatalf("high: %s, want preempt\n%s", d.Action, runsText(cr))
	}
	launcher, worker := s.roleJobs()
	for _, j := range []*batchv1.Job{launcher, worker} {
		if !*j.Spec.Suspend || j.Annotations[kube.AnnotationPhase] != "preempted" || !strings.Contains(j.Annotations[kube.AnnotationReason], "ml/high") {
			t.Fatalf("Job %s after the preemption: suspend=%v annotations=%v", j.Name, *j.Spec.Suspend, j.Annotations)
		}
	}
	cr = s.mustReconcile()
	if r := run(cr, "ml/mpi"); r.Phase != reconcile.PhasePreempted || !strings.Contains(r.Reason, "ml/high") {
		t.Fatalf("mpi: %s %q, want preempted by ml/high", r.Phase, r.Reason)
	}
	cr = s.until("high succeeds and mpi resumes", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/high") == reconcile.PhaseSucceeded && phase(cr, "ml/mpi").Holds()
	})
	if r := run(cr, "ml/mpi"); r.Attempts != 1 {
		t.Errorf("mpi resumed as attempt %d, want 1: a preemption uses up no retry", r.Attempts)
	}
	s.until("mpi succeeds", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/mpi") == reconcile.PhaseSucceeded })
}

// TestRolesFailTogether: when a role fails (here a worker, after its
// retries) while the launcher still runs, the gang cannot go on: berth
// stops the launcher too, and the run fails with the worker's reason.
func TestRolesFailTogether(t *testing.T) {
	s := newScenario(t, "rolesfail", gpuNode())
	s.team(8, `workloads: ml: mpi: {kind: "training", image: "img:1", command: ["/pi"],
	roles: {
		launcher: {resources: {cpu: "1", memory: "1Gi", flavor: "cpu"}, env: BERTH_SIMULATED_DURATION: "10m"}
		worker: {count: 2, resources: {gpu: 1, flavor: "h100"}, env: {BERTH_SIMULATED_DURATION: "1s", BERTH_SIMULATED_EXIT: "3"}}
	}}
`)
	cr := s.until("mpi fails", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/mpi") == reconcile.PhaseFailed })
	if r := run(cr, "ml/mpi"); !strings.Contains(r.Reason, "role worker: exit code 3") {
		t.Errorf("mpi failed with %q, want the worker's exit code", r.Reason)
	}
	launcher, _ := s.roleJobs()
	if !*launcher.Spec.Suspend || launcher.Annotations[kube.AnnotationPhase] != "failed" {
		t.Errorf("the launcher goes on after its workers failed: suspend=%v annotations=%v", *launcher.Spec.Suspend, launcher.Annotations)
	}
	cr = s.mustReconcile()
	if d := decision(cr, "ml/mpi"); d.Action != berth.ActionDone {
		t.Errorf("mpi after failing: %s, want done (its retries are used)", d.Action)
	}
}

// TestRolesPartial: a run that waited with every role's Job at its full
// count is admitted with fewer workers (minCount): its Jobs are made again
// at the admitted counts, which their pods are told.
func TestRolesPartial(t *testing.T) {
	s := newScenario(t, "rolespart", gpuNode())
	s.team(8, `workloads: ml: mpi: {kind: "training", image: "img:1", priority: "low", command: ["/pi"],
	roles: {
		launcher: {resources: {cpu: "1", memory: "1Gi", flavor: "cpu"}, env: BERTH_SIMULATED_DURATION: "2s"}
		worker: {count: 4, minCount: 2, resources: {gpu: 2, flavor: "h100"}, env: BERTH_SIMULATED_DURATION: "2s"}
	}}
workloads: ml: first: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "3s", resources: {gpu: 8, flavor: "h100"}}
workloads: ml: second: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "60s", resources: {gpu: 4, flavor: "h100"}}
`)
	cr := s.mustReconcile()
	if d := decision(cr, "ml/mpi"); d.Action != berth.ActionQueue {
		t.Fatalf("mpi: %s, want queued\n%s", d.Action, runsText(cr))
	}
	if _, worker := s.roleJobs(); *worker.Spec.Completions != 4 {
		t.Fatalf("the waiting worker Job has %d completions, want 4", *worker.Spec.Completions)
	}
	cr = s.until("mpi is admitted", time.Minute, func(cr reconcile.ClusterReport) bool {
		return decision(cr, "ml/mpi").Action == berth.ActionAdmit
	})
	if d := decision(cr, "ml/mpi"); d.Pods != 3 || d.PodsAsked != 5 {
		t.Errorf("mpi admitted with %d of %d pods, want 3 of 5 (2 of 4 workers)", d.Pods, d.PodsAsked)
	}
	launcher, worker := s.roleJobs()
	if *worker.Spec.Completions != 2 || *worker.Spec.Parallelism != 2 {
		t.Errorf("worker Job: %d completions, %d parallelism, want 2", *worker.Spec.Completions, *worker.Spec.Parallelism)
	}
	env := map[string]string{}
	for _, e := range launcher.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["BERTH_ROLES"] != "launcher=1,worker=2" || env["BERTH_WORLD_SIZE"] != "3" {
		t.Errorf("launcher env BERTH_ROLES=%q BERTH_WORLD_SIZE=%q, want launcher=1,worker=2 and 3", env["BERTH_ROLES"], env["BERTH_WORLD_SIZE"])
	}
	s.until("mpi succeeds", 2*time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/mpi") == reconcile.PhaseSucceeded })
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
