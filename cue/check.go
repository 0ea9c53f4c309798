package cue

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// checker finds what the schema cannot see from one instance: references
// between objects, cycles, and rules that span objects.
type checker struct {
	cfg     *berth.Config
	invalid map[string]bool
	// partial is set when an instance could not be loaded: what it defines
	// is unknown, so no reference is reported as dangling.
	partial bool
	errs    Errors
}

func check(cfg *berth.Config, invalid map[string]bool, partial bool) Errors {
	c := &checker{cfg: cfg, invalid: invalid, partial: partial}
	c.clusters()
	c.flavors()
	c.cohorts()
	c.teams()
	c.policy()
	c.workloads()
	return c.errs
}

func (c *checker) errorf(path string, format string, args ...any) {
	c.errs = append(c.errs, Error{Path: path, Message: fmt.Sprintf(format, args...), Positions: []berth.Pos{c.cfg.Pos(path)}})
}

// dangling reports a reference to something that does not exist, with
// what does and the likeliest typo, unless the repository is only partly
// known (an instance failed to load).
func (c *checker) dangling(path, what, name string, defined []string) {
	if c.partial {
		return
	}
	c.errorf(path, "%s %q does not exist (%s)%s", what, name, nameList(defined), suggest(name, defined))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func names[V any](m map[string]V) string { return nameList(keys(m)) }

func nameList(keys []string) string {
	if len(keys) == 0 {
		return "none are defined"
	}
	if len(keys) > 8 {
		keys = append(keys[:8:8], "...")
	}
	return "defined: " + strings.Join(keys, ", ")
}

func (c *checker) clusters() {
	var defaults []string
	for _, name := range c.cfg.ClusterNames() {
		if c.cfg.Clusters[name].Default {
			defaults = append(defaults, name)
		}
	}
	if len(defaults) > 1 {
		for _, name := range defaults {
			c.errorf("clusters."+name+".default", "more than one cluster is the default (%s): mark one", strings.Join(defaults, ", "))
		}
	}
}

// ref reports a reference from path to the kind's name that does not
// exist, unless it exists but failed validation (already reported).
func ref[V any](c *checker, path, kind, name string, m map[string]V) {
	if _, ok := m[name]; !ok && !c.invalid[kind+"s."+name] {
		c.dangling(path, kind, name, keys(m))
	}
}

func (c *checker) flavors() {
	for _, name := range c.cfg.FlavorNames() {
		f := c.cfg.Flavors[name]
		p := "flavors." + name
		if f.Cluster != "" {
			ref(c, p+".cluster", "cluster", f.Cluster, c.cfg.Clusters)
		} else if len(c.cfg.Clusters) > 1 && c.cfg.DefaultCluster() == "" {
			c.errorf(p, "flavor %s names no cluster and no cluster is the default: set cluster, or mark a cluster default", name)
		}
		if f.MIG != "" && f.GPUModel == "" {
			c.errorf(p+".mig", "a MIG flavor needs gpuModel: MIG profile %s is carved out of which GPU?", f.MIG)
		}
	}
}

func (c *checker) quotaFlavors(p string, quota []berth.FlavorQuota) {
	seen := map[string]int{}
	for i, q := range quota {
		qp := fmt.Sprintf("%s.quota.%d.flavor", p, i)
		ref(c, qp, "flavor", q.Flavor, c.cfg.Flavors)
		if j, dup := seen[q.Flavor]; dup {
			c.errs = append(c.errs, Error{Path: qp, Message: fmt.Sprintf("flavor %s is listed twice in the quota", q.Flavor),
				Positions: dedupPositions([]berth.Pos{c.cfg.Pos(qp), c.cfg.Pos(fmt.Sprintf("%s.quota.%d.flavor", p, j))})})
		}
		seen[q.Flavor] = i
		if q.GPU == nil && q.CPU == nil && q.Memory == nil {
			c.errorf(fmt.Sprintf("%s.quota.%d", p, i), "quota for flavor %s sets no resource: give gpu, cpu or memory", q.Flavor)
		}
	}
}

func (c *checker) cohorts() {
	for _, name := range c.cfg.CohortNames() {
		co := c.cfg.Cohorts[name]
		p := "cohorts." + name
		if co.Parent != "" {
			ref(c, p+".parent", "cohort", co.Parent, c.cfg.Cohorts)
		}
		c.quotaFlavors(p, co.Quota)
	}
	// A cycle of parents would make borrowing loop forever. Each cycle is
	// reported once, from its smallest member, with every parent field.
	reported := map[string]bool{}
	for _, name := range c.cfg.CohortNames() {
		chain := []string{name}
		seen := map[string]bool{name: true}
		for cur := c.cfg.Cohorts[name].Parent; cur != ""; cur = c.cfg.Cohorts[cur].Parent {
			if cur == name {
				if reported[name] {
					break
				}
				var ps []berth.Pos
				for _, m := range chain {
					reported[m] = true
					ps = append(ps, c.cfg.Pos("cohorts."+m+".parent"))
				}
				c.errs = append(c.errs, Error{Path: "cohorts." + name + ".parent",
					Message:   "cohort parents form a cycle: " + strings.Join(append(chain, name), " -> ") + "; one of them must have no parent",
					Positions: dedupPositions(ps)})
				break
			}
			if seen[cur] {
				break
			}
			seen[cur] = true
			chain = append(chain, cur)
		}
	}
}

func (c *checker) teams() {
	for _, name := range c.cfg.TeamNames() {
		t := c.cfg.Teams[name]
		p := "teams." + name
		if t.Cohort != "" {
			ref(c, p+".cohort", "cohort", t.Cohort, c.cfg.Cohorts)
		}
		c.quotaFlavors(p, t.Quota)
		c.resourceGroups(p, t)
	}
}

// resourceGroups checks a team's resource groups by Kueue's rules
// (ClusterQueue validation): a resource is covered by at most one group, a
// flavor is in at most one group, and each flavor of a group gives a quota
// for exactly the group's resources, each once.
func (c *checker) resourceGroups(p string, t berth.Team) {
	if len(t.ResourceGroups) == 0 {
		return
	}
	gp := p + ".resourceGroups"
	if len(t.Quota) > 0 {
		c.errs = append(c.errs, Error{Path: gp,
			Message:   "a team has quota or resourceGroups, not both: move each flavor of quota into a resource group",
			Positions: dedupPositions([]berth.Pos{c.cfg.Pos(gp + ".0"), c.cfg.Pos(p + ".quota.0.flavor")})})
	}
	covered := map[berth.Resource]string{} // resource -> path that covers it
	flavors := map[string]string{}         // flavor -> path of its name
	for i, g := range t.ResourceGroups {
		gk := fmt.Sprintf("%s.%d", gp, i)
		want := map[berth.Resource]bool{}
		for j, r := range g.CoveredResources {
			rp := fmt.Sprintf("%s.coveredResources.%d", gk, j)
			want[r] = true
			if prev, dup := covered[r]; dup {
				c.errs = append(c.errs, Error{Path: rp,
					Message:   fmt.Sprintf("resource %s is covered by more than one resource group: a resource belongs to one group", r),
					Positions: dedupPositions([]berth.Pos{c.cfg.Pos(rp), c.cfg.Pos(prev)})})
				continue
			}
			covered[r] = rp
		}
		for j, f := range g.Flavors {
			fk := fmt.Sprintf("%s.flavors.%d", gk, j)
			ref(c, fk+".name", "flavor", f.Name, c.cfg.Flavors)
			if prev, dup := flavors[f.Name]; dup {
				c.errs = append(c.errs, Error{Path: fk + ".name",
					Message:   fmt.Sprintf("flavor %s is listed twice in the resource groups: a flavor belongs to one group, once", f.Name),
					Positions: dedupPositions([]berth.Pos{c.cfg.Pos(fk + ".name"), c.cfg.Pos(prev)})})
			} else {
				flavors[f.Name] = fk + ".name"
			}
			has := map[berth.Resource]bool{}
			for k, r := range f.Resources {
				rp := fmt.Sprintf("%s.resources.%d.name", fk, k)
				switch {
				case has[r.Name]:
					c.errorf(rp, "flavor %s gives resource %s twice", f.Name, r.Name)
				case !want[r.Name]:
					c.errorf(rp, "flavor %s gives resource %s, which its group does not cover (%s): add it to coveredResources or remove it",
						f.Name, r.Name, resourceList(g.CoveredResources))
				}
				has[r.Name] = true
			}
			var missing []berth.Resource
			for _, r := range g.CoveredResources {
				if !has[r] {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 {
				c.errorf(fk+".name", "flavor %s gives no quota for %s, which its group covers: each flavor of a group gives every resource the group covers",
					f.Name, resourceList(missing))
			}
		}
	}
}

func resourceList(rs []berth.Resource) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func (c *checker) policy() {
	pol := c.cfg.Policy
	if _, ok := pol.Priorities[pol.DefaultPriority]; !ok {
		c.dangling("policy.defaultPriority", "priority tier", pol.DefaultPriority, keys(pol.Priorities))
	}
}

func (c *checker) workloads() {
	ids := c.cfg.WorkloadIDs()
	// Each workload's checks read the configuration only: they run in
	// chunks on every core, each chunk's errors kept in order.
	sub := make([]*checker, chunks(len(ids)))
	inChunks(len(ids), len(sub), func(k, lo, hi int) {
		sub[k] = &checker{cfg: c.cfg, invalid: c.invalid, partial: c.partial}
		sub[k].workloadsOf(ids, ids[lo:hi])
	})
	for _, s := range sub {
		c.errs = append(c.errs, s.errs...)
	}
	c.dependencyCycles(ids)
}

// minChunk is the fewest workloads worth a goroutine of their own.
const minChunk = 2000

// chunks is how many chunks n workloads are checked in: one per core,
// of at least minChunk each.
func chunks(n int) int { return min(runtime.GOMAXPROCS(0), max(n/minChunk, 1)) }

// inChunks calls f at once for each of k chunks of [0, n), with the
// chunk's index and bounds, and waits for them.
func inChunks(n, k int, f func(i, lo, hi int)) {
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() { f(i, i*n/k, (i+1)*n/k) })
	}
	wg.Wait()
}

// workloadsOf checks each workload of some, of all those ids.
func (c *checker) workloadsOf(ids, some []berth.WorkloadID) {
	for _, id := range some {
		w := c.cfg.Workloads[id]
		p := "workloads." + w.Team + "." + w.Name
		if _, ok := c.cfg.Teams[w.Team]; !ok && !c.invalid["teams."+w.Team] {
			c.dangling(p, "team", w.Team, keys(c.cfg.Teams))
		}
		if w.Priority != "" {
			if _, ok := c.cfg.Policy.Priorities[w.Priority]; !ok {
				c.dangling(p+".priority", "priority tier", w.Priority, keys(c.cfg.Policy.Priorities))
			}
		}
		if len(w.Roles) == 0 {
			c.workloadResources(p+".resources", w.Resources)
		}
		for _, name := range w.RoleNames() {
			c.workloadResources(p+".roles."+name+".resources", w.Roles[name].Resources)
		}
		c.workloadStartable(p, w)
		c.workloadShape(p, w)
		c.workloadLimits(p, w)
		c.service(p, w)
		c.volumes(p, w)
		c.pipelineInputs(p, w)
		c.notebook(p, w)
		for i, d := range w.Dependencies() {
			dp := fmt.Sprintf("%s.dependsOn.%d", p, i)
			if d == id {
				c.errorf(dp, "a workload cannot depend on itself")
				continue
			}
			if _, ok := c.cfg.Workloads[d]; !ok && !c.invalid["workloads."+d.Team()+"."+d.Name()] && !c.partial {
				var same []string
				for _, other := range ids {
					if other.Team() == d.Team() {
						same = append(same, other.Name())
					}
				}
				has := "has no workloads"
				if len(same) > 0 {
					has = "has " + strings.TrimPrefix(nameList(same), "defined: ")
				}
				c.errorf(dp, "workload %q does not exist (team %s %s)%s", string(d), d.Team(), has, suggest(d.Name(), same))
			}
		}
	}
}

// workloadResources checks the resources at path p (a workload's, or one
// role's).
func (c *checker) workloadResources(p string, r berth.Resources) {
	if r.Flavor != "" {
		f, ok := c.cfg.Flavors[r.Flavor]
		if !ok {
			if !c.invalid["flavors."+r.Flavor] {
				c.dangling(p+".flavor", "flavor", r.Flavor, keys(c.cfg.Flavors))
			}
			return
		}
		switch {
		case r.MIG != "" && f.MIG != r.MIG:
			c.errorf(p+".mig", "MIG profile %s does not match flavor %s (%s)", r.MIG, f.Name, describeFlavor(f))
		case r.MIG == "" && f.MIG != "" && r.UsesGPU():
			c.errorf(p+".flavor", "flavor %s is MIG profile %s: set resources.mig: %q", f.Name, f.MIG, f.MIG)
		case r.UsesGPU() && f.GPUModel == "":
			c.errorf(p+".flavor", "flavor %s is a CPU-only pool but the workload asks for GPUs", f.Name)
		case r.GPUModel != "" && f.GPUModel != r.GPUModel:
			c.errorf(p+".gpuModel", "gpuModel %s does not match flavor %s (%s)", r.GPUModel, f.Name, describeFlavor(f))
		}
		return
	}
	if c.partial {
		return
	}
	if r.GPUModel != "" && !c.anyFlavor(func(f berth.Flavor) bool { return f.GPUModel == r.GPUModel }) {
		c.errorf(p+".gpuModel", "no flavor has gpuModel %q (%s)", r.GPUModel, c.flavorModels())
	}
	if r.MIG != "" && !c.anyFlavor(func(f berth.Flavor) bool {
		return f.MIG == r.MIG && (r.GPUModel == "" || f.GPUModel == r.GPUModel)
	}) {
		c.errorf(p+".mig", "no flavor offers MIG profile %s", r.MIG)
	}
}

func describeFlavor(f berth.Flavor) string {
	switch {
	case f.MIG != "":
		return f.GPUModel + " MIG " + f.MIG
	case f.GPUModel != "":
		return f.GPUModel
	}
	return "CPU only"
}

func (c *checker) anyFlavor(pred func(berth.Flavor) bool) bool {
	for _, f := range c.cfg.Flavors {
		if pred(f) {
			return true
		}
	}
	return false
}

func (c *checker) flavorModels() string {
	set := map[string]bool{}
	for _, f := range c.cfg.Flavors {
		if f.GPUModel != "" {
			set[f.GPUModel] = true
		}
	}
	return "models: " + strings.TrimPrefix(names(set), "defined: ")
}

// workloadStartable refuses what its cluster's backend could never start,
// which would otherwise validate and then fail at every apply.
func (c *checker) workloadStartable(p string, w berth.Workload) {
	if c.partial {
		return
	}
	name := schedule.ClusterOf(c.cfg, w)
	cl, ok := c.cfg.Clusters[name]
	if ok && cl.Backend == berth.BackendKubernetes && w.Image == "" {
		c.errorf(p, "no image: cluster %s (backend kubernetes) runs each workload in a container; set image, e.g. image: \"ghcr.io/acme/train:1.4\"", name)
	}
	if len(w.Command) > 0 || !ok || cl.Backend != berth.BackendLocal {
		return
	}
	if w.Kind == berth.KindNotebook {
		return // berth starts a Jupyter server for a notebook without a command
	}
	// Each role may set its own command; one without needs the workload's.
	if len(w.Roles) > 0 {
		all := true
		for _, r := range w.Roles {
			all = all && len(r.Command) > 0
		}
		if all {
			return
		}
	}
	entry := "an image's"
	if w.Image != "" {
		entry = "image " + w.Image + "'s"
	}
	c.errorf(p, "no command: cluster %s (backend local) runs each workload's command as a process, with no container runtime to run %s own entrypoint; set command, e.g. command: [\"python\", \"train.py\"]", name, entry)
}

func (c *checker) workloadShape(p string, w berth.Workload) {
	if w.CatchUp == berth.CatchUpAll && w.CatchUpLimit == 0 {
		c.errorf(p+".catchUp", "catchUp all needs catchUpLimit: without one, a job that missed a year of ticks would start every one of them; set e.g. catchUpLimit: 24")
	}
	if w.Schedule == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"catchUp", w.CatchUp != ""}, {"catchUpLimit", w.CatchUpLimit != 0}, {"concurrency", w.Concurrency != ""}} {
			if f.set {
				c.errorf(p+"."+f.name, "%s is for a periodic job: this workload has no schedule", f.name)
			}
		}
	}
	for _, name := range w.RoleNames() {
		r := w.Roles[name]
		if r.MinCount > r.Count {
			c.errorf(p+".roles."+name+".minCount", "minCount %d is more than count %d of role %s", r.MinCount, r.Count, name)
		}
	}
	if w.MinWorkers > 0 && w.MinWorkers > w.Workers {
		c.errorf(p+".minWorkers", "minWorkers %d is more than workers %d", w.MinWorkers, w.Workers)
	}
	if w.Kind == berth.KindBatch && w.Completions < w.Parallelism {
		c.errorf(p+".parallelism", "parallelism %d is more than completions %d: the extra pods would have nothing to do", w.Parallelism, w.Completions)
	}
}

func (c *checker) workloadLimits(p string, w berth.Workload) {
	lim := c.cfg.Policy.Limits
	if lim.MaxGPUsPerWorkload > 0 {
		if len(w.Roles) > 0 {
			gpus, parts := 0, []string{}
			for _, name := range w.RoleNames() {
				r := w.Roles[name]
				if r.Resources.GPU > 0 {
					gpus += r.Resources.GPU * r.Count
					parts = append(parts, fmt.Sprintf("%s %d x %d", name, r.Count, r.Resources.GPU))
				}
			}
			if gpus > lim.MaxGPUsPerWorkload {
				c.errorf(p+".roles", "asks for %d GPUs (%s); policy.limits.maxGPUsPerWorkload is %d", gpus, strings.Join(parts, " + "), lim.MaxGPUsPerWorkload)
			}
		} else if gpus := w.Resources.GPU * w.Pods(); gpus > lim.MaxGPUsPerWorkload {
			c.errorf(p+".resources.gpu", "asks for %d GPUs (%d x %d); policy.limits.maxGPUsPerWorkload is %d", gpus, w.Pods(), w.Resources.GPU, lim.MaxGPUsPerWorkload)
		}
	}
	if lim.MaxDuration > 0 && w.MaxDuration > lim.MaxDuration {
		c.errorf(p+".maxDuration", "maxDuration %s is longer than policy.limits.maxDuration %s", w.MaxDuration, lim.MaxDuration)
	}
}

// dependencyCycles reports each cycle of dependsOn once, at its smallest
// member, so the report is the same whatever the input order.
func (c *checker) dependencyCycles(ids []berth.WorkloadID) {
	const (
		white = iota
		grey
		black
	)
	color := map[berth.WorkloadID]int{}
	var stack []berth.WorkloadID
	reported := map[string]bool{}
	var visit func(id berth.WorkloadID)
	visit = func(id berth.WorkloadID) {
		color[id] = grey
		stack = append(stack, id)
		w := c.cfg.Workloads[id]
		for _, d := range w.Dependencies() {
			if _, ok := c.cfg.Workloads[d]; !ok || d == id {
				continue
			}
			switch color[d] {
			case white:
				visit(d)
			case grey:
				var cycle []berth.WorkloadID
				for i := len(stack) - 1; i >= 0; i-- {
					cycle = append([]berth.WorkloadID{stack[i]}, cycle...)
					if stack[i] == d {
						break
					}
				}
				// rotate so the smallest ID comes first
				min := 0
				for i := range cycle {
					if cycle[i] < cycle[min] {
						min = i
					}
				}
				cycle = append(cycle[min:], cycle[:min]...)
				parts := make([]string, 0, len(cycle)+1)
				for _, x := range cycle {
					parts = append(parts, string(x))
				}
				parts = append(parts, string(cycle[0]))
				key := strings.Join(parts, " -> ")
				if !reported[key] {
					reported[key] = true
					first := c.cfg.Workloads[cycle[0]]
					var ps []berth.Pos
					for k, x := range cycle {
						next := cycle[(k+1)%len(cycle)]
						from := c.cfg.Workloads[x]
						for i, dep := range from.Dependencies() {
							if dep == next {
								ps = append(ps, c.cfg.Pos(fmt.Sprintf("workloads.%s.%s.dependsOn.%d", from.Team, from.Name, i)))
							}
						}
					}
					c.errs = append(c.errs, Error{Path: "workloads." + first.Team + "." + first.Name + ".dependsOn",
						Message:   "dependsOn forms a cycle: " + key + "; none of them could ever start",
						Positions: dedupPositions(ps)})
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, id := range ids {
		if color[id] == white {
			visit(id)
		}
	}
}
