package kube

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Resource names of NVIDIA's device plugin.
const (
	ResourceGPU       = "nvidia.com/gpu"
	ResourceMIGPrefix = "nvidia.com/mig-"
	LabelGPUProduct   = "nvidia.com/gpu.product"
	LabelGPUCount     = "nvidia.com/gpu.count"
)

// MasterPort is the rendezvous port of a training gang.
const MasterPort = 29500

// Run is everything one run's objects are rendered from: the spec, the
// scheduler's decision and the run's state. Apply fills it from a change
// and the live objects; Observe fills it from the annotations berth wrote,
// to render again what berth applied and find drift.
type Run struct {
	Workload berth.Workload
	RunID    string
	Digest   string
	// Path is where the workload is defined (file:line:col).
	Path string
	// Commit is the revision the run's objects were last applied from;
	// PullRequest the pull request it came from, if known.
	Commit      string
	PullRequest string
	// Started: the run is admitted (its Job unsuspended).
	Started bool
	// Phase is preempted or stopped for a run berth stopped, with Reason.
	Phase     reconcile.Phase
	Reason    string
	StoppedAt time.Time
	// NotStarted says why a run berth was to start waits suspended (see
	// AnnotationNotStarted).
	NotStarted string

	Flavor string
	// FlavorLabels are the node labels of the run's flavor.
	FlavorLabels map[string]string
	Priority     int
	Placements   []berth.Placement
	Attempts     int
	// Resume: the run started before (a preemption, a lost node, a
	// retry), so a spec that resumes from checkpoints is told to
	// (AnnotationResume, BERTH_RESUME).
	Resume bool
	// Inputs are, for a pipeline step that reads others' outputs, each
	// step's outputs claim (that step's current run when this one
	// started; AnnotationInputs).
	Inputs      map[string]string
	QueuedSince time.Time
	StartedAt   time.Time
	// OmitReplicas leaves a Deployment's replicas to the manager that owns
	// them (a HorizontalPodAutoscaler).
	OmitReplicas bool
	// Scale are the replicas of an autoscaled service above its minimum
	// that berth admitted (each a run of its own).
	Scale []ScaleReplica
	// Roles are, for a workload with roles, each role's flavor and
	// placements, in role order (Flavor is then the first role's, and
	// FlavorLabels and Placements are unused). A role without placements
	// (a queued run) has the count its spec asks.
	Roles []RoleRun
}

// Key is the run.
func (r Run) Key() berth.RunKey { return berth.RunKey{Workload: r.Workload.ID(), RunID: r.RunID} }

// RoleRun is one role of a run of a workload with roles.
type RoleRun struct {
	Role   string `json:"role"`
	Flavor string `json:"flavor,omitempty"`
	// FlavorLabels are the node labels of the role's flavor (not recorded
	// in the annotation: they come from the configuration, or from the
	// live Job's node affinity).
	FlavorLabels map[string]string `json:"-"`
	Placements   []berth.Placement `json:"placements,omitempty"`
}

// Render returns the objects of one run, in apply order: a Job (and a
// headless Service for a gang) for batch and training, one Job per role and
// a headless Service for a workload with roles, a Deployment (and a Service
// when it has ports, an Ingress or HTTPRoute when it is exposed on a host,
// a HorizontalPodAutoscaler when it autoscales) for the others. It is pure.
func Render(o RenderOptions, r Run) ([]*unstructured.Unstructured, error) {
	o = o.withDefaults()
	if r.Workload.Kind == berth.KindNotebook {
		r.Workload.Ports = r.Workload.ServedPorts() // Jupyter's 8888 where it declares none
	}
	var objs []runtime.Object
	if len(r.Workload.Roles) > 0 {
		objs = renderRoles(o, r)
	} else if r.Workload.Kind.RunsOnce() {
		job := renderJob(o, r)
		objs = append(objs, job)
		if r.Workload.Kind == berth.KindTraining {
			objs = append(objs, renderHeadless(o, r, job.Name))
		}
	} else {
		objs = append(objs, renderDeployment(o, r))
		if svc := renderService(o, r); svc != nil {
			objs = append(objs, svc)
			if ex := renderExpose(o, r); ex != nil {
				objs = append(objs, ex)
			}
		}
		if h := renderHPA(o, r); h != nil {
			objs = append(objs, h)
		}
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, fmt.Errorf("workload %s: render: %w", r.Workload.ID(), err)
		}
		out = append(out, u)
	}
	return out, nil
}

// RenderTeam returns a team's Namespace and, when the configuration gives
// the team quota, a ResourceQuota that backs berth's own quota up: per
// Kubernetes resource, the most berth can ever admit for the team, its
// nominal quota plus what it may borrow (its borrowing limit, or without
// one everything the rest of its cohort tree could lend; nothing outside a
// cohort). Berth decides; the backstop only catches what bypasses berth.
func RenderTeam(o RenderOptions, cfg *berth.Config, team string) ([]*unstructured.Unstructured, error) {
	o = o.withDefaults()
	ns := &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   Namespace(o.NamespacePrefix, team),
			Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: team},
		},
	}
	objs := []runtime.Object{ns}
	if cfg != nil {
		if hard := quotaHard(o, cfg, team); len(hard) > 0 {
			objs = append(objs, &corev1.ResourceQuota{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ResourceQuota"},
				ObjectMeta: metav1.ObjectMeta{
					Name: QuotaName, Namespace: ns.Name,
					Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: team},
					Annotations: map[string]string{AnnotationRepository: o.Repository},
				},
				Spec: corev1.ResourceQuotaSpec{Hard: hard},
			})
		}
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, fmt.Errorf("team %s: render: %w", team, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// quotaHard sums, per Kubernetes resource, the most berth may admit for
// the team in each of its flavors.
func quotaHard(o RenderOptions, cfg *berth.Config, team string) corev1.ResourceList {
	t, ok := cfg.Teams[team]
	if !ok {
		return nil
	}
	sums := map[corev1.ResourceName]int64{}
	add := func(name corev1.ResourceName, milli int64) { sums[name] += milli }
	for _, fq := range t.Quotas() {
		f := cfg.Flavors[fq.Flavor]
		cpu, mem, gpu := admissible(cfg, t, fq.Flavor, berth.ResourceCPU), admissible(cfg, t, fq.Flavor, berth.ResourceMemory), admissible(cfg, t, fq.Flavor, berth.ResourceGPU)
		add("requests.cpu", cpu)
		add("requests.memory", mem)
		switch {
		case f.MIG != "":
			add(corev1.ResourceName("requests."+ResourceMIGPrefix+f.MIG), gpu)
		case f.GPUModel != "":
			add("requests."+ResourceGPU, gpu)
			add(corev1.ResourceName("requests."+o.FractionalResource), gpu*int64(o.SharesPerGPU))
		}
	}
	hard := corev1.ResourceList{}
	for name, milli := range sums {
		if milli <= 0 {
			continue
		}
		switch name {
		case "requests.cpu":
			hard[name] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
		case "requests.memory":
			hard[name] = *resource.NewQuantity((milli+999)/1000, resource.BinarySI)
		default:
			// GPUs, slices and shares are whole units.
			hard[name] = *resource.NewQuantity((milli+999)/1000, resource.DecimalSI)
		}
	}
	return hard
}

// admissible is, in thousandths, the most of one resource of one flavor
// berth may admit for a team: nominal plus what it may borrow.
func admissible(cfg *berth.Config, t berth.Team, flavor string, r berth.Resource) int64 {
	fq, ok := t.FlavorQuota(flavor)
	if !ok || fq.Resource(r) == nil {
		return 0
	}
	q := fq.Resource(r)
	n := q.Nominal.Milli()
	switch {
	case t.Cohort == "":
		return n
	case q.BorrowingLimit != nil:
		return n + q.BorrowingLimit.Milli()
	}
	// Without a limit the team may borrow all the rest of its cohort tree
	// can lend: the other teams' unused quota up to their lending limits,
	// and the cohorts' own quota.
	root := rootCohort(cfg, t.Cohort)
	for _, name := range cfg.TeamNames() {
		other := cfg.Teams[name]
		if name == t.Name || other.Cohort == "" || rootCohort(cfg, other.Cohort) != root {
			continue
		}
		if ofq, ok := other.FlavorQuota(flavor); ok && ofq.Resource(r) != nil {
			oq := ofq.Resource(r)
			if oq.LendingLimit != nil {
				n += min(oq.LendingLimit.Milli(), oq.Nominal.Milli())
			} else {
				n += oq.Nominal.Milli()
			}
		}
	}
	for _, name := range cfg.CohortNames() {
		if rootCohort(cfg, name) != root {
			continue
		}
		for _, cq := range cfg.Cohorts[name].Quota {
			if cq.Flavor == flavor && cq.Resource(r) != nil {
				n += cq.Resource(r).Nominal.Milli()
			}
		}
	}
	return n
}

func rootCohort(cfg *berth.Config, name string) string {
	for i := 0; i < 64; i++ { // cycles are rejected by the loader; bound the walk anyway
		c, ok := cfg.Cohorts[name]
		if !ok || c.Parent == "" {
			return name
		}
		name = c.Parent
	}
	return name
}

func renderJob(o RenderOptions, r Run) *batchv1.Job {
	w := r.Workload
	name := JobName(r.Key())
	labels := runLabels(r)
	job := jobBase(o, r, name, labels)
	s := &job.Spec
	env := baseEnv(r)
	if w.Kind == berth.KindTraining {
		// A gang admitted with fewer workers than it asks (minWorkers)
		// runs as many as were placed; a queued one asks for all.
		n := int32(w.Pods())
		if r.Started && len(r.Placements) > 0 {
			n = int32(len(r.Placements))
		}
		s.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		s.Completions, s.Parallelism = ptr.To(n), ptr.To(n)
		master := fmt.Sprintf("%s-0.%s", name, name)
		rank := corev1.EnvVar{Name: "BERTH_RANK", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}
		env = append(env,
			rank,
			corev1.EnvVar{Name: "BERTH_WORLD_SIZE", Value: strconv.Itoa(int(n))},
			corev1.EnvVar{Name: "BERTH_MASTER_ADDR", Value: master},
			corev1.EnvVar{Name: "BERTH_MASTER_PORT", Value: strconv.Itoa(MasterPort)},
			// The names PyTorch's launchers read.
			corev1.EnvVar{Name: "RANK", ValueFrom: rank.ValueFrom},
			corev1.EnvVar{Name: "WORLD_SIZE", Value: strconv.Itoa(int(n))},
			corev1.EnvVar{Name: "MASTER_ADDR", Value: master},
			corev1.EnvVar{Name: "MASTER_PORT", Value: strconv.Itoa(MasterPort)},
			corev1.EnvVar{Name: berth.EnvLocalRank, Value: "0"},
			corev1.EnvVar{Name: berth.EnvWorkerIndex, ValueFrom: rank.ValueFrom},
		)
	} else {
		s.Parallelism = ptr.To(int32(max(w.Parallelism, 1)))
		s.Completions = ptr.To(int32(max(w.Completions, 1)))
	}
	pod := podSpec(o, r, env)
	pod.RestartPolicy = corev1.RestartPolicyNever
	if w.Kind == berth.KindTraining {
		pod.Subdomain = name
	}
	s.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: templateAnnotations(r)}, Spec: pod}
	return job
}

// jobBase is what every Job of a run shares: its metadata, suspended until
// the run is admitted (and again once berth stopped it), its retries and
// deadline, and the disruptions that do not count as a failure.
func jobBase(o RenderOptions, r Run, name string, labels map[string]string) *batchv1.Job {
	w := r.Workload
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: Namespace(o.NamespacePrefix, w.Team),
			Labels:      labels,
			Annotations: runAnnotations(o, r),
			Finalizers:  []string{FinalizerLedger},
		},
	}
	s := &job.Spec
	s.Suspend = ptr.To(!r.Started || r.Phase != "")
	s.BackoffLimit = ptr.To(int32(w.Retries))
	if d := w.MaxDuration.D(); d > 0 {
		s.ActiveDeadlineSeconds = ptr.To(int64(math.Ceil(d.Seconds())))
	}
	// Disruptions (eviction, the kube-scheduler's preemption, a drain) do
	// not use up the workload's retries.
	s.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:          batchv1.PodFailurePolicyActionIgnore,
		OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
	}}}
	return job
}

// renderHeadless is a gang's rendezvous Service: worker i is
// <job>-<i>.<job> inside the namespace.
func renderHeadless(o RenderOptions, r Run, job string) *corev1.Service {
	w := r.Workload
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: job, Namespace: Namespace(o.NamespacePrefix, w.Team),
			Labels: runLabels(r), Annotations: gitAnnotations(o, r),
		},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{LabelWorkload: w.Name, LabelRun: labelValue(r.RunID)},
			PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{{Name: "rendezvous", Port: MasterPort, TargetPort: intstr.FromInt32(MasterPort),
				Protocol: corev1.ProtocolTCP}},
		},
	}
}

func renderDeployment(o RenderOptions, r Run) *appsv1.Deployment {
	w := r.Workload
	labels := runLabels(r)
	// The selector is immutable: only what never changes for the workload.
	selector := map[string]string{LabelManagedBy: ManagedByValue, LabelWorkload: w.Name}
	pod := podSpec(o, r, baseEnv(r))
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(w.ID()), Namespace: Namespace(o.NamespacePrefix, w.Team),
			Labels: labels, Annotations: runAnnotations(o, r),
		},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: strategy(w.RolloutOrDefault()),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	if !r.OmitReplicas && w.Autoscale == nil {
		// An autoscaled service's replicas are its autoscaler's (it
		// starts at one, and the autoscaler raises it to its minimum).
		d.Spec.Replicas = ptr.To(int32(w.Pods()))
	}
	return d
}

// strategy is the workload's rollout as a rolling update: maxSurge new
// replicas start above the count asked for while old ones still serve, and
// at most maxUnavailable replicas may be unready (the default, surge 1 and
// none unavailable, never drops below the ready count asked for). A surge
// replica of a GPU service needs a free GPU for as long as the rollout
// lasts: berth admitted the replicas, not the surge.
func strategy(r berth.Rollout) appsv1.DeploymentStrategy {
	return appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxSurge: ptr.To(intstr.FromInt32(int32(r.MaxSurge))), MaxUnavailable: ptr.To(intstr.FromInt32(int32(r.MaxUnavailable))),
		},
	}
}

func renderService(o RenderOptions, r Run) *corev1.Service {
	w := r.Workload
	if len(w.Ports) == 0 {
		return nil
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(w.ID()), Namespace: Namespace(o.NamespacePrefix, w.Team),
			Labels: runLabels(r), Annotations: gitAnnotations(o, r),
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{LabelManagedBy: ManagedByValue, LabelWorkload: w.Name},
		},
	}
	for _, p := range w.Ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: portName(p), Port: int32(p.Port), TargetPort: targetPort(p),
			Protocol: protocol(p.Protocol),
		})
	}
	return svc
}

func portName(p berth.Port) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("%s-%d", map[bool]string{true: "udp", false: "tcp"}[p.Protocol == "UDP"], p.Port)
}

func protocol(p string) corev1.Protocol {
	if p == "UDP" {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

func runLabels(r Run) map[string]string {
	w := r.Workload
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelTeam:      w.Team,
		LabelWorkload:  w.Name,
		LabelRun:       labelValue(r.RunID),
		LabelKind:      string(w.Kind),
	}
}

// gitAnnotations lead from an object back to Git.
func gitAnnotations(o RenderOptions, r Run) map[string]string {
	a := map[string]string{
		AnnotationRunID:  r.RunID,
		AnnotationDigest: r.Digest,
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AnnotationRepository, o.Repository)
	set(AnnotationPath, r.Path)
	set(AnnotationCommit, r.Commit)
	set(AnnotationPullRequest, r.PullRequest)
	return a
}

// runAnnotations are the Git annotations and the run's state.
func runAnnotations(o RenderOptions, r Run) map[string]string {
	a := gitAnnotations(o, r)
	a[AnnotationSpec] = specJSON(r.Workload)
	a[AnnotationPriority] = strconv.Itoa(r.Priority)
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AnnotationFlavor, r.Flavor)
	set(AnnotationQueuedSince, formatTime(r.QueuedSince))
	set(AnnotationNotStarted, r.NotStarted)
	if r.Workload.Checkpoint != nil {
		a[AnnotationCheckpointClaim] = CheckpointClaimName(r.Key())
	}
	if resumes(r) {
		a[AnnotationResume] = "1"
	}
	if len(r.Inputs) > 0 {
		b, _ := json.Marshal(r.Inputs)
		a[AnnotationInputs] = string(b)
	}
	if r.Attempts > 0 || r.Started {
		a[AnnotationAttempts] = strconv.Itoa(max(r.Attempts, 1))
	}
	if r.Started {
		set(AnnotationStartedAt, formatTime(r.StartedAt))
	}
	if len(r.Placements) > 0 {
		b, _ := json.Marshal(r.Placements)
		a[AnnotationPlacements] = string(b)
	}
	if len(r.Roles) > 0 {
		b, _ := json.Marshal(r.Roles)
		a[AnnotationRoles] = string(b)
	}
	if r.Phase != "" {
		a[AnnotationPhase] = string(r.Phase)
		set(AnnotationReason, r.Reason)
		set(AnnotationStoppedAt, formatTime(r.StoppedAt))
	}
	return a
}

// specJSON is the workload as berth.dev/spec records it.
func specJSON(w berth.Workload) string {
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // plain data always marshals
	}
	return string(b)
}

// formatTime writes a time as berth's annotations keep it: RFC 3339 with
// as many fractional digits as it has (none for a whole second). A
// queued-since must keep its fraction: runs of equal priority wait in the
// order they were first seen, and two first seen in the same second, cut
// to it, would tie and go in order of name instead.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func baseEnv(r Run) []corev1.EnvVar {
	w := r.Workload
	env := []corev1.EnvVar{
		{Name: "BERTH_WORKLOAD", Value: string(w.ID())},
		{Name: "BERTH_RUN_ID", Value: r.RunID},
	}
	env = append(env, storageEnv(w)...)
	if w.Kind == berth.KindNotebook {
		env = append(env, notebookEnv(w)...)
	}
	return env
}

// envVar is one variable of the workload's env in a container.
func envVar(name string, v berth.EnvVar) corev1.EnvVar {
	if s := v.Secret; s != nil {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.Name}, Key: s.Key}}}
	}
	return corev1.EnvVar{Name: name, Value: v.Value}
}

func podSpec(o RenderOptions, r Run, berthEnv []corev1.EnvVar) corev1.PodSpec {
	w := r.Workload
	c := corev1.Container{
		Name:    "main",
		Image:   w.Image,
		Command: w.Command,
		Args:    w.Args,
	}
	// The workload's env first, sorted; berth's own names after, unless the
	// workload sets them itself.
	// A secret is a secretKeyRef: the kubelet reads it, berth never
	// writes its value into an object.
	for _, k := range w.Env.Names() {
		c.Env = append(c.Env, envVar(k, w.Env[k]))
	}
	wrapped := wrapResume(w, &c)
	for _, e := range berthEnv {
		if _, ok := w.Env[e.Name]; !ok && !(wrapped && e.Name == berth.EnvResume) {
			c.Env = append(c.Env, e)
		}
	}
	c.Resources = containerResources(o, w.Resources)
	for _, p := range w.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: containerPortName(p), ContainerPort: int32(p.Port), Protocol: protocol(p.Protocol)})
	}
	if h := w.Health; h != nil {
		c.ReadinessProbe = probe(w, h.Readiness)
		c.LivenessProbe = probe(w, h.Liveness)
		c.StartupProbe = startupProbe(w, h.Liveness)
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{c}}
	mountStorage(o, r, &spec)
	if a := affinity(r); a != nil {
		spec.Affinity = a
	}
	if o.GPUToleration && w.Resources.UsesGPU() {
		spec.Tolerations = []corev1.Toleration{{Key: ResourceGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	}
	return spec
}

// containerPortName is a port's name when it fits a container port's
// 15-character limit.
func containerPortName(p berth.Port) string {
	if len(p.Name) <= 15 {
		return p.Name
	}
	return ""
}

// targetPort names a container port where it has a name (a Service, a
// probe, an Ingress follow the name if the number changes), else its
// number.
func targetPort(p berth.Port) intstr.IntOrString {
	if n := containerPortName(p); n != "" {
		return intstr.FromString(n)
	}
	return intstr.FromInt32(int32(p.Port))
}

// probe is the kubelet's form of a berth probe; nil for none. A port the
// workload does not declare cannot pass validation. The start-up grace is
// not a delay here (that would hold readiness back for as long even when
// the replica is ready sooner): see startupProbe.
func probe(w berth.Workload, h *berth.Probe) *corev1.Probe {
	if h == nil {
		return nil
	}
	p := &corev1.Probe{
		PeriodSeconds:    seconds(h.Period.D()),
		TimeoutSeconds:   seconds(h.Timeout.D()),
		FailureThreshold: int32(max(h.FailureThreshold, 1)),
	}
	port, _ := w.Port(h.Port)
	switch h.Kind() {
	case berth.ProbeCommand:
		p.Exec = &corev1.ExecAction{Command: h.Command}
	case berth.ProbeHTTP:
		p.HTTPGet = &corev1.HTTPGetAction{Path: h.Path, Port: targetPort(port)}
	default:
		p.TCPSocket = &corev1.TCPSocketAction{Port: targetPort(port)}
	}
	return p
}

// startupProbe carries a liveness probe's start-up grace: the kubelet runs
// it (the liveness check, every period) until it first passes, and only
// then readiness and liveness; it restarts the replica only when it has
// not passed within the grace and then the liveness threshold's failures
// more, as berth restarts one on one machine (failures do not count until
// the grace is over). An initial delay would also keep a replica that is
// ready early out of traffic. A readiness grace
// needs nothing: a replica that is not ready yet gets no traffic anyway.
func startupProbe(w berth.Workload, h *berth.Probe) *corev1.Probe {
	if h == nil || h.StartupGrace.D() <= 0 {
		return nil
	}
	p := probe(w, h)
	period := time.Duration(p.PeriodSeconds) * time.Second
	p.FailureThreshold += int32((h.StartupGrace.D() + period - 1) / period)
	return p
}

// seconds is a probe's period or timeout in the kubelet's whole seconds,
// at least one.
func seconds(d time.Duration) int32 { return int32(max((d+time.Second-1)/time.Second, 1)) }

// containerResources requests cpu and memory, limits memory (so a pod
// that outgrows it is OOMKilled rather than starving its neighbours), and
// asks for the GPUs as the device plugin's resources.
func containerResources(o RenderOptions, r berth.Resources) corev1.ResourceRequirements {
	req := corev1.ResourceList{}
	lim := corev1.ResourceList{}
	if !r.CPU.IsZero() {
		req[corev1.ResourceCPU] = kubeQuantity(r.CPU)
	}
	if !r.Memory.IsZero() {
		req[corev1.ResourceMemory] = kubeQuantity(r.Memory)
		lim[corev1.ResourceMemory] = kubeQuantity(r.Memory)
	}
	switch {
	case r.MIG != "":
		lim[corev1.ResourceName(ResourceMIGPrefix+r.MIG)] = *resource.NewQuantity(1, resource.DecimalSI)
	case r.GPUFraction > 0:
		shares := int64(math.Round(r.GPUFraction * float64(o.SharesPerGPU)))
		lim[corev1.ResourceName(o.FractionalResource)] = *resource.NewQuantity(max(shares, 1), resource.DecimalSI)
	case r.GPU > 0:
		lim[ResourceGPU] = *resource.NewQuantity(int64(r.GPU), resource.DecimalSI)
	}
	out := corev1.ResourceRequirements{}
	if len(req) > 0 {
		out.Requests = req
	}
	if len(lim) > 0 {
		out.Limits = lim
	}
	return out
}

func kubeQuantity(q berth.Quantity) resource.Quantity {
	if k, err := resource.ParseQuantity(q.String()); err == nil {
		return k
	}
	return *resource.NewMilliQuantity(q.Milli(), resource.DecimalSI)
}

// affinity pins a placed run to the nodes berth chose, and any run to its
// flavor's node labels. A node field selector takes one name, so each
// chosen node is a term of its own (terms are ORed; within a term, the
// flavor's labels and the node name are ANDed).
func affinity(r Run) *corev1.Affinity {
	var labels []corev1.NodeSelectorRequirement
	keys := make([]string, 0, len(r.FlavorLabels))
	for k := range r.FlavorLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		labels = append(labels, corev1.NodeSelectorRequirement{
			Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{r.FlavorLabels[k]}})
	}
	var terms []corev1.NodeSelectorTerm
	seen := map[string]bool{}
	var nodes []string
	placements := r.Placements
	if r.Workload.Autoscale != nil {
		// The autoscaler adds and removes its pods: pinning them to the
		// nodes of the minimum's placements would leave the rest nowhere
		// to go. The flavor's labels keep them on its nodes.
		placements = nil
	}
	for _, p := range placements {
		if !seen[p.Node] {
			seen[p.Node] = true
			nodes = append(nodes, p.Node)
		}
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		terms = append(terms, corev1.NodeSelectorTerm{
			MatchExpressions: labels,
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n}}},
		})
	}
	if len(terms) == 0 && len(labels) > 0 {
		terms = []corev1.NodeSelectorTerm{{MatchExpressions: labels}}
	}
	if len(terms) == 0 {
		return nil
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}}
}

// toUnstructured converts a typed object and drops the empty values the
// typed structs carry (creationTimestamp: null, status: {}), so what is
// applied is exactly what berth sets.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	prune(m)
	return &unstructured.Unstructured{Object: m}, nil
}

// prune removes nil values and empty maps and lists, recursively.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}
