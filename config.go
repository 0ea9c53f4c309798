package berth

import (
	"iter"
	"maps"
	"slices"
	"strings"
	"time"
)

// Config is a repository's whole configuration: the merge of every CUE
// package instance, unified with the schema, with defaults applied and
// references checked. Maps are keyed by name; use the sorted accessors where
// order matters (it always does for output).
type Config struct {
	Clusters  map[string]Cluster      `json:"clusters"`
	Flavors   map[string]Flavor       `json:"flavors"`
	Cohorts   map[string]Cohort       `json:"cohorts"`
	Teams     map[string]Team         `json:"teams"`
	Workloads map[WorkloadID]Workload `json:"workloads"`
	Policy    Policy                  `json:"policy"`

	// Positions maps a CUE path ("workloads.vision.train.resources.flavor")
	// to where it is defined, in a Config made in code.
	Positions map[string]Pos `json:"-"`
	// Fields, in a Config the loader made, says where every object and
	// every reference field is defined. It decodes an object's positions
	// the first time one of its paths is asked for: a 50,000-workload
	// repository has about 750,000 of them, and most loads ask for none.
	// Read positions with Pos and AllPositions, which see both.
	Fields PositionIndex `json:"-"`

	// Packages, in a Config the loader made, lists each package instance
	// of the repository by directory, with a digest of what its result
	// was computed from and the workloads it defines. Two Configs whose
	// instance has the same digest got the same workloads from it, field
	// for field, so a scheduling cache compares two revisions package by
	// package instead of workload by workload. Nil in a Config made any
	// other way; a Config whose workloads are changed after loading must
	// drop it.
	Packages map[string]Package `json:"-"`
}

// ChangedWorkloads lists, sorted, the workloads that may differ between
// from and c, two Configs the loader made: those of the package instances
// whose digest changed, or that came or went (Config.Packages). Every
// other workload is the same in both, field for field. ok is false when
// either has no packages or their packages do not account for every
// workload added or removed: then every workload may differ.
func (c *Config) ChangedWorkloads(from *Config) (ids []WorkloadID, ok bool) {
	if from == nil || c.Packages == nil || from.Packages == nil {
		return nil, false
	}
	for dir, p := range c.Packages {
		q, had := from.Packages[dir]
		if !had || q.Digest != p.Digest {
			ids = append(append(ids, p.Workloads...), q.Workloads...)
		}
	}
	for dir, q := range from.Packages {
		if _, has := c.Packages[dir]; !has {
			ids = append(ids, q.Workloads...)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	n := len(from.Workloads)
	for _, id := range ids {
		_, inC := c.Workloads[id]
		_, inFrom := from.Workloads[id]
		switch {
		case inC && !inFrom:
			n++
		case inFrom && !inC:
			n--
		}
	}
	return ids, n == len(c.Workloads)
}

// MayDiffer lists, sorted, the workloads that may differ between from
// and c: ChangedWorkloads's where the packages say, otherwise every
// workload of either. A nil from has none.
func (c *Config) MayDiffer(from *Config) []WorkloadID {
	if ids, ok := c.ChangedWorkloads(from); ok {
		return ids
	}
	ids := slices.Collect(maps.Keys(c.Workloads))
	if from != nil {
		for id := range from.Workloads {
			if _, has := c.Workloads[id]; !has {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// Package is one package instance of a loaded repository (see
// Config.Packages).
type Package struct {
	// Digest is the hash of the files of the instance and of every
	// package it imports, as the loader read them.
	Digest [32]byte
	// Workloads are the IDs of the workloads the instance defines,
	// sorted.
	Workloads []WorkloadID
}

// PositionIndex says where the paths of a loaded configuration are
// defined (Config.Fields).
type PositionIndex interface {
	// Lookup returns where path is defined; ok is false when nothing
	// says.
	Lookup(path string) (p Pos, ok bool)
	// All calls yield with every path and its position, in no order,
	// until it returns false.
	All(yield func(path string, p Pos) bool)
}

// AllPositions yields every path with a position and its position, in no
// order: those of Positions, then those of Fields.
func (c *Config) AllPositions() iter.Seq2[string, Pos] {
	return func(yield func(string, Pos) bool) {
		for k, p := range c.Positions {
			if !yield(k, p) {
				return
			}
		}
		if c.Fields != nil {
			c.Fields.All(yield)
		}
	}
}

// Pos returns where the CUE path is defined, or the nearest enclosing path
// that has a position.
func (c *Config) Pos(path string) Pos {
	for path != "" {
		if p, ok := c.Positions[path]; ok {
			return p
		}
		if c.Fields != nil {
			if p, ok := c.Fields.Lookup(path); ok {
				return p
			}
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Pos{}
}

// WorkloadIDs returns every workload's ID, sorted.
func (c *Config) WorkloadIDs() []WorkloadID {
	ids := make([]WorkloadID, 0, len(c.Workloads))
	for id := range c.Workloads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TeamNames returns every team's name, sorted.
func (c *Config) TeamNames() []string { return slices.Sorted(maps.Keys(c.Teams)) }

// FlavorNames returns every flavor's name, sorted.
func (c *Config) FlavorNames() []string { return slices.Sorted(maps.Keys(c.Flavors)) }

// ClusterNames returns every cluster's name, sorted.
func (c *Config) ClusterNames() []string { return slices.Sorted(maps.Keys(c.Clusters)) }

// CohortNames returns every cohort's name, sorted.
func (c *Config) CohortNames() []string { return slices.Sorted(maps.Keys(c.Cohorts)) }

// DefaultCluster is the cluster flavors without a cluster belong to: the
// only cluster, or the one marked default. Empty when there is none.
func (c *Config) DefaultCluster() string {
	if len(c.Clusters) == 1 {
		for name := range c.Clusters {
			return name
		}
	}
	for _, name := range c.ClusterNames() {
		if c.Clusters[name].Default {
			return name
		}
	}
	return ""
}

// FlavorCluster is the cluster a flavor's capacity lives in (for flavors
// joined from several resource groups, the first one's).
func (c *Config) FlavorCluster(flavor string) string {
	if i := strings.Index(flavor, FlavorSeparator); i >= 0 {
		flavor = flavor[:i]
	}
	if f, ok := c.Flavors[flavor]; ok && f.Cluster != "" {
		return f.Cluster
	}
	return c.DefaultCluster()
}

// FlavorNamed returns the flavor of a name; for a name that joins one
// flavor per resource group ("h100+cpu-nodes"), the flavor a pod taking
// from all of them runs on: every one's node labels, and the GPU model,
// MIG profile and topology label of the one that has a GPU model. It
// reports false when a flavor does not exist, or when they cannot meet on
// one node (two GPU models, a label with two values).
func (c *Config) FlavorNamed(name string) (Flavor, bool) {
	if f, ok := c.Flavors[name]; ok {
		return f, true
	}
	if !strings.Contains(name, FlavorSeparator) {
		return Flavor{}, false
	}
	out := Flavor{Name: name, NodeLabels: map[string]string{}}
	for i, part := range SplitFlavors(name) {
		f, ok := c.Flavors[part]
		if !ok {
			return Flavor{}, false
		}
		if i == 0 {
			out.Cluster = f.Cluster
		}
		for k, v := range f.NodeLabels {
			if have, ok := out.NodeLabels[k]; ok && have != v {
				return Flavor{}, false
			}
			out.NodeLabels[k] = v
		}
		if f.GPUModel != "" {
			if out.GPUModel != "" && (out.GPUModel != f.GPUModel || out.MIG != f.MIG) {
				return Flavor{}, false
			}
			out.GPUModel, out.MIG = f.GPUModel, f.MIG
			if f.TopologyLabel != "" {
				out.TopologyLabel = f.TopologyLabel
			}
		}
		if out.TopologyLabel == "" {
			out.TopologyLabel = f.TopologyLabel
		}
	}
	return out, true
}

// Priority resolves a workload's priority tier: its own, or the policy's
// default.
func (c *Config) Priority(w Workload) (string, PriorityTier) {
	name := w.Priority
	if name == "" {
		name = c.Policy.DefaultPriority
	}
	return name, c.Policy.Priorities[name]
}

// Backend is how berth reaches a cluster.
type Backend string

const (
	BackendLocal      Backend = "local"
	BackendKubernetes Backend = "kubernetes"
)

// Cluster is a place workloads run.
type Cluster struct {
	Name               string  `json:"name"`
	Backend            Backend `json:"backend"`
	Default            bool    `json:"default"`
	Context            string  `json:"context,omitempty"`
	NamespacePrefix    string  `json:"namespacePrefix,omitempty"`
	FractionalResource string  `json:"fractionalResource,omitempty"`
	SharesPerGPU       int     `json:"sharesPerGPU,omitempty"`
	SimulatedGPUs      string  `json:"simulatedGPUs,omitempty"`
	// SecretsDir is where a local cluster reads env secrets: a file per
	// key, TEAM/NAME/KEY under it, outside the repository.
	SecretsDir string `json:"secretsDir,omitempty"`
	// NodeLostAfter is how long a node may be not ready before the runs
	// on it are requeued (zero: DefaultNodeLostAfter).
	NodeLostAfter Duration `json:"nodeLostAfter,omitempty"`
	// Ingress is how services of a kubernetes cluster are reached from
	// outside; nil: they are not, and expose.host is an error.
	Ingress *Ingress `json:"ingress,omitempty"`
	// StorageClass is the class of the claims berth creates on a
	// kubernetes cluster (empty: the cluster's default).
	StorageClass string `json:"storageClass,omitempty"`
	// VolumeRoot is the directory a local cluster's volumes live under
	// (empty: volumes/ in berth's state directory).
	VolumeRoot string `json:"volumeRoot,omitempty"`
	// Notebooks is what the cluster asks of notebooks; nil: nothing.
	Notebooks *NotebookPolicy `json:"notebooks,omitempty"`
	// AutoscaleMetrics are the metrics a kubernetes cluster's
	// HorizontalPodAutoscalers read for the autoscale targets (nil: the
	// schema's defaults, DefaultAutoscaleMetrics).
	AutoscaleMetrics *AutoscaleMetrics `json:"autoscaleMetrics,omitempty"`
}

// AutoscaleMetrics name the metric of each autoscale target.
type AutoscaleMetrics struct {
	RequestsPerSecond MetricSource `json:"requestsPerSecond"`
	GPUUtilization    MetricSource `json:"gpuUtilization"`
}

// MetricSource is a metric a HorizontalPodAutoscaler reads.
type MetricSource struct {
	Name string `json:"name"`
	// Type is the metrics API that serves it: MetricPods or
	// MetricExternal.
	Type string `json:"type"`
}

// The metrics APIs a MetricSource names.
const (
	MetricPods     = "Pods"
	MetricExternal = "External"
)

// DefaultAutoscaleMetrics are the schema's defaults: per-pod metrics named
// as prometheus-adapter and dcgm-exporter usually name them.
var DefaultAutoscaleMetrics = AutoscaleMetrics{
	RequestsPerSecond: MetricSource{Name: "http_requests_per_second", Type: MetricPods},
	GPUUtilization:    MetricSource{Name: "DCGM_FI_DEV_GPU_UTIL", Type: MetricPods},
}

// NotebookPolicy is what a cluster asks of the notebooks it runs.
type NotebookPolicy struct {
	// RequireIdle: every notebook must set an idle limit.
	RequireIdle bool `json:"requireIdle"`
}

// Flavor is one kind of capacity: a GPU model, a MIG profile of a model, or
// a CPU-only pool (no GPUModel).
type Flavor struct {
	Name          string            `json:"name"`
	Cluster       string            `json:"cluster,omitempty"`
	GPUModel      string            `json:"gpuModel,omitempty"`
	MIG           string            `json:"mig,omitempty"`
	NodeLabels    map[string]string `json:"nodeLabels"`
	TopologyLabel string            `json:"topologyLabel,omitempty"`
}

// ResourceQuota bounds one resource of one flavor. A nil limit means no
// limit.
type ResourceQuota struct {
	Nominal        Quantity  `json:"nominal"`
	BorrowingLimit *Quantity `json:"borrowingLimit,omitempty"`
	LendingLimit   *Quantity `json:"lendingLimit,omitempty"`
}

// FlavorQuota is the quota of one flavor, per resource.
type FlavorQuota struct {
	Flavor string         `json:"flavor"`
	GPU    *ResourceQuota `json:"gpu,omitempty"`
	CPU    *ResourceQuota `json:"cpu,omitempty"`
	Memory *ResourceQuota `json:"memory,omitempty"`
}

// Resource returns the quota of one resource, or nil.
func (q FlavorQuota) Resource(r Resource) *ResourceQuota {
	switch r {
	case ResourceGPU:
		return q.GPU
	case ResourceCPU:
		return q.CPU
	case ResourceMemory:
		return q.Memory
	}
	return nil
}

// ResourceGroup is Kueue's ClusterQueue resource group: resources whose
// quota is kept together, and the flavors that offer them, in the order
// they are tried. A pod takes each group's resources from one flavor of
// that group, so one pod may take cpu and memory from one flavor and GPUs
// from another.
type ResourceGroup struct {
	CoveredResources []Resource        `json:"coveredResources"`
	Flavors          []FlavorResources `json:"flavors"`
}

// FlavorResources is one flavor of a resource group and its quota of each
// resource the group covers.
type FlavorResources struct {
	Name      string            `json:"name"`
	Resources []ResourceQuotaOf `json:"resources"`
}

// ResourceQuotaOf is the quota of one named resource, as Kueue writes it.
type ResourceQuotaOf struct {
	Name           Resource  `json:"name"`
	NominalQuota   Quantity  `json:"nominalQuota"`
	BorrowingLimit *Quantity `json:"borrowingLimit,omitempty"`
	LendingLimit   *Quantity `json:"lendingLimit,omitempty"`
}

// FlavorQuota is the flavor's quota in the form berth keeps every quota
// in.
func (f FlavorResources) FlavorQuota() FlavorQuota {
	q := FlavorQuota{Flavor: f.Name}
	for _, r := range f.Resources {
		rq := &ResourceQuota{Nominal: r.NominalQuota, BorrowingLimit: r.BorrowingLimit, LendingLimit: r.LendingLimit}
		switch r.Name {
		case ResourceGPU:
			q.GPU = rq
		case ResourceCPU:
			q.CPU = rq
		case ResourceMemory:
			q.Memory = rq
		}
	}
	return q
}

// FlavorSeparator joins the flavors a pod takes from several resource
// groups into one name ("h100+cpu-nodes"): a flavor name is a DNS label,
// so it never holds one.
const FlavorSeparator = "+"

// SplitFlavors returns the flavors of a name that may join several, one
// per resource group: "h100+cpu-nodes" -> [h100 cpu-nodes].
func SplitFlavors(name string) []string { return strings.Split(name, FlavorSeparator) }

// Cohort is a group of teams that lend and borrow unused quota; cohorts nest
// through Parent.
type Cohort struct {
	Name   string        `json:"name"`
	Parent string        `json:"parent,omitempty"`
	Quota  []FlavorQuota `json:"quota"`
}

// Team owns workloads and quota.
type Team struct {
	Name   string        `json:"name"`
	Owners []string      `json:"owners"`
	Leads  []string      `json:"leads"`
	Cohort string        `json:"cohort,omitempty"`
	Weight float64       `json:"weight"`
	Quota  []FlavorQuota `json:"quota"`
	// ResourceGroups is Kueue's form of a quota, instead of Quota: each
	// group's resources come from one of its flavors, chosen apart from
	// the other groups'.
	ResourceGroups []ResourceGroup `json:"resourceGroups,omitempty"`
	GPUHoursBudget float64         `json:"gpuHoursBudget,omitempty"`
	// GPUHoursPerMonth is the team's monthly budget of GPU-hours (0: none).
	GPUHoursPerMonth float64    `json:"gpuHoursPerMonth,omitempty"`
	Preemption       Preemption `json:"preemption"`
	// FlavorFungibility says when a workload tries the team's next flavor
	// instead of borrowing or preempting on this one.
	FlavorFungibility FlavorFungibility `json:"flavorFungibility"`
}

// Flavor fungibility values, as Kueue spells them.
const (
	FungibilityBorrow        = "Borrow"
	FungibilityPreempt       = "Preempt"
	FungibilityTryNextFlavor = "TryNextFlavor"
)

// FlavorFungibility is Kueue's ClusterQueue flavorFungibility: whether a
// workload that could borrow (or preempt) on a flavor does so, or first
// tries the next flavor of the team's quota. Empty fields take Kueue's
// defaults, Borrow and TryNextFlavor.
type FlavorFungibility struct {
	// WhenCanBorrow: Borrow or TryNextFlavor.
	WhenCanBorrow string `json:"whenCanBorrow"`
	// WhenCanPreempt: Preempt or TryNextFlavor.
	WhenCanPreempt string `json:"whenCanPreempt"`
}

// Borrows reports whether a workload takes a flavor where it fits by
// borrowing rather than trying the next one (the default).
func (f FlavorFungibility) Borrows() bool { return f.WhenCanBorrow != FungibilityTryNextFlavor }

// Preempts reports whether a workload preempts on a flavor where it can
// rather than trying the next one (not the default).
func (f FlavorFungibility) Preempts() bool { return f.WhenCanPreempt == FungibilityPreempt }

// Quotas is the team's quota of each flavor, in the order flavors are
// tried: Quota, or every flavor of its resource groups, group by group.
func (t Team) Quotas() []FlavorQuota {
	if len(t.ResourceGroups) == 0 {
		return t.Quota
	}
	var out []FlavorQuota
	for _, g := range t.ResourceGroups {
		for _, f := range g.Flavors {
			out = append(out, f.FlavorQuota())
		}
	}
	return out
}

// FlavorQuota returns the team's quota of one flavor, or false.
func (t Team) FlavorQuota(flavor string) (FlavorQuota, bool) {
	for _, q := range t.Quotas() {
		if q.Flavor == flavor {
			return q, true
		}
	}
	return FlavorQuota{}, false
}

// Preemption policy values.
const (
	PreemptNever                     = "never"
	PreemptLowerPriority             = "lowerPriority"
	PreemptLowerOrNewerEqualPriority = "lowerOrNewerEqualPriority"
	PreemptAny                       = "any"
)

// Preemption is a team's preemption policy.
type Preemption struct {
	// WithinTeam: never, lowerPriority, lowerOrNewerEqualPriority.
	WithinTeam string `json:"withinTeam"`
	// ReclaimWithinCohort: never, lowerPriority, any.
	ReclaimWithinCohort string             `json:"reclaimWithinCohort"`
	BorrowWithinCohort  BorrowWithinCohort `json:"borrowWithinCohort"`
}

// BorrowWithinCohort says whether a team may preempt while it borrows.
type BorrowWithinCohort struct {
	// Policy: never or lowerPriority.
	Policy               string `json:"policy"`
	MaxPriorityThreshold *int   `json:"maxPriorityThreshold,omitempty"`
}

// Kind is what sort of workload something is.
type Kind string

const (
	KindTraining  Kind = "training"
	KindBatch     Kind = "batch"
	KindService   Kind = "service"
	KindInference Kind = "inference"
	KindNotebook  Kind = "notebook"
)

// Kinds lists every kind, in the order output shows them.
var Kinds = []Kind{KindTraining, KindBatch, KindService, KindInference, KindNotebook}

// RunsOnce reports whether the kind runs to completion once per runId
// (training and batch) rather than being kept running (the others).
func (k Kind) RunsOnce() bool { return k == KindTraining || k == KindBatch }

// Pods names one pod of the kind for people, n of them: "1 worker",
// "2 workers", "3 replicas", "1 pod".
func (k Kind) Pods(n int) string {
	w := "replica"
	switch k {
	case KindTraining:
		w = "worker"
	case KindBatch:
		w = "pod"
	}
	if n != 1 {
		w += "s"
	}
	return w
}

// WorkloadID names a workload across the repository: "team/name".
type WorkloadID string

// MakeWorkloadID joins a team and a name.
func MakeWorkloadID(team, name string) WorkloadID { return WorkloadID(team + "/" + name) }

// Team is the part before the slash.
func (id WorkloadID) Team() string {
	t, _, _ := strings.Cut(string(id), "/")
	return t
}

// Name is the part after the slash.
func (id WorkloadID) Name() string {
	_, n, _ := strings.Cut(string(id), "/")
	return n
}

// Workload is one thing to run.
type Workload struct {
	Name        string      `json:"name"`
	Team        string      `json:"team"`
	Kind        Kind        `json:"kind"`
	Priority    string      `json:"priority,omitempty"`
	Image       string      `json:"image,omitempty"`
	Command     []string    `json:"command"`
	Args        []string    `json:"args"`
	Env         Env         `json:"env"`
	Resources   Resources   `json:"resources"`
	Replicas    int         `json:"replicas,omitempty"`
	Workers     int         `json:"workers,omitempty"`
	MinWorkers  int         `json:"minWorkers,omitempty"`
	Parallelism int         `json:"parallelism,omitempty"`
	Completions int         `json:"completions,omitempty"`
	MaxDuration Duration    `json:"maxDuration,omitempty"`
	Retries     int         `json:"retries"`
	Checkpoint  *Checkpoint `json:"checkpoint,omitempty"`
	Schedule    string      `json:"schedule,omitempty"`
	// CatchUp and Concurrency say what a periodic job does with missed and
	// overlapping ticks ("" is CatchUpNone and ConcurrencyAllow).
	CatchUp      CatchUp     `json:"catchUp,omitempty"`
	CatchUpLimit int         `json:"catchUpLimit,omitempty"`
	Concurrency  Concurrency `json:"concurrency,omitempty"`
	DependsOn    []string    `json:"dependsOn"`
	RunID        string      `json:"runId"`
	Ports        []Port      `json:"ports"`
	Health       *Health     `json:"health,omitempty"`
	Rollout      *Rollout    `json:"rollout,omitempty"`
	Expose       *Expose     `json:"expose,omitempty"`
	Autoscale    *Autoscale  `json:"autoscale,omitempty"`
	// Idle is how long a notebook may go without activity before it is
	// stopped and its GPUs freed (zero: never).
	Idle Duration `json:"idle,omitempty"`
	// Roles are the pod sets of a workload of several shapes (a launcher
	// and workers); empty for a workload of one shape.
	Roles map[string]Role `json:"roles,omitempty"`
	// Volumes are the storage the workload mounts, by name.
	Volumes map[string]Volume `json:"volumes,omitempty"`
	// Outputs is what a pipeline step leaves for later steps; Inputs are
	// the steps (same team) whose outputs it reads.
	Outputs *Outputs `json:"outputs,omitempty"`
	Inputs  []string `json:"inputs,omitempty"`

	// Pos is where the workload is defined.
	Pos Pos `json:"-"`
}

// CatchUp is what a periodic job does with the ticks it missed.
type CatchUp string

const (
	CatchUpNone   CatchUp = "none"   // only a tick missed by less than the tick deadline
	CatchUpLatest CatchUp = "latest" // the latest tick, however late
	CatchUpAll    CatchUp = "all"    // every missed tick, the newest CatchUpLimit
)

// Concurrency is what a periodic job's tick does while a run of an earlier
// tick still runs.
type Concurrency string

const (
	ConcurrencyAllow   Concurrency = "allow"   // both run
	ConcurrencyForbid  Concurrency = "forbid"  // the new tick waits for the earlier run to end
	ConcurrencyReplace Concurrency = "replace" // the earlier run is stopped
)

// ID is "team/name".
func (w Workload) ID() WorkloadID { return MakeWorkloadID(w.Team, w.Name) }

// Role is one pod set of a workload with roles.
type Role struct {
	Name     string `json:"name"`
	Count    int    `json:"count"`
	MinCount int    `json:"minCount,omitempty"`
	// Resources is what one pod of the role asks.
	Resources    Resources         `json:"resources"`
	NodeSelector map[string]string `json:"nodeSelector"`
	// Command and Args replace the workload's when set.
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Env is added to the workload's.
	Env Env `json:"env"`
}

// MinPods is the fewest pods of the role that may start.
func (r Role) MinPods() int {
	if r.MinCount > 0 && r.MinCount < r.Count {
		return r.MinCount
	}
	return max(r.Count, 1)
}

// PodSet is a group of identical pods of a workload: one role, or every
// pod of a workload without roles.
type PodSet struct {
	// Role is the role's name; empty for a workload without roles.
	Role  string
	Count int
	// Min is the fewest that may start (Count when all must).
	Min          int
	Resources    Resources
	NodeSelector map[string]string
}

// RoleNames returns the workload's role names, sorted: the order pod sets
// are assigned flavors and placed in.
func (w Workload) RoleNames() []string { return slices.Sorted(maps.Keys(w.Roles)) }

// PodSets returns the workload's pod sets: its roles by name, or one set
// of all its pods.
func (w Workload) PodSets() []PodSet {
	if len(w.Roles) == 0 {
		return []PodSet{{Count: w.Pods(), Min: w.MinPods(), Resources: w.Resources}}
	}
	out := make([]PodSet, 0, len(w.Roles))
	for _, name := range w.RoleNames() {
		r := w.Roles[name]
		out = append(out, PodSet{Role: name, Count: max(r.Count, 1), Min: r.MinPods(), Resources: r.Resources, NodeSelector: r.NodeSelector})
	}
	return out
}

// GPUMilli is the GPU demand of the whole workload in thousandths of a GPU
// (or of a MIG slice), every pod of every role counted.
func (w Workload) GPUMilli() int64 {
	if len(w.Roles) == 0 {
		// Without building its pod set: a plan asks this of every
		// workload, and most have no roles.
		return w.Resources.GPUMilli() * int64(w.Pods())
	}
	var n int64
	for _, ps := range w.PodSets() {
		n += ps.Resources.GPUMilli() * int64(ps.Count)
	}
	return n
}

// Pods is how many replicas or workers run at once: the unit count the
// resources are multiplied by (every role's pods, for a workload with
// roles).
func (w Workload) Pods() int {
	if len(w.Roles) > 0 {
		n := 0
		for _, r := range w.Roles {
			n += max(r.Count, 1)
		}
		return n
	}
	switch w.Kind {
	case KindTraining:
		return max(w.Workers, 1)
	case KindBatch:
		return max(w.Parallelism, 1)
	default:
		if w.Autoscale != nil {
			// The run holds the minimum; each replica above it is a
			// run of its own (ScaleRunID).
			return max(w.Autoscale.Min, 1)
		}
		return max(w.Replicas, 1)
	}
}

// MinPods is the fewest pods that may start: a gang's minWorkers, otherwise
// all of them.
func (w Workload) MinPods() int {
	if len(w.Roles) > 0 {
		n := 0
		for _, r := range w.Roles {
			n += r.MinPods()
		}
		return n
	}
	if w.Kind == KindTraining && w.MinWorkers > 0 && w.MinWorkers < w.Pods() {
		return w.MinWorkers
	}
	return w.Pods()
}

// Dependencies resolves DependsOn to IDs (a bare name is in the same team).
func (w Workload) Dependencies() []WorkloadID {
	ids := make([]WorkloadID, 0, len(w.DependsOn))
	for _, d := range w.DependsOn {
		if strings.Contains(d, "/") {
			ids = append(ids, WorkloadID(d))
		} else {
			ids = append(ids, MakeWorkloadID(w.Team, d))
		}
	}
	return ids
}

// Resources is what one replica or worker asks for.
type Resources struct {
	CPU         Quantity `json:"cpu"`
	Memory      Quantity `json:"memory"`
	GPU         int      `json:"gpu"`
	Flavor      string   `json:"flavor,omitempty"`
	GPUModel    string   `json:"gpuModel,omitempty"`
	GPUFraction float64  `json:"gpuFraction,omitempty"`
	MIG         string   `json:"mig,omitempty"`
}

// GPUMilli is the GPU demand of one pod in thousandths of a GPU (or of a MIG
// slice): 1000 per whole GPU, the fraction of one, or 1000 per MIG slice.
func (r Resources) GPUMilli() int64 {
	switch {
	case r.GPUFraction > 0:
		return int64(r.GPUFraction*1000 + 0.5)
	case r.MIG != "":
		return 1000
	default:
		return int64(r.GPU) * 1000
	}
}

// UsesGPU reports whether the pod needs any GPU capacity.
func (r Resources) UsesGPU() bool { return r.GPU > 0 || r.GPUFraction > 0 || r.MIG != "" }

// Checkpoint is where a training run saves and resumes from.
type Checkpoint struct {
	Dir    string `json:"dir"`
	Resume bool   `json:"resume"`
	// Size is the size of a run's claim on Kubernetes (zero:
	// DefaultCheckpointSize).
	Size Quantity `json:"size,omitzero"`
	// Keep keeps the checkpoints after the run ended.
	Keep bool `json:"keep,omitempty"`
}

// PriorityTier is one priority level.
type PriorityTier struct {
	Value       int  `json:"value"`
	CanPreempt  bool `json:"canPreempt"`
	Preemptible bool `json:"preemptible"`
}

// Placement policies.
const (
	PlacementBerth       = "berth"
	PlacementFirstFit    = "firstFit"
	PlacementTightestFit = "tightestFit"
)

// Policy is the platform's rules.
type Policy struct {
	Priorities      map[string]PriorityTier `json:"priorities"`
	DefaultPriority string                  `json:"defaultPriority"`
	FairSharing     bool                    `json:"fairSharing"`
	Placement       string                  `json:"placement"`
	Backfill        bool                    `json:"backfill"`
	Limits          Limits                  `json:"limits"`
	Approvals       Approvals               `json:"approvals"`
}

// Limits bound what one workload may ask for.
type Limits struct {
	MaxGPUsPerWorkload int      `json:"maxGPUsPerWorkload,omitempty"`
	MaxDuration        Duration `json:"maxDuration,omitempty"`
}

// Approvals are the review rules.
type Approvals struct {
	Admins           []string      `json:"admins"`
	RequireTeamOwner bool          `json:"requireTeamOwner"`
	LargeWorkload    LargeWorkload `json:"largeWorkload"`
}

// LargeWorkload is the size at which a workload needs its team lead.
type LargeWorkload struct {
	GPUs     int     `json:"gpus,omitempty"`
	GPUHours float64 `json:"gpuHours,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("24h").
type Duration time.Duration

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the shortest Go form: "24h", "1h30m", "90s".
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// FormatDuration prints a duration without the zero units time.Duration
// prints ("24h" instead of "24h0m0s").
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText writes the Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultNodeLostAfter is the schema's nodeLostAfter.
const DefaultNodeLostAfter = 5 * time.Minute

// NodeLostGrace is how long a node of the cluster may be not ready before
// its runs are requeued.
func (c Cluster) NodeLostGrace() time.Duration {
	if c.NodeLostAfter > 0 {
		return c.NodeLostAfter.D()
	}
	return DefaultNodeLostAfter
}

// NotebookIdleLimits are the idle limits of c's notebooks (0: none), which
// both backends keep from each revision: a change of the limit alone
// restarts nothing, so it is not read from the live objects.
func (c *Config) NotebookIdleLimits() map[WorkloadID]time.Duration {
	limits := map[WorkloadID]time.Duration{}
	for id, w := range c.Workloads {
		if w.Kind == KindNotebook {
			limits[id] = w.Idle.D()
		}
	}
	return limits
}
