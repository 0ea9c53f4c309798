package kube

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

func (b *jobB) deleted() *jobB {
	b.j.DeletionTimestamp = &metav1.Time{Time: t0.Add(time.Minute)}
	return b
}

// TestRolesState: the Jobs of a run of several roles read as one run, all
// or nothing.
func TestRolesState(t *testing.T) {
	running := []*corev1.Pod{pod(corev1.PodRunning).obj()}
	pending := []*corev1.Pod{pod(corev1.PodPending).condition(corev1.PodScheduled, corev1.ConditionFalse, corev1.PodReasonUnschedulable, "0/2 nodes are available").obj()}
	failedPods := []*corev1.Pod{pod(corev1.PodFailed).terminated("", 3).obj()}
	complete := func() *batchv1.Job { return job().cond(batchv1.JobComplete, "", "").obj() }
	failed := func() *batchv1.Job { return job().cond(batchv1.JobFailed, "BackoffLimitExceeded", "").failed(2).obj() }
	preempted := func() *batchv1.Job {
		return job().suspended().annotate(AnnotationPhase, "preempted").annotate(AnnotationReason, "preempted by a/b").obj()
	}
	for _, tc := range []struct {
		name      string
		jobs      []*batchv1.Job
		pods      [][]*corev1.Pod
		phase     reconcile.Phase
		reason    string
		podFailed string
	}{
		{"every role suspended: queued", []*batchv1.Job{job().suspended().obj(), job().suspended().obj()}, nil, reconcile.PhaseQueued, "", ""},
		{"a role not created yet: queued", []*batchv1.Job{job().suspended().obj(), nil}, nil, reconcile.PhaseQueued, "", ""},
		{"every role runs: running", []*batchv1.Job{job().obj(), job().obj()}, [][]*corev1.Pod{running, running}, reconcile.PhaseRunning, "", ""},
		{"one role waits for a node: admitted", []*batchv1.Job{job().obj(), job().obj()}, [][]*corev1.Pod{running, pending},
			reconcile.PhaseAdmitted, "role worker: Unschedulable: 0/2 nodes are available", ""},
		{"launcher done, workers run: running", []*batchv1.Job{complete(), job().obj()}, [][]*corev1.Pod{nil, running}, reconcile.PhaseRunning, "", ""},
		{"every role completed: succeeded", []*batchv1.Job{complete(), complete()}, nil, reconcile.PhaseSucceeded, "", ""},
		{"a role failed, the other runs: the gang must stop", []*batchv1.Job{job().obj(), failed()}, [][]*corev1.Pod{running, failedPods},
			reconcile.PhaseRunning, "", "role worker: exit code 3 (2 pods failed)"},
		{"a role failed, the other stopped: failed", []*batchv1.Job{job().suspended().annotate(AnnotationPhase, "failed").obj(), failed()},
			[][]*corev1.Pod{nil, failedPods}, reconcile.PhaseFailed, "role worker: exit code 3 (2 pods failed)", ""},
		{"a role's Job deleted: stopped", []*batchv1.Job{job().suspended().obj(), job().suspended().deleted().obj()}, nil,
			reconcile.PhaseStopped, "role worker: JobDeleted: the Job was deleted before it ended", ""},
		{"every role preempted", []*batchv1.Job{preempted(), preempted()}, nil, reconcile.PhasePreempted, "preempted by a/b", ""},
		{"stopped half way: still holds", []*batchv1.Job{preempted(), job().obj()}, [][]*corev1.Pod{nil, running}, reconcile.PhaseRunning, "", ""},
		{"one role started alone: the gang must stop", []*batchv1.Job{job().obj(), job().suspended().obj()}, [][]*corev1.Pod{running, nil},
			reconcile.PhaseRunning, "", "role worker did not start with the others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods := tc.pods
			if pods == nil {
				pods = make([][]*corev1.Pod, len(tc.jobs))
			}
			st := RolesState([]string{"launcher", "worker"}, tc.jobs, pods, func(i int) int { return []int{1, 4}[i] })
			if st.Phase != tc.phase || st.Reason != tc.reason || st.PodFailed != tc.podFailed {
				t.Errorf("got %s %q (pod failed %q), want %s %q (pod failed %q)", st.Phase, st.Reason, st.PodFailed, tc.phase, tc.reason, tc.podFailed)
			}
			if tc.podFailed != "" && st.Pods != 5 {
				t.Errorf("pods %d, want 5: the engine stops a gang of more than one pod", st.Pods)
			}
		})
	}
}

// TestRoleEnv: each role's pods learn their role, their rank in it, every
// role's size and, where Kubernetes can say it, their rank in the run; a
// partially admitted role has as many pods as placements.
func TestRoleEnv(t *testing.T) {
	r := rolesRun(t0)
	r.Started = true
	r.Roles = []RoleRun{
		{Role: "launcher", Flavor: "cpu", Placements: []berth.Placement{{Node: "c1"}}},
		{Role: "worker", Flavor: "h100", Placements: []berth.Placement{{Node: "g1", GPUs: []int{0}}, {Node: "g1", GPUs: []int{1}}}},
	}
	objs, err := Render(renderOpts, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 || objs[0].GetName() != "mpi-train-1-launcher" || objs[1].GetName() != "mpi-train-1-worker" ||
		objs[2].GetKind() != "Service" || objs[2].GetName() != "mpi-train-1" {
		t.Fatalf("objects: %v", names(objs))
	}
	for i, want := range []map[string]string{
		{"BERTH_RANK": "<index>", "BERTH_RANK_OFFSET": "0", "BERTH_ROLE": "launcher", "BERTH_ROLE_RANK": "<index>", "BERTH_ROLE_SIZE": "1",
			"BERTH_ROLES": "launcher=1,worker=2", "BERTH_WORLD_SIZE": "3", "BERTH_MASTER_ADDR": "mpi-train-1-launcher-0.mpi-train-1", "NCCL_DEBUG": "WARN"},
		{"BERTH_RANK": "<rank>", "BERTH_RANK_OFFSET": "1", "BERTH_ROLE": "worker", "BERTH_ROLE_RANK": "<index>", "BERTH_ROLE_SIZE": "2",
			"BERTH_ROLES": "launcher=1,worker=2", "BERTH_WORLD_SIZE": "3", "BERTH_MASTER_ADDR": "mpi-train-1-launcher-0.mpi-train-1", "NCCL_DEBUG": "INFO"},
	} {
		var j batchv1.Job
		fromUnstructured(t, objs[i].Object, &j)
		if n := *j.Spec.Completions; n != int32(len(r.Roles[i].Placements)) || *j.Spec.Parallelism != n {
			t.Errorf("%s: %d completions, want one per placement", j.Name, n)
		}
		env := map[string]string{}
		for _, e := range j.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
			if e.ValueFrom != nil {
				env[e.Name] = "<index>"
				if strings.Contains(e.ValueFrom.FieldRef.FieldPath, AnnotationRank) {
					env[e.Name] = "<rank>"
				}
			}
		}
		// The worker (after the launcher, two pods) waits at berth's gate
		// until its pods have their rank; the launcher does not.
		gated := len(j.Spec.Template.Spec.SchedulingGates) == 1 && j.Spec.Template.Spec.SchedulingGates[0].Name == RankGate &&
			j.Spec.Template.Annotations[AnnotationRankOffset] == "1"
		if gated != (i == 1) {
			t.Errorf("%s: gated %v (gates %v, annotations %v), want %v", j.Name, gated, j.Spec.Template.Spec.SchedulingGates, j.Spec.Template.Annotations, i == 1)
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s=%q, want %q", j.Name, k, env[k], v)
			}
		}
		if j.Spec.Template.Spec.Subdomain != "mpi-train-1" {
			t.Errorf("%s: subdomain %q, want the run's Service", j.Name, j.Spec.Template.Spec.Subdomain)
		}
	}
	// The annotations give the run's roles back (the node labels come from
	// the configuration or the live Job).
	back, ok := runFromAnnotations(objs[1].GetAnnotations())
	if !ok || len(back.Roles) != 2 || back.Roles[1].Role != "worker" || back.Roles[1].Flavor != "h100" || len(back.Roles[1].Placements) != 2 {
		t.Errorf("roles read back from the annotations: %+v", back.Roles)
	}
	// One role of one pod after several: its rank is a number.
	r.Workload.Roles["zeta"] = berth.Role{Name: "zeta", Count: 1}
	r.Roles = append(r.Roles, RoleRun{Role: "zeta", Placements: []berth.Placement{{Node: "c1"}}})
	objs, err = Render(renderOpts, r)
	if err != nil {
		t.Fatal(err)
	}
	var j batchv1.Job
	fromUnstructured(t, objs[2].Object, &j)
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "BERTH_RANK" && e.Value != "3" {
			t.Errorf("zeta: BERTH_RANK %q, want 3", e.Value)
		}
	}
}

func TestRoleJobName(t *testing.T) {
	long := berth.WorkloadID("vision/a-very-long-workload-name-that-goes-on-and-on-and-on")
	for _, tc := range []struct {
		id          berth.WorkloadID
		runID, role string
		want        string
	}{
		{"vision/mpi", "1", "worker", "mpi-1-worker"},
		{"vision/mpi", "Run_2", "worker", "mpi-run-2-worker-"},
		{long, "1", "launcher", "a-very-long-workload-name-that-g-launcher-"},
	} {
		got := RoleJobName(berth.RunKey{Workload: tc.id, RunID: tc.runID}, tc.role)
		if len(got) > maxJobName {
			t.Errorf("RoleJobName(%s, %s, %s) = %q: %d characters", tc.id, tc.runID, tc.role, got, len(got))
		}
		if !strings.HasPrefix(got, tc.want) || (!strings.HasSuffix(tc.want, "-") && got != tc.want) {
			t.Errorf("RoleJobName(%s, %s, %s) = %q, want %q...", tc.id, tc.runID, tc.role, got, tc.want)
		}
	}
	if RoleJobName(berth.RunKey{Workload: long, RunID: "1"}, "launcher") == RoleJobName(berth.RunKey{Workload: long, RunID: "1"}, "worker") {
		t.Error("two roles of a long name share a Job name")
	}
}

func names(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetKind() + " " + o.GetName()
	}
	return out
}

func fromUnstructured(t *testing.T, m map[string]any, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, into); err != nil {
		t.Fatal(err)
	}
}
