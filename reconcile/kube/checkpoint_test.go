package kube

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// TestCheckpointClaimPerRun: a run with a checkpoint names one claim that
// every attempt of the run renders (queued, started, retried), a new runId
// names another, and BERTH_CHECKPOINT_DIR is the spec's path; a run
// without a checkpoint names none.
func TestCheckpointClaimPerRun(t *testing.T) {
	cfg := kubeDemo(t)
	wl := cfg.Workloads["vision/resnet-train"]
	if wl.Checkpoint == nil {
		t.Fatal("the demo's training run has no checkpoint")
	}
	claim := func(r Run) (string, string) {
		t.Helper()
		objs, err := Render(renderOpts, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() == "Job" {
				var j batchv1.Job
				fromUnstructured(t, o.Object, &j)
				env := gangEnv(t, j)
				return o.GetAnnotations()[AnnotationCheckpointClaim], env["BERTH_CHECKPOINT_DIR"]
			}
		}
		t.Fatal("no Job")
		return "", ""
	}
	r := Run{Workload: wl, RunID: "1", Digest: berth.SpecDigest(wl), Path: wl.Pos.String(), Commit: "c1",
		Flavor: "h100", Priority: 100, QueuedSince: build.T0}
	queued, dir := claim(r)
	if queued != "resnet-train-1-checkpoints" || dir != wl.Checkpoint.Dir {
		t.Errorf("queued: claim %q, BERTH_CHECKPOINT_DIR %q; want resnet-train-1-checkpoints and %s", queued, dir, wl.Checkpoint.Dir)
	}
	r.Started, r.StartedAt, r.Attempts = true, build.T0, 3
	if retried, _ := claim(r); retried != queued {
		t.Errorf("attempt 3: claim %q, want the run's %q", retried, queued)
	}
	r2 := r
	r2.RunID, r2.Attempts, r2.Started = "2", 0, false
	r2.Workload.RunID = "2"
	if next, _ := claim(r2); next == queued || next == "" {
		t.Errorf("runId 2: claim %q, want its own", next)
	}
	r.Workload.Checkpoint = nil
	if none, _ := claim(r); none != "" {
		t.Errorf("no checkpoint: claim %q, want none", none)
	}
}
