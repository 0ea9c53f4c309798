package kube

import (
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
)

// A run's storage on Kubernetes is PersistentVolumeClaims, never a
// hostPath:
//
//   - its checkpoints: one claim per run (CheckpointClaimName), made
//     before its first pod and mounted at checkpoint.dir by every attempt,
//     on whichever node; deleted when the run succeeds or is stopped for
//     good, unless checkpoint.keep (apply_prune.go);
//   - a dataset or team volume: the claim it names, or one berth makes
//     per team namespace and volume name (VolumeClaimName) and never
//     deletes;
//   - scratch: a generic ephemeral volume, a claim per pod that Kubernetes
//     makes with the pod, and berth deletes once the pod has ended;
//   - a pipeline step's outputs: one claim per run (OutputsClaimName),
//     mounted at /berth/outputs, and read-only at /berth/inputs/<step> by
//     the steps that read it; deleted once its retention has passed after
//     the run succeeded, or when it is stopped for good.
//
// Claims berth makes take the cluster's storageClass (absent: the
// cluster's default class).

// volumeName is the pod volume of a workload volume ("v-" keeps it apart
// from the checkpoint volume's name).
func volumeName(name string) string { return "v-" + name }

// The pod volumes of the run's checkpoint and outputs claims.
const (
	checkpointVolume = "berth-checkpoints"
	outputsVolume    = "berth-outputs"
)

// resumes reports whether r's pods are told to resume from checkpoints.
func resumes(r Run) bool {
	return r.Resume && r.Workload.Checkpoint != nil && r.Workload.Checkpoint.Resume
}

// templateAnnotations are the pod template's annotations of a Job: the
// resume mark the pods read through the downward API. A suspended Job's
// template annotations may change, so a resumed Job's pods see it.
func templateAnnotations(r Run) map[string]string {
	if !resumes(r) {
		return nil
	}
	return map[string]string{AnnotationResume: "1"}
}

// resumeScript starts the workload's command (its arguments) as a resumed
// attempt when the run's checkpoint directory holds a checkpoint, as the
// local backend does: BERTH_RESUME=1 and BERTH_RESUME_FROM, the newest
// entry by modification time. Names starting with "." are left out (a
// checkpoint written under a temporary name and renamed when complete),
// and so is lost+found, which a new ext4 volume holds. It looks when the
// container starts, so it holds for every way a pod starts again: berth
// resuming a preempted run or one that lost its node, and the Job
// controller retrying a failed pod with the same template. A run's claim
// is new and empty for its first attempt.
const resumeScript = `d=$BERTH_CHECKPOINT_DIR f=
if [ "$BERTH_CHECKPOINT_RESUME" = true ] && [ -d "$d" ]; then f=$(ls -t "$d" | grep -vx 'lost+found' | head -n 1); fi
if [ -n "$f" ]; then export BERTH_RESUME=1 BERTH_RESUME_FROM="$d/$f"; else unset BERTH_RESUME BERTH_RESUME_FROM; fi
exec "$@"`

// ResumeShell is the shell the container's command is wrapped in
// (wrapResume): the image needs a POSIX shell with ls, grep and head, as
// every Python and PyTorch image has.
const ResumeShell = "/bin/sh"

// wrapResume wraps the container's command in resumeScript when the
// workload resumes from checkpoints, and reports whether it did. A
// container without a command runs its image's entrypoint, which berth
// does not know and so cannot wrap: it gets BERTH_RESUME from the pod's
// resume mark (templateAnnotations) instead, without BERTH_RESUME_FROM.
func wrapResume(w berth.Workload, c *corev1.Container) bool {
	if w.Checkpoint == nil || !w.Checkpoint.Resume || len(c.Command) == 0 {
		return false
	}
	c.Command = append([]string{ResumeShell, "-c", resumeScript, "berth-resume"}, c.Command...)
	return true
}

// storageEnv says where the workload's storage is: the checkpoint
// directory, whether to resume (from the pod's own annotation: it is
// there only on a run that started before), and each volume's mount path.
func storageEnv(w berth.Workload) []corev1.EnvVar {
	var env []corev1.EnvVar
	if cp := w.Checkpoint; cp != nil {
		env = append(env,
			corev1.EnvVar{Name: berth.EnvCheckpointDir, Value: cp.Dir},
			corev1.EnvVar{Name: "BERTH_CHECKPOINT_RESUME", Value: strconv.FormatBool(cp.Resume)},
			corev1.EnvVar{Name: berth.EnvResume, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
				FieldPath: "metadata.annotations['" + AnnotationResume + "']"}}})
	}
	if w.Outputs != nil {
		env = append(env, corev1.EnvVar{Name: berth.EnvOutputDir, Value: berth.KubeOutputDir})
	}
	if len(w.Inputs) > 0 {
		env = append(env, corev1.EnvVar{Name: berth.EnvInputsDir, Value: berth.KubeInputsDir})
	}
	for _, name := range w.VolumeNames() {
		env = append(env, corev1.EnvVar{Name: berth.VolumeEnv(name), Value: w.Volumes[name].MountPath})
	}
	return env
}

// mountStorage adds the run's checkpoint claim and volumes to a pod spec
// and mounts them in its container.
func mountStorage(o RenderOptions, r Run, spec *corev1.PodSpec) {
	w := r.Workload
	c := &spec.Containers[0]
	if cp := w.Checkpoint; cp != nil {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: checkpointVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: CheckpointClaimName(r.Key())}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: checkpointVolume, MountPath: cp.Dir})
	}
	if w.Outputs != nil {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: outputsVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: OutputsClaimName(r.Key())}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: outputsVolume, MountPath: berth.KubeOutputDir})
	}
	for _, step := range w.Inputs {
		claim, ok := r.Inputs[step]
		if !ok {
			continue // Apply fills every input in; a render without them mounts none
		}
		name := "in-" + step
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path.Join(berth.KubeInputsDir, step), ReadOnly: true})
	}
	for _, name := range w.VolumeNames() {
		v := w.Volumes[name]
		vol := corev1.Volume{Name: volumeName(name)}
		switch {
		case v.Kind == berth.VolumeScratch:
			vol.Ephemeral = &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: w.Team, LabelWorkload: w.Name}},
				Spec:       claimSpec(o, v.Size, corev1.ReadWriteOnce),
			}}
		default:
			claim := v.Claim
			if claim == "" {
				claim = berth.VolumeClaimName(v)
			}
			vol.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: v.ReadOnly}
		}
		spec.Volumes = append(spec.Volumes, vol)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol.Name, MountPath: v.MountPath, ReadOnly: v.ReadOnly})
	}
}

func claimSpec(o RenderOptions, size berth.Quantity, mode corev1.PersistentVolumeAccessMode) corev1.PersistentVolumeClaimSpec {
	s := corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{mode},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: kubeQuantity(size)}},
	}
	if o.StorageClass != "" {
		s.StorageClassName = ptr.To(o.StorageClass)
	}
	return s
}

// RenderClaims returns the claims berth makes for a run before its pods:
// the run's checkpoint claim (ReadWriteOnce for one pod, ReadWriteMany for
// a gang, whose pods may be on several nodes), and a ReadWriteMany claim
// for each dataset or team volume that names none. It is pure.
func RenderClaims(o RenderOptions, r Run) ([]*unstructured.Unstructured, error) {
	o = o.withDefaults()
	w := r.Workload
	ns := Namespace(o.NamespacePrefix, w.Team)
	var objs []runtime.Object
	if cp := w.Checkpoint; cp != nil {
		size := cp.Size
		if size.IsZero() {
			size = berth.DefaultCheckpointSize
		}
		mode := corev1.ReadWriteOnce
		if w.Pods() > 1 {
			mode = corev1.ReadWriteMany
		}
		a := gitAnnotations(o, r)
		if cp.Keep {
			a[AnnotationKeep] = "true"
		}
		objs = append(objs, &corev1.PersistentVolumeClaim{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kindClaim},
			ObjectMeta: metav1.ObjectMeta{Name: CheckpointClaimName(r.Key()), Namespace: ns,
				Labels: runLabels(r), Annotations: a},
			Spec: claimSpec(o, size, mode),
		})
	}
	if out := w.Outputs; out != nil {
		size := out.Size
		if size.IsZero() {
			size = berth.DefaultCheckpointSize
		}
		a := gitAnnotations(o, r)
		a[AnnotationRetention] = out.Retention.String()
		objs = append(objs, &corev1.PersistentVolumeClaim{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kindClaim},
			ObjectMeta: metav1.ObjectMeta{Name: OutputsClaimName(r.Key()), Namespace: ns,
				Labels: runLabels(r), Annotations: a},
			// Read by the steps after it, on whichever nodes.
			Spec: claimSpec(o, size, corev1.ReadWriteMany),
		})
	}
	for _, name := range w.VolumeNames() {
		v := w.Volumes[name]
		if v.Kind == berth.VolumeScratch || v.Claim != "" {
			continue
		}
		objs = append(objs, &corev1.PersistentVolumeClaim{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kindClaim},
			ObjectMeta: metav1.ObjectMeta{Name: berth.VolumeClaimName(v), Namespace: ns,
				Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: w.Team}},
			Spec: claimSpec(o, v.Size, corev1.ReadWriteMany),
		})
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
