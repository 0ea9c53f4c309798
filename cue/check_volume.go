package cue

import (
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
