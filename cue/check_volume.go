package cue

import (
	"fmt"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// volumes checks what a workload mounts against the cluster it runs on:
// what a dataset or scratch volume cannot be, what a Kubernetes claim
// needs, and that a directory on one machine stays under the cluster's
// volume root.
func (c *checker) volumes(p string, w berth.Workload) {
	mounted := map[string]string{} // mount path -> what mounts it there
	if w.Checkpoint != nil {
		mounted[w.Checkpoint.Dir] = "checkpoint.dir"
	}
	cl, clusterKnown := c.cfg.Clusters[schedule.ClusterOf(c.cfg, w)]
	for _, name := range w.VolumeNames() {
		v := w.Volumes[name]
		vp := p + ".volumes." + name
		switch {
		case v.Kind == berth.VolumeDataset && !v.ReadOnly:
			c.errorf(vp+".readOnly", "a dataset is read-only: many runs read it at once; a volume runs write is kind team")
		case v.Kind == berth.VolumeScratch && v.ReadOnly:
			c.errorf(vp+".readOnly", "a read-only scratch volume would stay empty: scratch is made empty for each pod; drop readOnly")
		}
		if other, ok := mounted[v.MountPath]; ok {
			c.errorf(vp+".mountPath", "mountPath %s is also %s's: each volume needs its own", v.MountPath, other)
		} else {
			mounted[v.MountPath] = "volumes." + name
		}
		if c.partial || !clusterKnown {
			continue
		}
		switch cl.Backend {
		case berth.BackendKubernetes:
			if v.Kind != berth.VolumeScratch && v.Claim == "" && v.Size.IsZero() {
				c.errorf(vp, "volume %s on cluster %s (backend kubernetes) is a PersistentVolumeClaim: name an existing one (claim: %q) or give a size for berth to create one (size: \"100Gi\")", name, cl.Name, name)
			}
		case berth.BackendLocal:
			if v.Kind == berth.VolumeScratch {
				continue
			}
			if lp := v.Path; lp != "" && !berth.ValidLocalPath(lp) {
				c.errorf(vp+".path", "volume path %q escapes the volume root of cluster %s (%s): a path is relative to it and stays under it, e.g. path: %q",
					lp, cl.Name, berth.LocalVolumeRoot(cl), berth.Volume{Name: name, Kind: v.Kind}.LocalPath(w.Team))
			}
		}
	}
	if w.Checkpoint != nil && c.cfg.Clusters[schedule.ClusterOf(c.cfg, w)].Backend == berth.BackendKubernetes && !isAbs(w.Checkpoint.Dir) {
		c.errorf(p+".checkpoint.dir", "checkpoint.dir %q is where the container sees the run's claim: an absolute path, e.g. dir: \"/checkpoints\"", w.Checkpoint.Dir)
	}
}

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

// pipelineInputs checks that every step a workload reads the outputs of
// exists in its team, has outputs, and is one it depends on (directly or
// through other steps): otherwise it could start before they are written.
func (c *checker) pipelineInputs(p string, w berth.Workload) {
	if c.partial || len(w.Inputs) == 0 {
		return
	}
	deps := c.dependsOn(w)
	for i, step := range w.Inputs {
		ip := fmt.Sprintf("%s.inputs.%d", p, i)
		id := berth.MakeWorkloadID(w.Team, step)
		producer, ok := c.cfg.Workloads[id]
		switch {
		case !ok && c.invalid["workloads."+w.Team+"."+step]:
		case !ok:
			var same []string
			for other := range c.cfg.Workloads {
				if other.Team() == w.Team {
					same = append(same, other.Name())
				}
			}
			c.errorf(ip, "step %q does not exist in team %s: inputs name steps of the workload's own team%s", step, w.Team, suggest(step, same))
		case producer.Outputs == nil:
			c.errorf(ip, "step %s has no outputs to read: give it outputs: {} (it writes them to BERTH_OUTPUT_DIR)", step)
		case !deps[id]:
			c.errorf(ip, "reads the outputs of %s but does not depend on it, so it could start before they are written: add %q to dependsOn", step, step)
		}
	}
}

// dependsOn is every workload w depends on, directly or through others.
func (c *checker) dependsOn(w berth.Workload) map[berth.WorkloadID]bool {
	seen := map[berth.WorkloadID]bool{}
	todo := w.Dependencies()
	for len(todo) > 0 {
		id := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if d, ok := c.cfg.Workloads[id]; ok {
			todo = append(todo, d.Dependencies()...)
		}
	}
	return seen
}
