package kube

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// TestLostRunKeepsItsPlaceWithinASecond: train was first seen waiting at
// 09:00:00.2 and admitted; later, of equal priority, at 09:00:00.7, and
// waits for the team's quota. train's node is lost and berth suspends its
// Job as preempted. What the Jobs then say, read back as Observe reads
// them, must keep train first: cut to the second the two queued-sinces
// tie, and "later" goes first by name and takes the quota (what the
// node-loss test on the real control plane saw, issue 13).
func TestLostRunKeepsItsPlaceWithinASecond(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").
		Team(build.Team("ml").Quota("h100", build.GPU("8"))).
		Workload(build.Workload("ml", "train").Training(1).GPUs(8).Checkpoint("/ckpt"),
			build.Workload("ml", "later").Training(1).GPUs(8)).Obj()
	trainSince, laterSince := build.T0.Add(200*time.Millisecond), build.T0.Add(700*time.Millisecond)
	now := build.T0.Add(5 * time.Second)

	// train: admitted on n1, started, then stopped for its lost node as
	// stopJob records it (the run from the Job's annotations, preempted).
	train := baseRun(cfg, change(cfg, "ml/train", trainSince, "n1"), build.T0.Add(time.Second))
	train.Started, train.StartedAt, train.Attempts = true, build.T0.Add(time.Second), 1
	prev, ok := runFromAnnotations(jobOf(t, train).GetAnnotations())
	if !ok {
		t.Fatal("the started Job's annotations do not give its run back")
	}
	prev.Started = false
	prev.Phase, prev.Reason, prev.StoppedAt = reconcile.PhasePreempted, "node n1 is gone", now
	// later: a suspended Job, never started.
	later := baseRun(cfg, change(cfg, "ml/later", laterSince, ""), build.T0.Add(time.Second))

	obs := &reconcile.Observed{
		Snapshot: berth.Snapshot{Nodes: []berth.Node{build.Node("n2").GPUs(8, "H100").Obj()}},
		Runs:     []reconcile.RunState{observeJob(t, jobOf(t, later)), observeJob(t, jobOf(t, prev))},
	}
	for _, r := range obs.Runs {
		want := map[berth.WorkloadID]time.Time{"ml/train": trainSince, "ml/later": laterSince}[r.Workload]
		if !r.QueuedSince.Equal(want) {
			t.Errorf("%s reads back queued since %s, want %s", r.Workload, r.QueuedSince.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	plan := reconcile.Plan(cfg, "c1", obs, now, schedule.Options{})
	for id, want := range map[berth.WorkloadID]berth.Action{"ml/train": berth.ActionAdmit, "ml/later": berth.ActionQueue} {
		if d, _ := plan.Decision(id); d.Action != want {
			t.Errorf("%s: %s, want %s (train was first seen waiting, 0.5 s before later)", id, d.Action, want)
		}
	}
}

// change is the start of run 1 of a workload as the scheduler decides it:
// first seen waiting at since, placed on node (none for one that waits).
func change(cfg *berth.Config, id berth.WorkloadID, since time.Time, node string) reconcile.Change {
	w := cfg.Workloads[id]
	d := berth.Decision{Workload: id, RunID: "1", Team: w.Team, Kind: w.Kind, Flavor: "h100", Since: since}
	if node != "" {
		d.Action, d.Placements = berth.ActionAdmit, []berth.Placement{{Node: node, GPUs: []int{0, 1, 2, 3, 4, 5, 6, 7}}}
	}
	return reconcile.Change{Op: reconcile.OpStart, Workload: w, RunID: "1", Digest: berth.SpecDigest(w), Decision: d, Revision: "main@sha1:c1"}
}

// jobOf is the Job a run renders into.
func jobOf(t *testing.T, r Run) *unstructured.Unstructured {
	t.Helper()
	objs, err := Render(renderOpts, r)
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].GetKind() != kindJob {
		t.Fatalf("%s renders a %s first, want a Job", r.Workload.ID(), objs[0].GetKind())
	}
	return objs[0]
}

// observeJob is the run Observe reads from a Job without pods (jobRun).
func observeJob(t *testing.T, u *unstructured.Unstructured) reconcile.RunState {
	t.Helper()
	var job batchv1.Job
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &job); err != nil {
		t.Fatal(err)
	}
	w, _ := specOf(job.Annotations)
	st := JobState(&job, nil)
	return jobRunState(job.Labels[LabelTeam], job.Labels[LabelWorkload], job.Annotations[AnnotationRunID], job.Labels[LabelKind],
		job.Annotations, w, st.Phase, st.Reason, st.FinishedAt)
}
