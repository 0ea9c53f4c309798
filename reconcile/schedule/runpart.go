package schedule

import (
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// runPart is one role of a run of a workload with roles, beyond its first
// (which the run's own fields hold).
type runPart struct {
	role       string
	flavor     string
	shape      shape
	res        berth.Resources
	placements []berth.Placement
	demand     policy.Demand
}

// setRoles fills a running run of a workload with roles from its
// snapshot: the first role in the run's own fields, the others in more.
func setRoles(r *run, roles []berth.RolePlacement) {
	first := roles[0]
	r.role, r.flavor, r.shape, r.placements = first.Role, first.Flavor, shapeOf(first.Resources), first.Placements
	r.demand = demandOf(first.Resources).Scale(int64(len(first.Placements)))
	r.res = first.Resources
	r.more = nil
	for _, x := range roles[1:] {
		r.more = append(r.more, runPart{role: x.Role, flavor: x.Flavor, shape: shapeOf(x.Resources), res: x.Resources,
			placements: x.Placements, demand: demandOf(x.Resources).Scale(int64(len(x.Placements)))})
	}
}

// chargeRun charges every part of a run to the nodes and the quota.
func chargeRun(c *cluster, q *policy.Quotas, r *run) {
	c.charge(r.shape, r.placements)
	q.Add(r.team, r.flavor, r.demand)
	for _, p := range r.more {
		c.charge(p.shape, p.placements)
		q.Add(r.team, p.flavor, p.demand)
	}
}

// chargeQuota charges every part of a run to the quota alone.
func chargeQuota(q *policy.Quotas, r *run) {
	q.Add(r.team, r.flavor, r.demand)
	for _, p := range r.more {
		q.Add(r.team, p.flavor, p.demand)
	}
}

// releaseQuota frees every part of a run from the quota alone.
func releaseQuota(q *policy.Quotas, r *run) {
	q.Remove(r.team, r.flavor, r.demand)
	for _, p := range r.more {
		q.Remove(r.team, p.flavor, p.demand)
	}
}

// releaseRun frees every part of a run from the nodes and the quota.
func releaseRun(c *cluster, q *policy.Quotas, r *run) {
	c.release(r.shape, r.placements)
	q.Remove(r.team, r.flavor, r.demand)
	for _, p := range r.more {
		c.release(p.shape, p.placements)
		q.Remove(r.team, p.flavor, p.demand)
	}
}

// releaseNodes frees every part of a run from the nodes alone.
func releaseNodes(c *cluster, r *run) {
	c.release(r.shape, r.placements)
	for _, p := range r.more {
		c.release(p.shape, p.placements)
	}
}

// frees reports whether stopping the run frees quota that a request of
// team on flavor f is short of (need): a part of it takes one of those
// resources from the flavor the request would take it from. A name that
// joins one flavor per resource group takes each resource from one of
// them (Kueue looks for victims per flavor and resource).
func (r *run) frees(q *policy.Quotas, team, f string, need [policy.NumResources]bool) bool {
	part := func(flavor string, demand policy.Demand) bool {
		for i, res := range berth.ResourceNames {
			if !need[i] || demand[i] == 0 {
				continue
			}
			want := q.FlavorOf(team, f, res)
			if want != "" && q.FlavorOf(r.team, flavor, res) == want {
				return true
			}
		}
		return false
	}
	if part(r.flavor, r.demand) {
		return true
	}
	for _, p := range r.more {
		if part(p.flavor, p.demand) {
			return true
		}
	}
	return false
}

// flavors lists the flavors the run's parts take, each once (each of
// those a name joins).
func (r *run) flavors() []string {
	var out []string
	add := func(name string) {
		if !strings.Contains(name, berth.FlavorSeparator) {
			if !contains(out, name) {
				out = append(out, name)
			}
			return
		}
		for _, f := range berth.SplitFlavors(name) {
			if !contains(out, f) {
				out = append(out, f)
			}
		}
	}
	add(r.flavor)
	for _, p := range r.more {
		add(p.flavor)
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// gpuMilli is the GPU demand of the whole run.
func (r *run) gpuMilli() int64 {
	n := r.demand[0]
	for _, p := range r.more {
		n += p.demand[0]
	}
	return n
}

// rolePlacements describes a run of a workload with roles for a
// decision: each role, and every placement in role order.
func (r *run) rolePlacements() ([]berth.RolePlacement, []berth.Placement) {
	roles := []berth.RolePlacement{{Role: r.role, Flavor: r.flavor, Resources: r.res, Placements: r.placements}}
	for _, p := range r.more {
		roles = append(roles, berth.RolePlacement{Role: p.role, Flavor: p.flavor, Resources: p.res, Placements: p.placements})
	}
	var all []berth.Placement
	for _, x := range roles {
		all = append(all, x.Placements...)
	}
	return roles, all
}
