package kube

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
)

// A run of a workload with roles (a launcher and workers, a driver and
// executors) is one indexed Job per role, <workload>-<run>-<role>, and one
// headless Service, <workload>-<run>, that selects every pod of the run:
// pod i of role r is <workload>-<run>-<r>-<i>.<workload>-<run>, and the
// rendezvous (BERTH_MASTER_ADDR) is pod 0 of the first role. Every Job
// carries the whole run's annotations (the spec, each role's flavor and
// placements), so any one of them gives the run back. They are created
// suspended together, started together (the Service first) and stopped
// together; Observe reads them as one run.

// roleRuns is every role of the run's spec, in role order, with the flavor
// and placements the run has for it.
func roleRuns(r Run) []RoleRun {
	have := make(map[string]RoleRun, len(r.Roles))
	for _, rr := range r.Roles {
		have[rr.Role] = rr
	}
	names := r.Workload.RoleNames()
	out := make([]RoleRun, 0, len(names))
	for _, name := range names {
		rr, ok := have[name]
		if !ok {
			rr = RoleRun{Role: name}
		}
		out = append(out, rr)
	}
	return out
}

// roleCount is how many pods a role runs: one per placement, or, without
// placements (a queued run), what its spec asks.
func roleCount(w berth.Workload, rr RoleRun) int {
	if len(rr.Placements) > 0 {
		return len(rr.Placements)
	}
	return max(w.Roles[rr.Role].Count, 1)
}

// renderRoles renders a run of a workload with roles: its Jobs in role
// order, then its headless Service.
func renderRoles(o RenderOptions, r Run) []runtime.Object {
	w := r.Workload
	svc := JobName(r.Key())
	roles := roleRuns(r)
	counts := make([]int, len(roles))
	sizes := make([]string, len(roles))
	total := 0
	for i, rr := range roles {
		counts[i] = roleCount(w, rr)
		sizes[i] = rr.Role + "=" + strconv.Itoa(counts[i])
		total += counts[i]
	}
	g := roleGang{
		service: svc,
		master:  fmt.Sprintf("%s-0.%s", RoleJobName(r.Key(), roles[0].Role), svc),
		total:   total,
		sizes:   strings.Join(sizes, ","),
	}
	objs := make([]runtime.Object, 0, len(roles)+1)
	offset := 0
	for i, rr := range roles {
		objs = append(objs, renderRoleJob(o, r, rr, g, offset, counts[i]))
		offset += counts[i]
	}
	return append(objs, renderHeadless(o, r, svc))
}

// roleGang is what every role's pods are told about the whole run.
type roleGang struct {
	service, master string
	total           int
	sizes           string // "launcher=1,worker=8"
}

// renderRoleJob renders one role's indexed Job. Its pods get the names the
// local backend gives a role's processes: BERTH_ROLE, BERTH_ROLE_RANK (the
// completion index), BERTH_ROLE_SIZE, BERTH_ROLES, BERTH_RANK_OFFSET (the
// pods of the roles before it), BERTH_WORLD_SIZE, BERTH_MASTER_ADDR,
// BERTH_MASTER_PORT and BERTH_RANK, the global rank (BERTH_RANK_OFFSET +
// BERTH_ROLE_RANK). The downward API cannot add, so the pods of a role
// after the first with several pods wait at a scheduling gate until berth
// writes each one's rank into its annotation (assignRanks), which
// BERTH_RANK reads when the container starts.
func renderRoleJob(o RenderOptions, r Run, rr RoleRun, g roleGang, offset, count int) *batchv1.Job {
	w := r.Workload
	role := w.Roles[rr.Role]
	name := RoleJobName(r.Key(), rr.Role)
	labels := runLabels(r)
	labels[LabelRole] = labelValue(rr.Role)
	job := jobBase(o, r, name, labels)
	s := &job.Spec
	s.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	s.Completions, s.Parallelism = ptr.To(int32(count)), ptr.To(int32(count))

	index := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
	env := baseEnv(r)
	gated := false
	rank := corev1.EnvVar{Name: "BERTH_RANK"}
	switch {
	case offset == 0:
		rank.ValueFrom = index
	case count == 1:
		rank.Value = strconv.Itoa(offset)
	default:
		gated = true
		rank.ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['" + AnnotationRank + "']"}}
	}
	env = append(env, rank,
		corev1.EnvVar{Name: "BERTH_RANK_OFFSET", Value: strconv.Itoa(offset)},
		corev1.EnvVar{Name: "BERTH_WORLD_SIZE", Value: strconv.Itoa(g.total)},
		corev1.EnvVar{Name: "BERTH_MASTER_ADDR", Value: g.master},
		corev1.EnvVar{Name: "BERTH_MASTER_PORT", Value: strconv.Itoa(MasterPort)},
		corev1.EnvVar{Name: "BERTH_ROLE", Value: rr.Role},
		corev1.EnvVar{Name: "BERTH_ROLE_RANK", ValueFrom: index},
		corev1.EnvVar{Name: "BERTH_ROLE_SIZE", Value: strconv.Itoa(count)},
		corev1.EnvVar{Name: "BERTH_ROLES", Value: g.sizes},
	)
	// PyTorch's names (berth.GangEnv), as a plain gang and the local
	// backend give them: RANK and BERTH_WORKER_INDEX are the global rank.
	env = append(env,
		corev1.EnvVar{Name: berth.EnvRank, Value: rank.Value, ValueFrom: rank.ValueFrom},
		corev1.EnvVar{Name: berth.EnvWorldSize, Value: strconv.Itoa(g.total)},
		corev1.EnvVar{Name: berth.EnvLocalRank, Value: "0"},
		corev1.EnvVar{Name: berth.EnvMasterAddr, Value: g.master},
		corev1.EnvVar{Name: berth.EnvMasterPort, Value: strconv.Itoa(MasterPort)},
		corev1.EnvVar{Name: berth.EnvWorkerIndex, Value: rank.Value, ValueFrom: rank.ValueFrom},
	)

	// The role's pods as a workload of one shape: its command, args, env
	// and resources, pinned to its flavor and placements.
	view := r
	view.Workload = roleWorkload(w, role)
	view.FlavorLabels, view.Placements = rr.FlavorLabels, rr.Placements
	pod := podSpec(o, view, env)
	pod.RestartPolicy = corev1.RestartPolicyNever
	pod.Subdomain = g.service
	if len(role.NodeSelector) > 0 {
		pod.NodeSelector = make(map[string]string, len(role.NodeSelector))
		for k, v := range role.NodeSelector {
			pod.NodeSelector[k] = v
		}
	}
	s.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: templateAnnotations(r)}, Spec: pod}
	if gated {
		if s.Template.Annotations == nil {
			s.Template.Annotations = map[string]string{}
		}
		s.Template.Annotations[AnnotationRankOffset] = strconv.Itoa(offset)
		s.Template.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: RankGate}}
	}
	return job
}

// roleWorkload is the workload as one role's pods run it: the role's
// command and args where it sets them, the workload's env with the role's
// over it, the role's resources.
func roleWorkload(w berth.Workload, role berth.Role) berth.Workload {
	v := w
	v.Roles = nil
	v.Ports, v.Health = nil, nil
	if role.Command != nil {
		v.Command = role.Command
	}
	if role.Args != nil {
		v.Args = role.Args
	}
	v.Env = make(map[string]string, len(w.Env)+len(role.Env))
	for k, val := range w.Env {
		v.Env[k] = val
	}
	for k, val := range role.Env {
		v.Env[k] = val
	}
	v.Resources = role.Resources
	return v
}
