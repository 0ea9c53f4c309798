package berth

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// VolumeKind is what a volume holds and who shares it.
type VolumeKind string

const (
	// VolumeDataset is data many runs read: read-only, shared.
	VolumeDataset VolumeKind = "dataset"
	// VolumeTeam is the team's shared, read-write volume.
	VolumeTeam VolumeKind = "team"
	// VolumeScratch is empty space of one pod, removed when the pod ends.
	VolumeScratch VolumeKind = "scratch"
)

// Volume is storage a workload mounts.
type Volume struct {
	Name string     `json:"name"`
	Kind VolumeKind `json:"kind"`
	// MountPath is where the container sees it (Kubernetes).
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly"`
	// Claim is an existing PersistentVolumeClaim of the team's namespace
	// (Kubernetes).
	Claim string `json:"claim,omitempty"`
	// Size is the size of the claim berth creates when there is no Claim
	// (Kubernetes).
	Size Quantity `json:"size,omitzero"`
	// Path is the directory relative to the cluster's volume root (one
	// machine; empty: LocalPath's default).
	Path string `json:"path,omitempty"`
}

// DefaultCheckpointSize is the size of a run's checkpoint claim when the
// spec gives none.
var DefaultCheckpointSize = MustQuantity("10Gi")

// EnvVolumePrefix starts the variable that says where a volume is:
// BERTH_VOLUME_<NAME>, the name upper-cased with "-" as "_".
const EnvVolumePrefix = "BERTH_VOLUME_"

// VolumeEnv is the variable that says where the volume of a name is.
func VolumeEnv(name string) string {
	return EnvVolumePrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// LocalPath is the directory of a dataset or team volume on one machine,
// relative to the cluster's volume root: Path, or datasets/<name> and
// teams/<team>/<name>. It is cleaned; ValidLocalPath says whether it stays
// under the root.
func (v Volume) LocalPath(team string) string {
	switch {
	case v.Path != "":
		return path.Clean(v.Path)
	case v.Kind == VolumeDataset:
		return path.Join("datasets", v.Name)
	default:
		return path.Join("teams", team, v.Name)
	}
}

// ValidLocalPath reports whether p, relative to a volume root, names a
// directory under it: not absolute, no ".." that climbs out, not the root
// itself (which holds every team's volumes).
func ValidLocalPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return false
	}
	c := path.Clean(p)
	return c != "." && c != ".." && !strings.HasPrefix(c, "../")
}

// VolumeNames returns the workload's volume names, sorted.
func (w Workload) VolumeNames() []string {
	names := make([]string, 0, len(w.Volumes))
	for n := range w.Volumes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Mount kinds beyond the volume kinds.
const MountCheckpoint = "checkpoint"

// Mount is what a run mounts, as plans and pull-request comments show it.
type Mount struct {
	// Name is the volume's name ("checkpoints" for the checkpoint volume).
	Name string `json:"name"`
	// Kind is a volume kind or "checkpoint".
	Kind string `json:"kind"`
	// Path is where the workload finds it: the mount path in the
	// container (Kubernetes), the directory (one machine).
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Source is what backs it: "claim imagenet", "new claim of 10Gi per
	// pod", "directory".
	Source string `json:"source"`
}

// LocalVolumeRoot is the volume root of a local cluster as plans show it:
// its volumeRoot, or the default under berth's state directory.
func LocalVolumeRoot(c Cluster) string {
	if c.VolumeRoot != "" {
		return c.VolumeRoot
	}
	return "{state-dir}/volumes"
}

// Mounts lists what run runID of the workload mounts on cluster c: its
// checkpoints, its outputs, the inputs it reads, then its volumes by name.
func (w Workload) Mounts(c Cluster, runID string) []Mount {
	var out []Mount
	kube := c.Backend == BackendKubernetes
	if cp := w.Checkpoint; cp != nil {
		m := Mount{Name: "checkpoints", Kind: MountCheckpoint, Path: cp.Dir, Source: "a directory of the run, kept across its attempts"}
		if !kube {
			m.Path = path.Join("{state-dir}", LocalCheckpointDir(w.ID(), runID))
		} else {
			size := cp.Size
			if size.IsZero() {
				size = DefaultCheckpointSize
			}
			m.Source = "new claim of " + size.String() + " per run, kept across its attempts"
		}
		if !cp.Keep {
			m.Source += ", deleted once it succeeds"
		}
		out = append(out, m)
	}
	if o := w.Outputs; o != nil {
		m := Mount{Name: "outputs", Kind: MountOutput, Path: path.Join("{state-dir}", LocalOutputDir(w.ID(), runID)),
			Source: "a directory of the run, kept " + o.Retention.String() + " after it succeeds"}
		if kube {
			size := o.Size
			if size.IsZero() {
				size = DefaultCheckpointSize
			}
			m.Path = KubeOutputDir
			m.Source = "new claim of " + size.String() + " per run, kept " + o.Retention.String() + " after it succeeds"
		}
		out = append(out, m)
	}
	for _, step := range w.Inputs {
		m := Mount{Name: step, Kind: MountInput, ReadOnly: true, Source: "the outputs of " + step + "'s current run",
			Path: path.Join("{BERTH_INPUTS_DIR}", step)}
		if kube {
			m.Path = path.Join(KubeInputsDir, step)
		}
		out = append(out, m)
	}
	for _, name := range w.VolumeNames() {
		v := w.Volumes[name]
		m := Mount{Name: name, Kind: string(v.Kind), ReadOnly: v.ReadOnly}
		switch {
		case kube:
			m.Path = v.MountPath
			switch {
			case v.Kind == VolumeScratch:
				m.Source = "new claim of " + v.Size.String() + " per pod"
			case v.Claim != "":
				m.Source = "claim " + v.Claim
			default:
				m.Source = "claim " + VolumeClaimName(v) + " of " + v.Size.String() + " (made once, kept)"
			}
		case v.Kind == VolumeScratch:
			m.Path = path.Join(LocalVolumeRoot(c), "scratch", w.Team, w.Name)
			m.Source = "a directory per pod, removed when it ends"
		default:
			m.Path = path.Join(LocalVolumeRoot(c), v.LocalPath(w.Team))
			m.Source = "directory"
		}
		out = append(out, m)
	}
	return out
}

// VolumeClaimName is the PersistentVolumeClaim berth creates for a dataset
// or team volume without a claim: one per team namespace and volume name,
// so every workload of the team that names it shares it.
func VolumeClaimName(v Volume) string { return string(v.Kind) + "-" + v.Name }

// LocalCheckpointDir is a run's checkpoint directory on one machine,
// relative to berth's state directory: checkpoints/<team>/<name>/<runId>,
// each part made safe for a path.
func LocalCheckpointDir(id WorkloadID, runID string) string {
	return path.Join("checkpoints", PathSafe(id.Team()), PathSafe(id.Name()), PathSafe(runID))
}

// PathSafe makes a name safe as one path element: team, workload and run
// names are already [A-Za-z0-9._-], but a run id from elsewhere may not be.
func PathSafe(s string) string {
	safe := s != "" && s != "." && s != ".."
	for i := 0; safe && i < len(s); i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	out := b.String()
	if out == "" || out == "." || out == ".." {
		out = "%" + out
	}
	return out
}

// Outputs is what a pipeline step leaves for the steps that read it.
type Outputs struct {
	// Retention is how long the outputs stay after the step succeeded.
	Retention Duration `json:"retention"`
	// Size is the size of the run's claim on Kubernetes (zero:
	// DefaultCheckpointSize).
	Size Quantity `json:"size,omitzero"`
}

// Environment of pipeline steps.
const (
	// EnvOutputDir is where a step with outputs writes them.
	EnvOutputDir = "BERTH_OUTPUT_DIR"
	// EnvInputsDir holds one directory per step whose outputs a step
	// reads, named after the step.
	EnvInputsDir = "BERTH_INPUTS_DIR"
)

// Mount kinds of pipelines.
const (
	MountOutput = "output"
	MountInput  = "input"
)

// LocalOutputDir is a step run's output directory on one machine,
// relative to berth's state directory.
func LocalOutputDir(id WorkloadID, runID string) string {
	return path.Join("outputs", PathSafe(id.Team()), PathSafe(id.Name()), PathSafe(runID))
}

// Where a container finds a pipeline's outputs and inputs on Kubernetes.
const (
	KubeOutputDir = "/berth/outputs"
	KubeInputsDir = "/berth/inputs"
)
