package reconcile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/berth-gpu/berth/reconcile"
)

// TestCheckpointSurvivesPreemption runs a training run as a real process
// that writes a checkpoint and then trains on, has it preempted by a
// higher-priority run that needs the whole box, and checks that when it
// is admitted again it starts with BERTH_RESUME=1 and BERTH_RESUME_FROM
// naming the checkpoint its first attempt wrote, in the same directory.
// (A run's checkpoints are removed when it succeeds unless it keeps them;
// the local backend's TestCheckpointsKeptWhenTheSpecSays tests that.)
func TestCheckpointSurvivesPreemption(t *testing.T) {
	// The script: resume when told to (record what from, and finish);
	// otherwise write step-100 under a temporary name, rename it complete,
	// and train until stopped.
	const script = `
if [ "$BERTH_RESUME" = 1 ]; then
  echo "attempt $BERTH_ATTEMPT resumed from $BERTH_RESUME_FROM" > "$BERTH_CHECKPOINT_DIR/.resumed"
  exit 0
fi
echo weights > "$BERTH_CHECKPOINT_DIR/.step-100.tmp"
mv "$BERTH_CHECKPOINT_DIR/.step-100.tmp" "$BERTH_CHECKPOINT_DIR/step-100"
while true; do sleep 1; done`
	train := `workloads: t: train: {
	kind: "training", priority: "low", workers: 2
	command: ["sh", "-c", ` + quote(script) + `]
	resources: {gpu: 2, cpu: 1, memory: "1Gi"}
	checkpoint: {dir: "/checkpoints", keep: true} // kept to read the trace after success
}
`
	e, c, rev := localEngine(t, train)
	ckpt := filepath.Join(c.StateDir(), "checkpoints", "t", "train", "1")
	until(t, e, rev, "t/train", func(r reconcile.RunState) bool {
		_, err := os.Stat(filepath.Join(ckpt, "step-100"))
		return r.Phase == reconcile.PhaseRunning && err == nil
	})

	// A production run that needs all four GPUs preempts it.
	rev.Commit, rev.Name = "2", "main@sha1:2"
	rev.FS.(fstest.MapFS)["w/w.cue"].Data = []byte("package w\n" + train + `workloads: t: urgent: {
	kind: "batch", priority: "production"
	command: ["sh", "-c", "sleep 1"]
	resources: {gpu: 4, cpu: 1, memory: "1Gi"}
}
`)
	until(t, e, rev, "t/train", func(r reconcile.RunState) bool { return r.Phase == reconcile.PhasePreempted })

	// When urgent has finished, train is admitted again and resumes.
	r := until(t, e, rev, "t/train", func(r reconcile.RunState) bool { return r.Phase.Final() })
	if r.Phase != reconcile.PhaseSucceeded || r.Attempts != 2 {
		t.Fatalf("train after the preemption: %+v, want succeeded on its second attempt", r)
	}
	got, err := os.ReadFile(filepath.Join(ckpt, ".resumed"))
	if err != nil {
		t.Fatalf("the resumed attempt left no trace: %v", err)
	}
	want := "attempt 2 resumed from " + filepath.Join(ckpt, "step-100")
	if s := strings.TrimSpace(string(got)); s != want {
		t.Errorf("the resumed attempt says %q, want %q", s, want)
	}
}

// quote is s as a CUE string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
