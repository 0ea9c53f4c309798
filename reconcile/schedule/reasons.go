package schedule

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// amount names a resource's amount for people: "4 GPUs", "2 1g.10gb
// slices" (on a MIG flavor), "8 cpu", "64Gi memory".
func (st *state) amount(f string, r berth.Resource, n int64) string {
	num, unit := st.amountParts(f, r, n)
	return num + " " + unit
}

func (st *state) amountParts(f string, r berth.Resource, n int64) (string, string) {
	switch r {
	case berth.ResourceGPU:
		word := "GPUs"
		if fi, ok := st.c.flavors[f]; ok && fi.flavor.MIG != "" {
			word = fi.flavor.MIG + " slices"
			if n == wholeGPU {
				word = fi.flavor.MIG + " slice"
			}
		} else if n == wholeGPU {
			word = "GPU"
		}
		return berth.FormatAmount(r, n), word
	case berth.ResourceCPU:
		return berth.FormatAmount(r, n), "cpu"
	default:
		return berth.FormatAmount(r, n), "memory"
	}
}

// quotaReason says why r's demand does not fit its team's quota of flavor
// f now, with the arithmetic: what it asks (N), what the team uses (U) of
// its nominal quota (M), what else bounds it (E: its borrowing limit, what
// the cohort can lend it, less what other teams use of its nominal, or
// nothing without a cohort), and so how much it is short: U + N - (M + E),
// exactly.
//
// The reason depends only on the team, flavor and resource and the three
// amounts asked, used and available, so it is written once for each: a
// plan with thousands of waiting runs of a few sizes writes a few.
func (st *state) quotaReason(r *req, f string, sf policy.Shortfall) *berth.Reason {
	// Of flavors joined from several resource groups, the one whose quota
	// of the resource is short.
	if g := st.quotas.FlavorOf(r.team, f, sf.Resource); g != "" {
		f = g
	}
	key := quotaKey{team: r.team, flavor: f, res: sf.Resource, asked: sf.Asked,
		used: st.quotas.Used(r.team, f, sf.Resource), avail: st.quotas.Available(r.team, f, sf.Resource)}
	if reason, ok := st.quotaReasons[key]; ok {
		return reason
	}
	reason := st.writeQuotaReason(key)
	if st.quotaReasons == nil {
		st.quotaReasons = map[quotaKey]*berth.Reason{}
	}
	st.quotaReasons[key] = reason
	return reason
}

// quotaKey is what a quota reason depends on.
type quotaKey struct {
	team, flavor       string
	res                berth.Resource
	asked, used, avail int64
}

func (st *state) writeQuotaReason(k quotaKey) *berth.Reason {
	team, f, res, asked, used := k.team, k.flavor, k.res, k.asked, k.used
	nominal, _ := st.quotas.Nominal(team, f, res)
	f0 := func(n int64) string { return berth.FormatAmount(res, n) }
	asks := "it asks " + st.amount(f, res, asked)
	short := func(k int64) string { return ", so it is short by " + st.amount(f, res, k) }
	if !st.quotas.InCohort(team) {
		return &berth.Reason{Code: berth.ReasonQuota, Message: fmt.Sprintf(
			"insufficient unused %s quota in team %s: %s; the team uses %s of nominal %s and has no cohort to borrow from%s",
			f, team, asks, f0(used), f0(nominal), short(used+asked-nominal))}
	}
	cohort := st.cfg.Teams[team].Cohort
	// What the cohort adds to the nominal quota, as the quota stands: the
	// team could use nominal + lend in all.
	lend := k.avail + used - nominal
	if limit := st.quotas.BorrowingLimit(team, f, res); limit != policy.Unlimited && limit <= lend {
		return &berth.Reason{Code: berth.ReasonQuota, Message: fmt.Sprintf(
			"team %s is at its %s borrowing limit: %s; the team uses %s of nominal %s + borrowing limit %s%s",
			team, f, asks, f0(used), f0(nominal), f0(limit), short(used+asked-nominal-limit))}
	}
	code, head := berth.ReasonQuota, fmt.Sprintf("insufficient unused %s quota in team %s", f, team)
	if used+asked > nominal {
		code, head = berth.ReasonCohort, fmt.Sprintf("insufficient unused %s quota in team %s and cohort %s", f, team, cohort)
	}
	bound := fmt.Sprintf("the cohort can lend it at most %s", f0(lend))
	if lend < 0 {
		bound = fmt.Sprintf("other teams of cohort %s use %s of it", cohort, f0(-lend))
	}
	return &berth.Reason{Code: code, Message: fmt.Sprintf("%s: %s; the team uses %s of nominal %s and %s%s",
		head, asks, f0(used), f0(nominal), bound, short(used+asked-nominal-lend))}
}

func (st *state) exceedsQuotaMessage(r *req, f string, res berth.Resource, asked, most int64) string {
	if g := st.quotas.FlavorOf(r.team, f, res); g != "" {
		f = g
	}
	nominal, _ := st.quotas.Nominal(r.team, f, res)
	limit := st.quotas.BorrowingLimit(r.team, f, res)
	how := "nominal " + berth.FormatAmount(res, nominal)
	switch {
	case !st.quotas.InCohort(r.team):
		how += ", no cohort to borrow from"
	case limit == policy.Unlimited:
		how += " + what cohort " + st.cfg.Teams[r.team].Cohort + " can lend"
	default:
		how += " + borrowing limit " + berth.FormatAmount(res, limit)
	}
	return fmt.Sprintf("asks for %s of %s; team %s can use at most %s (%s)",
		st.amount(f, res, asked), f, r.team, berth.FormatAmount(res, most), how)
}

func (st *state) noQuotaReason(r *req) *berth.Reason {
	team, ok := st.cfg.Teams[r.team]
	if !ok {
		return &berth.Reason{Code: berth.ReasonNoQuota, Message: fmt.Sprintf("team %s does not exist", r.team)}
	}
	var listed []string
	for _, q := range team.Quotas() {
		listed = append(listed, q.Flavor)
	}
	lists := "it lists no flavor"
	if len(listed) > 0 {
		lists = "it lists " + strings.Join(listed, ", ")
	}
	return &berth.Reason{Code: berth.ReasonNoQuota, Message: fmt.Sprintf(
		"team %s has no quota for a flavor of cluster %s that offers %s (%s)", r.team, st.c.name, wants(r.Workload.Resources), lists)}
}

// wants describes what a workload's resources ask of a flavor.
func wants(r berth.Resources) string {
	switch {
	case r.Flavor != "":
		return "flavor " + r.Flavor
	case r.MIG != "":
		s := "MIG " + r.MIG
		if r.GPUModel != "" {
			s = r.GPUModel + " " + s
		}
		return s
	case r.UsesGPU() && r.GPUModel != "":
		return r.GPUModel + " GPUs"
	case r.UsesGPU():
		return "whole or shared GPUs"
	}
	return "cpu and memory"
}

func (st *state) capacityReason(r *req, fi *flavorInfo, n int) *berth.Reason {
	room := 0
	most := -1
	for _, i := range fi.nodes {
		k := podsFit(st.c.nodes[i], r.shape)
		room += k
		if most < 0 || freeScore(st.c.nodes[i]) > freeScore(st.c.nodes[most]) {
			most = i
		}
	}
	if n > 1 {
		return &berth.Reason{Code: berth.ReasonGang, Message: fmt.Sprintf(
			"%d %s of %s do not fit at once on %s nodes: room for %d now",
			n, r.Workload.Kind.Pods(n), describeShape(r.shape), fi.flavor.Name, min(room, n-1))}
	}
	msg := fmt.Sprintf("no %s node has room for one %s of %s now", fi.flavor.Name, r.Workload.Kind.Pods(1), describeShape(r.shape))
	if most >= 0 {
		msg += fmt.Sprintf(" (most free: %s on %s)", describeFree(st.c.nodes[most]), st.c.nodes[most].name)
	}
	return &berth.Reason{Code: berth.ReasonCapacity, Message: msg}
}

func freeScore(x *node) int64 { return x.freeGPUMilli()*1_000_000 + x.cpuFree }

func describeFree(x *node) string {
	parts := []string{}
	if g := x.freeGPUMilli(); g > 0 || len(x.gpuFree) > 0 {
		parts = append(parts, berth.FormatAmount(berth.ResourceGPU, g)+" GPUs")
	}
	free := 0
	for _, m := range x.mig {
		if !m.used {
			free++
		}
	}
	if len(x.mig) > 0 {
		parts = append(parts, fmt.Sprintf("%d MIG slices", free))
	}
	parts = append(parts, berth.FormatAmount(berth.ResourceCPU, x.cpuFree)+" cpu", berth.FormatAmount(berth.ResourceMemory, x.memFree))
	return strings.Join(parts, ", ")
}

func largestNode(c *cluster, fi *flavorInfo) string {
	best := -1
	for _, i := range fi.nodes {
		x := c.nodes[i]
		if best < 0 || len(x.gpuFree) > len(c.nodes[best].gpuFree) ||
			(len(x.gpuFree) == len(c.nodes[best].gpuFree) && x.cpuCap > c.nodes[best].cpuCap) {
			best = i
		}
	}
	if best < 0 {
		return "nothing"
	}
	x := c.nodes[best]
	return fmt.Sprintf("%d GPUs, %s cpu, %s", len(x.gpuFree), berth.FormatAmount(berth.ResourceCPU, x.cpuCap), berth.FormatAmount(berth.ResourceMemory, x.memCap))
}

func describeShape(s shape) string {
	var parts []string
	switch {
	case s.mig != "":
		parts = append(parts, "MIG "+s.mig)
	case s.milli > 0:
		parts = append(parts, berth.FormatAmount(berth.ResourceGPU, int64(s.milli))+" of a GPU")
	case s.gpus == 1:
		parts = append(parts, "1 GPU")
	case s.gpus > 1:
		parts = append(parts, fmt.Sprintf("%d GPUs", s.gpus))
	}
	parts = append(parts, berth.FormatAmount(berth.ResourceCPU, s.cpu)+" cpu", berth.FormatAmount(berth.ResourceMemory, s.mem))
	return strings.Join(parts, ", ")
}

func describeFlavorNodes(f berth.Flavor) string {
	var parts []string
	if f.GPUModel != "" {
		s := "GPU model " + f.GPUModel
		if f.MIG != "" {
			s += " with MIG " + f.MIG + " slices"
		}
		parts = append(parts, s)
	}
	keys := make([]string, 0, len(f.NodeLabels))
	for k := range f.NodeLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+f.NodeLabels[k])
	}
	if len(parts) == 0 {
		return "any node"
	}
	return strings.Join(parts, ", ")
}
