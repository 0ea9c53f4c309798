package sim

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// The names a trace's configuration uses.
const (
	// ClusterName is the one cluster a trace describes.
	ClusterName = "trace"
	// FlavorGPU selects every GPU node: nodes' GPU models are "gpu-MODEL"
	// (gpu-G2, gpu-T4, ...), and a flavor's model matches whole tokens.
	FlavorGPU = "gpu"
	// FlavorCPU is the CPU-only flavor for pods without GPUs: no labels, so
	// it selects every node.
	FlavorCPU = "cpu"
	// DefaultTeams is how many synthetic teams pods are spread over.
	DefaultTeams = 8
	// runID is the run of every pod: each runs once.
	runID = "1"
	// specLabel prefixes the node label that marks the nodes a gpu_spec
	// allows (see Setup).
	specLabel = "sim.berth.dev/spec-"
)

// Epoch is the time trace second 0 maps to.
var Epoch = time.Unix(0, 0).UTC()

// At is trace second t as a time.
func At(t int64) time.Time { return Epoch.Add(time.Duration(t) * time.Second) }

// Setup says how a trace becomes a berth configuration. The zero value:
// 8 teams whose quota does not limit, one priority for every pod.
//
// The trace has no teams, so each pod belongs to a synthetic team chosen by
// a stable hash of its name (FNV-1a, 64 bits, modulo Teams): team-00,
// team-01, ... Every team lists both flavors (gpu, then cpu).
//
// A pod whose gpu_spec names GPU models runs on a flavor of its own,
// "gpu-spec-N", which selects the nodes of those models by a label the
// builder puts on them (the Alibaba 2023 default trace sets no gpu_spec).
type Setup struct {
	// Teams is how many synthetic teams (default 8).
	Teams int
	// TeamQuota, when above 0, caps each team's GPUs at this share of the
	// cluster's GPUs (0.125 with 8 teams partitions the cluster exactly;
	// more lets teams overlap). Teams are in no cohort, so they cannot
	// borrow. 0 means the quota does not limit.
	TeamQuota float64
	// QoSPriority orders the queue by the pod's qos: Guaranteed (300), LS
	// (200), Burstable (100), BE and anything else (0). No tier may
	// preempt. Off: one priority, so the queue is first come, first served.
	QoSPriority bool
	// FairSharing turns on the policy's fair sharing: between equal
	// priorities, the team with the lower share of what it uses goes first.
	FairSharing bool
}

func (s Setup) teams() int {
	if s.Teams <= 0 {
		return DefaultTeams
	}
	return s.Teams
}

// TeamOf is the synthetic team of a pod.
func (s Setup) TeamOf(pod string) string { return teamName(s.teamIndex(pod)) }

func (s Setup) teamIndex(pod string) int {
	h := fnv.New64a()
	h.Write([]byte(pod))
	return int(h.Sum64() % uint64(s.teams()))
}

func teamName(i int) string { return fmt.Sprintf("team-%02d", i) }

// tierOf is the priority tier of a pod's qos under QoSPriority.
func tierOf(qos string) string {
	switch strings.ToLower(qos) {
	case "guaranteed":
		return "guaranteed"
	case "ls":
		return "ls"
	case "burstable":
		return "burstable"
	default:
		return "be"
	}
}

// World is a trace as berth sees it: a configuration with a workload per
// pod, the cluster's snapshot with nothing running, and each pod's
// workload in the order of the pods given.
type World struct {
	Config    *berth.Config
	Snapshot  *berth.Snapshot
	Workloads []berth.Workload
}

// Build turns a trace's nodes and the given pods into a World.
func Build(nodes []Node, pods []Pod, s Setup) *World {
	specKeys := gpuSpecs(pods)
	cfg := baseConfig(s, len(pods))
	flavorNames, specFlavor := addFlavors(cfg, specKeys)
	snap, totalGPUs := buildSnapshot(nodes, specKeys)
	addTeams(cfg, s, flavorNames, totalGPUs)

	w := &World{Config: cfg, Snapshot: snap, Workloads: make([]berth.Workload, len(pods))}
	for i, p := range pods {
		wl := podWorkload(p, s, specFlavor)
		w.Workloads[i] = wl
		cfg.Workloads[wl.ID()] = wl
	}
	return w
}

// gpuSpecs are the distinct sets of GPU models the pods ask for
// ("A100|V100"), sorted: each becomes a gpu_spec flavor, numbered in
// this order.
func gpuSpecs(pods []Pod) []string {
	specs := map[string]bool{}
	for _, p := range pods {
		if len(p.GPUSpec) > 0 && p.NumGPU > 0 {
			specs[strings.Join(p.GPUSpec, "|")] = true
		}
	}
	specKeys := make([]string, 0, len(specs))
	for k := range specs {
		specKeys = append(specKeys, k)
	}
	slices.Sort(specKeys)
	return specKeys
}

// baseConfig is the simulated cluster with its policy and no flavors,
// teams or workloads yet.
func baseConfig(s Setup, workloads int) *berth.Config {
	cfg := &berth.Config{
		Clusters:  map[string]berth.Cluster{ClusterName: {Name: ClusterName, Backend: berth.BackendLocal, Default: true}},
		Flavors:   map[string]berth.Flavor{},
		Cohorts:   map[string]berth.Cohort{},
		Teams:     map[string]berth.Team{},
		Workloads: make(map[berth.WorkloadID]berth.Workload, workloads),
		Policy: berth.Policy{
			Priorities:      map[string]berth.PriorityTier{"normal": {Value: 0, Preemptible: true}},
			DefaultPriority: "normal",
			FairSharing:     s.FairSharing,
			Placement:       berth.PlacementBerth,
		},
	}
	if s.QoSPriority {
		cfg.Policy.Priorities = map[string]berth.PriorityTier{
			"guaranteed": {Value: 300, Preemptible: true},
			"ls":         {Value: 200, Preemptible: true},
			"burstable":  {Value: 100, Preemptible: true},
			"be":         {Value: 0, Preemptible: true},
		}
		cfg.Policy.DefaultPriority = "be"
	}
	return cfg
}

// addFlavors adds the any-GPU flavor, one flavor per gpu_spec and the
// CPU flavor; it returns their names in quota order and the flavor of
// each spec.
func addFlavors(cfg *berth.Config, specKeys []string) (flavorNames []string, specFlavor map[string]string) {
	specFlavor = map[string]string{}
	flavorNames = []string{FlavorGPU}
	cfg.Flavors[FlavorGPU] = berth.Flavor{Name: FlavorGPU, GPUModel: "gpu", NodeLabels: map[string]string{}}
	for i, k := range specKeys {
		name := fmt.Sprintf("gpu-spec-%d", i+1)
		specFlavor[k] = name
		flavorNames = append(flavorNames, name)
		cfg.Flavors[name] = berth.Flavor{Name: name, GPUModel: "gpu",
			NodeLabels: map[string]string{specLabel + fmt.Sprint(i+1): "true"}}
	}
	flavorNames = append(flavorNames, FlavorCPU)
	cfg.Flavors[FlavorCPU] = berth.Flavor{Name: FlavorCPU, NodeLabels: map[string]string{}}
	return flavorNames, specFlavor
}

// buildSnapshot is the trace's nodes, each labelled with the gpu_specs
// its model is in.
func buildSnapshot(nodes []Node, specKeys []string) (snap *berth.Snapshot, totalGPUs int64) {
	snap = &berth.Snapshot{Cluster: ClusterName, Time: Epoch}
	for _, n := range nodes {
		model := "gpu"
		if n.Model != "" {
			model = "gpu-" + n.Model
		}
		labels := map[string]string{}
		for i, k := range specKeys {
			for _, m := range strings.Split(k, "|") {
				if strings.EqualFold(m, n.Model) {
					labels[specLabel+fmt.Sprint(i+1)] = "true"
				}
			}
		}
		snap.Nodes = append(snap.Nodes, berth.Node{
			Name: n.Name, Labels: labels, Ready: true,
			CPU: berth.MilliQuantity(n.CPUMilli), Memory: berth.MilliQuantity(n.MemoryMiB << 20 * 1000),
			GPUs: n.GPUs, GPUModel: model, MIG: []berth.MIGSlices{},
		})
		totalGPUs += int64(n.GPUs)
	}
	return snap, totalGPUs
}

// addTeams adds the setup's teams, each with s.TeamQuota of the GPUs in
// every GPU flavor (no quota when it is 0) and no preemption.
func addTeams(cfg *berth.Config, s Setup, flavorNames []string, totalGPUs int64) {
	for i := range s.teams() {
		t := berth.Team{Name: teamName(i), Weight: 1,
			Preemption: berth.Preemption{WithinTeam: berth.PreemptNever, ReclaimWithinCohort: berth.PreemptNever,
				BorrowWithinCohort: berth.BorrowWithinCohort{Policy: berth.PreemptNever}}}
		for _, f := range flavorNames {
			fq := berth.FlavorQuota{Flavor: f}
			if s.TeamQuota > 0 && f != FlavorCPU {
				milli := int64(s.TeamQuota*float64(totalGPUs)*1000 + 0.5)
				fq.GPU = &berth.ResourceQuota{Nominal: berth.MilliQuantity(milli)}
			}
			t.Quota = append(t.Quota, fq)
		}
		cfg.Teams[t.Name] = t
	}
}

// podWorkload is the batch workload a trace pod becomes.
func podWorkload(p Pod, s Setup, specFlavor map[string]string) berth.Workload {
	wl := berth.Workload{
		Name: p.Name, Team: s.TeamOf(p.Name), Kind: berth.KindBatch, RunID: runID,
		Resources: berth.Resources{
			CPU:    berth.MilliQuantity(p.CPUMilli),
			Memory: berth.MilliQuantity(p.MemoryMiB << 20 * 1000),
		},
	}
	if s.QoSPriority {
		wl.Priority = tierOf(p.QoS)
	}
	switch {
	case p.NumGPU == 0:
	case p.Fractional():
		wl.Resources.GPUFraction = float64(p.GPUMilli) / 1000
	default:
		wl.Resources.GPU = p.NumGPU
	}
	if len(p.GPUSpec) > 0 && p.NumGPU > 0 {
		wl.Resources.Flavor = specFlavor[strings.Join(p.GPUSpec, "|")]
	}
	return wl
}

// NewScheduler builds a scheduler for the world under a placement policy.
// Queued runs get no estimated start: the simulator does not read them,
// and each costs a what-if replay.
func (w *World) NewScheduler(policy string) *schedule.Scheduler {
	return schedule.NewScheduler(w.Config, w.Snapshot, schedule.Options{
		Placement: policy, NoBackfill: true, EstimateLimit: -1,
	})
}

// TypicalShapes are the distinct (cpu, GPU share, GPU count) shapes of
// pods, each with how many pods have it, as the paper's fragmentation
// model weighs them. Memory is not part of a shape (the paper's model
// leaves it out), nor is gpu_spec (empty throughout the Alibaba 2023
// trace).
func TypicalShapes(pods []Pod) []schedule.TypicalShape {
	type key struct {
		cpu   int64
		gpus  int
		milli int32
	}
	count := map[key]int{}
	for _, p := range pods {
		k := key{cpu: p.CPUMilli}
		switch {
		case p.NumGPU == 0:
		case p.Fractional():
			k.milli = int32(p.GPUMilli)
		default:
			k.gpus = p.NumGPU
		}
		count[k]++
	}
	out := make([]schedule.TypicalShape, 0, len(count))
	for k, n := range count {
		out = append(out, schedule.TypicalShape{CPU: k.cpu, GPUs: k.gpus, GPUMilli: k.milli, Count: n})
	}
	slices.SortFunc(out, func(a, b schedule.TypicalShape) int {
		return cmp.Or(
			cmp.Compare(b.Count, a.Count),
			cmp.Compare(a.GPUs, b.GPUs),
			cmp.Compare(a.GPUMilli, b.GPUMilli),
			cmp.Compare(a.CPU, b.CPU),
		)
	})
	return out
}

// Policies are the placement policies a replay compares by default, in
// report order.
var Policies = []string{berth.PlacementFirstFit, berth.PlacementTightestFit, berth.PlacementBerth}

// PaperPolicies are those the paper's experiment compares by default, so
// that one run prints the whole table: berth's first and tightest fit, the
// paper's baselines and its FGD as its artifact scores them
// (schedule.PaperPlacements), and berth's default.
var PaperPolicies = append(append([]string{berth.PlacementFirstFit, berth.PlacementTightestFit},
	schedule.PaperPlacements...), berth.PlacementBerth)

// checkPolicies validates a list of policies (nil: def).
func checkPolicies(ps, def []string) ([]string, error) {
	if len(ps) == 0 {
		return def, nil
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if !slices.Contains(PaperPolicies, p) {
			return nil, fmt.Errorf("policy %q: want one of %s", p, strings.Join(PaperPolicies, ", "))
		}
		if seen[p] {
			return nil, fmt.Errorf("policy %q is listed twice", p)
		}
		seen[p] = true
	}
	return ps, nil
}
