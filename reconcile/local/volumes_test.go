package local

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

func (b *wl) Volume(name string, kind berth.VolumeKind, path string) *wl {
	if b.w.Volumes == nil {
		b.w.Volumes = map[string]berth.Volume{}
	}
	b.w.Volumes[name] = berth.Volume{Name: name, Kind: kind, MountPath: "/volumes/" + name, ReadOnly: kind == berth.VolumeDataset, Path: path}
	return b
}

// volumeCluster is a test cluster whose volumes live under root.
func volumeCluster(t *testing.T, root string) *Cluster {
	t.Helper()
	opts := testOptions(t.TempDir(), testLogger(t))
	opts.VolumeRoot = root
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })
	return c
}

// TestVolumesAreDirectoriesUnderTheRoot runs a two-worker gang with a
// dataset, a team volume and scratch, as real processes: each worker reads
// the dataset where BERTH_VOLUME_IMAGENET says, writes into the shared team
// volume, and finds its own scratch empty. When the run has succeeded, the
// scratch and the checkpoints are gone; the dataset and the team volume
// stay.
func TestVolumesAreDirectoriesUnderTheRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "datasets", "imagenet"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "datasets", "imagenet", "data.txt"), "pixels")
	script := `cat "$BERTH_VOLUME_IMAGENET/data.txt"; echo; ls -A "$BERTH_VOLUME_TMP" | wc -l; touch "$BERTH_VOLUME_TMP/mine";` +
		` echo "$RANK" > "$BERTH_VOLUME_RESULTS/rank-$RANK"; echo "$BERTH_VOLUME_TMP"; touch "$BERTH_CHECKPOINT_DIR/step-1"`
	w := batch("train", script).Kind(berth.KindTraining).Workers(2).Checkpoint().
		Volume("imagenet", berth.VolumeDataset, "").Volume("results", berth.VolumeTeam, "").Volume("tmp", berth.VolumeScratch, "").Obj()
	c := volumeCluster(t, root)
	apply(t, c, change(reconcile.OpStart, w, cpuOnly(), cpuOnly()))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	apply(t, c) // records the end, and cleans up after it

	var scratch []string
	for i := range 2 {
		out := strings.Fields(stdout(t, c, w.ID(), "1", i))
		if len(out) != 3 || out[0] != "pixels" || out[1] != "0" {
			t.Fatalf("pod %d printed %q, want the dataset's pixels, an empty scratch and its path", i, out)
		}
		if !strings.HasPrefix(out[2], filepath.Join(root, "scratch")+"/") {
			t.Errorf("pod %d's scratch %s is not under %s/scratch", i, out[2], root)
		}
		scratch = append(scratch, out[2])
	}
	if scratch[0] == scratch[1] {
		t.Errorf("both pods got scratch %s: each pod gets its own", scratch[0])
	}
	entries, err := os.ReadDir(filepath.Join(root, "teams", "vision", "results"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"rank-0", "rank-1"}) {
		t.Errorf("team volume holds %v, want both workers' files", names)
	}
	for _, gone := range append(scratch, filepath.Join(c.StateDir(), checkpointDir(w.ID(), "1"))) {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the run succeeded (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "datasets", "imagenet", "data.txt")); err != nil {
		t.Errorf("the dataset is gone: %v", err)
	}
}

// TestCheckpointsKeptWhenTheSpecSays: keep leaves a succeeded run's
// checkpoints where they are.
func TestCheckpointsKeptWhenTheSpecSays(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("train", `touch "$BERTH_CHECKPOINT_DIR/step-1"`).Checkpoint().Obj()
	w.Checkpoint.Keep = true
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	apply(t, c)
	if _, err := os.Stat(filepath.Join(c.StateDir(), checkpointDir(w.ID(), "1"), "step-1")); err != nil {
		t.Errorf("checkpoint of a run that keeps them: %v", err)
	}
}

// TestVolumeThatCannotBeHadFailsTheStart: a dataset that is not there, or
// a volume reached through a link out of the root, starts nothing and says
// why.
func TestVolumeThatCannotBeHadFailsTheStart(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	c := volumeCluster(t, root)
	for _, tc := range []struct {
		w    berth.Workload
		want string
	}{
		{batch("no-data", "true").Volume("imagenet", berth.VolumeDataset, "").Obj(), "datasets/imagenet does not exist"},
		{batch("escape", "true").Volume("out", berth.VolumeTeam, "elsewhere/x").Obj(), "volume out:"},
	} {
		res, err := c.Apply(context.Background(), nil, []reconcile.Change{change(reconcile.OpStart, tc.w, cpuOnly())})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.w.Name, res[0].Err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("berth made %v outside the volume root", entries)
	}
}

// TestPipelineOutputsReachTheNextStep, with real processes: prepare writes
// its outputs to BERTH_OUTPUT_DIR; train, which reads them, finds them at
// BERTH_INPUTS_DIR/prepare. Once prepare's retention has passed, its
// outputs are gone, and a step that would read them fails to start saying
// so.
func TestPipelineOutputsReachTheNextStep(t *testing.T) {
	opts := testOptions(t.TempDir(), testLogger(t))
	now := time.Now()
	opts.Now = func() time.Time { return now }
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })

	prepare := batch("prepare", `echo tokens > "$BERTH_OUTPUT_DIR/data.txt"`).Obj()
	prepare.Outputs = &berth.Outputs{Retention: berth.Duration(time.Hour)}
	train := batch("train", `cat "$BERTH_INPUTS_DIR/prepare/data.txt"`).Obj()
	train.DependsOn, train.Inputs = []string{"prepare"}, []string{"prepare"}
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{prepare.ID(): prepare, train.ID(): train}}
	run := func(w berth.Workload) error {
		t.Helper()
		res, err := c.Apply(context.Background(), cfg, []reconcile.Change{change(reconcile.OpStart, w, cpuOnly())})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Err
	}

	if err := run(prepare); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, prepare.ID(), "1", reconcile.PhaseSucceeded)
	if err := run(train); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, train.ID(), "1", reconcile.PhaseSucceeded)
	if got := strings.TrimSpace(stdout(t, c, train.ID(), "1", 0)); got != "tokens" {
		t.Errorf("train read %q from prepare's outputs, want tokens", got)
	}

	out := filepath.Join(c.StateDir(), "outputs", "vision", "prepare", "1")
	apply(t, c)
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("prepare's outputs within their retention: %v", err)
	}
	now = now.Add(2 * time.Hour)
	apply(t, c)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("prepare's outputs after their retention: %v, want them gone", err)
	}
	again := train
	again.RunID = "2"
	if err := run(again); err == nil || !strings.Contains(err.Error(), "past their retention") {
		t.Errorf("a step reading expired outputs: %v, want an error that says so", err)
	}
}
