package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// A workload's volumes on one machine are directories under the volume
// root (Options.VolumeRoot), each handed to the processes in
// BERTH_VOLUME_<NAME>:
//
//	<root>/<path>                                      a dataset (it must exist) or team volume (made when missing)
//	<root>/scratch/<team>/<name>/<runID>/attempt-<n>/pod-<i>  scratch, made empty for each pod, removed when the attempt ends
//
// Every directory is reached through an os.Root of the volume root, so
// neither a path nor a symbolic link inside the root leads out of it. One
// machine cannot make a directory read-only for one process and not
// another: a dataset's readOnly is a promise the workload keeps, which
// Kubernetes enforces.

// volumePlan is where the pods of one attempt find their volumes.
type volumePlan struct {
	// shared is BERTH_VOLUME_<NAME>=dir of each dataset and team volume.
	shared []string
	// scratch names the scratch volumes; each pod gets its own directory
	// of each under scratchDir.
	scratch []string
	// scratchDir is the attempt's scratch directory, relative to the
	// volume root ("" without scratch).
	scratchDir string
}

// planVolumes finds or makes the dataset and team volumes of attempt n of
// r and says where its scratch goes.
func (c *Cluster) planVolumes(r *record, w berth.Workload, n int) (volumePlan, error) {
	var vp volumePlan
	if len(w.Volumes) == 0 {
		return vp, nil
	}
	if err := os.MkdirAll(c.opts.VolumeRoot, 0o755); err != nil {
		return vp, fmt.Errorf("volume root: %w", err)
	}
	root, err := os.OpenRoot(c.opts.VolumeRoot)
	if err != nil {
		return vp, fmt.Errorf("volume root: %w", err)
	}
	defer root.Close()
	for _, name := range w.VolumeNames() {
		v := w.Volumes[name]
		if v.Kind == berth.VolumeScratch {
			vp.scratch = append(vp.scratch, name)
			continue
		}
		rel := v.LocalPath(w.Team)
		if !berth.ValidLocalPath(rel) {
			return vp, fmt.Errorf("volume %s: path %q escapes the volume root %s", name, v.Path, c.opts.VolumeRoot)
		}
		if v.Kind == berth.VolumeTeam {
			if err := root.MkdirAll(rel, 0o755); err != nil {
				return vp, fmt.Errorf("volume %s: %w", name, err)
			}
		}
		info, err := root.Stat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return vp, fmt.Errorf("volume %s: dataset directory %s does not exist: a dataset is read, never made; put the data there first",
				name, filepath.Join(c.opts.VolumeRoot, filepath.FromSlash(rel)))
		}
		if err != nil {
			return vp, fmt.Errorf("volume %s: %w", name, err)
		}
		if !info.IsDir() {
			return vp, fmt.Errorf("volume %s: %s is not a directory", name, filepath.Join(c.opts.VolumeRoot, filepath.FromSlash(rel)))
		}
		vp.shared = append(vp.shared, berth.VolumeEnv(name)+"="+filepath.Join(c.opts.VolumeRoot, filepath.FromSlash(rel)))
	}
	if len(vp.scratch) > 0 {
		vp.scratchDir = path.Join("scratch", pathSafe(r.Workload.Team()), pathSafe(r.Workload.Name()), pathSafe(r.RunID), "attempt-"+strconv.Itoa(n))
	}
	return vp, nil
}

// podEnv makes pod i's scratch directories, empty, and returns the
// variables that say where each volume is.
func (c *Cluster) podVolumeEnv(vp volumePlan, i int) ([]string, error) {
	if len(vp.scratch) == 0 {
		return vp.shared, nil
	}
	root, err := os.OpenRoot(c.opts.VolumeRoot)
	if err != nil {
		return nil, fmt.Errorf("volume root: %w", err)
	}
	defer root.Close()
	env := append([]string{}, vp.shared...)
	for _, name := range vp.scratch {
		rel := path.Join(vp.scratchDir, "pod-"+strconv.Itoa(i), name)
		// Left over by a start that crashed before it was recorded:
		// scratch starts empty.
		if err := root.RemoveAll(rel); err != nil {
			return nil, fmt.Errorf("scratch %s: %w", name, err)
		}
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return nil, fmt.Errorf("scratch %s: %w", name, err)
		}
		env = append(env, berth.VolumeEnv(name)+"="+filepath.Join(c.opts.VolumeRoot, filepath.FromSlash(rel)))
	}
	return env, nil
}

// cleanEnded removes what an attempt that ended leaves behind and no one
// reads again: its scratch, and the run's checkpoints when the run
// succeeded or was stopped for good and the spec does not keep them (a
// failed run keeps them: a retry resumes from them). A failure to remove
// is logged: the run's end is recorded regardless.
func (c *Cluster) cleanEnded(r *record) {
	if r.Attempt != nil && r.Attempt.Scratch != "" {
		if root, err := os.OpenRoot(c.opts.VolumeRoot); err == nil {
			if err := root.RemoveAll(r.Attempt.Scratch); err != nil {
				c.log.Warn("cannot remove scratch", "run", r.Key().String(), "dir", r.Attempt.Scratch, "err", err)
			}
			root.Close()
		}
	}
	if !r.DropCheckpoints || r.Ended == nil {
		return
	}
	if r.Ended.Phase == reconcile.PhaseSucceeded || r.Ended.Phase == reconcile.PhaseStopped {
		if err := os.RemoveAll(filepath.Join(c.opts.StateDir, checkpointDir(r.Workload, r.RunID))); err != nil {
			c.log.Warn("cannot remove checkpoints", "run", r.Key().String(), "err", err)
		}
	}
}

// pipelineEnv makes a step's output directory (one per run, kept across
// its attempts) and the attempt's inputs directory, which holds a link
// named after each step it reads to that step's current run's outputs.
// One machine cannot mount them read-only: the links are a promise.
func (c *Cluster) pipelineEnv(r *record, w berth.Workload, n int) ([]string, error) {
	var env []string
	if w.Outputs != nil {
		dir := filepath.Join(c.opts.StateDir, filepath.FromSlash(berth.LocalOutputDir(r.Workload, r.RunID)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		env = append(env, berth.EnvOutputDir+"="+dir)
	}
	if len(w.Inputs) == 0 {
		return env, nil
	}
	inputs := filepath.Join(c.opts.StateDir, attemptDir(r.Workload, r.RunID, n), "inputs")
	if err := os.RemoveAll(inputs); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	if err := os.MkdirAll(inputs, 0o755); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	for _, step := range w.Inputs {
		id := berth.MakeWorkloadID(r.Workload.Team(), step)
		var producer berth.Workload
		ok := c.cfg != nil
		if ok {
			producer, ok = c.cfg.Workloads[id]
		}
		if !ok {
			return nil, fmt.Errorf("inputs: step %s is not in the configuration", id)
		}
		dir := filepath.Join(c.opts.StateDir, filepath.FromSlash(berth.LocalOutputDir(id, producer.RunID)))
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("inputs: the outputs of %s run %s: %w (past their retention, or never written)", id, producer.RunID, err)
		}
		if err := os.Symlink(dir, filepath.Join(inputs, step)); err != nil {
			return nil, fmt.Errorf("inputs: %w", err)
		}
	}
	return append(env, berth.EnvInputsDir+"="+inputs), nil
}

// expireOutputs removes the outputs of every step run that succeeded
// longer ago than its retention, and records that they are gone.
func (c *Cluster) expireOutputs() error {
	now := c.opts.Now()
	var gone []*record
	for _, r := range c.ledger.runs {
		if r.OutputsRetention <= 0 || r.OutputsRemoved || r.Ended == nil || r.Ended.Phase != reconcile.PhaseSucceeded ||
			now.Before(r.Ended.FinishedAt.Add(r.OutputsRetention.D())) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.opts.StateDir, filepath.FromSlash(berth.LocalOutputDir(r.Workload, r.RunID)))); err != nil {
			c.log.Warn("cannot remove expired outputs", "run", r.Key().String(), "err", err)
			continue
		}
		n := r.clone()
		n.OutputsRemoved = true
		gone = append(gone, n)
	}
	return c.ledger.put(gone...)
}
