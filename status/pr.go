package status

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// PullRequest identifies a pull request and the two commits it compares.
type PullRequest struct {
	Repo    string // "owner/name"
	Number  int
	Author  string // login, no @
	HeadSHA string
	BaseSHA string
	BaseRef string // the branch it merges into
	// Fork is true when the head comes from another repository: it is
	// planned, and nothing from it is ever applied.
	Fork bool
}

// PlanInput is what one cluster's plan comment and status are made of.
type PlanInput struct {
	PR      PullRequest
	Cluster string
	// Base is the base revision's configuration (nil when it does not
	// validate) and BasePlan its plan on the same observed state (nil when
	// Base is nil or does not have the cluster): what the pull request is
	// compared with.
	Base     *berth.Config
	BasePlan *berth.Plan
	// Head is the pull request's configuration and HeadPlan its plan.
	Head     *berth.Config
	HeadPlan *berth.Plan
	// Err is set when the cluster could not be planned: berth or the
	// cluster failed (a cluster that did not answer, a snapshot missing).
	Err error
}

// WorkloadChange is one workload the pull request adds, edits or removes,
// with the spec-level change a reviewer reads first.
type WorkloadChange struct {
	ID berth.WorkloadID
	// Change is "added", "changed" or "removed".
	Change string
	// Lines say what changed: "gpus 8 -> 16", "maxDuration 24h -> 72h",
	// "image tag 2.3 -> 2.4", "env API_KEY changed" (env values are never
	// shown: they may be secret).
	Lines []string
	Pos   berth.Pos
	// Base and Head are the workload as berth reads it (defaults applied,
	// env values redacted), for the folded object diff.
	Diff []string
}

// ChangedWorkloads compares the workloads of two configurations, sorted by
// ID. base may be nil (everything is added). Where both were loaded
// (Config.Packages), only the workloads of the packages whose digest
// differs are compared: every other workload is the same in both, field
// for field, so a pull request on a 50,000-workload repository compares
// the few its packages define instead of marshalling all of them twice.
func ChangedWorkloads(base, head *berth.Config) []WorkloadChange {
	if base == nil {
		base = &berth.Config{}
	}
	var out []WorkloadChange
	for _, id := range head.MayDiffer(base) {
		hw, inHead := head.Workloads[id]
		bw, inBase := base.Workloads[id]
		switch {
		case inHead && !inBase:
			out = append(out, WorkloadChange{ID: id, Change: "added", Lines: []string{"new " + string(hw.Kind) + ": " + asks(hw)},
				Pos: hw.Pos, Diff: objectDiff(nil, &hw)})
		case inBase && !inHead:
			out = append(out, WorkloadChange{ID: id, Change: "removed", Lines: []string{"removed: a run of it stops"},
				Pos: bw.Pos, Diff: objectDiff(&bw, nil)})
		case inHead && !sameWorkload(bw, hw):
			out = append(out, WorkloadChange{ID: id, Change: "changed", Lines: specChanges(base, head, bw, hw), Pos: hw.Pos,
				Diff: objectDiff(&bw, &hw)})
		}
	}
	return out
}

// MaxObjectDiffs bounds the workloads whose object diff a comment shows:
// past it, the pull request's own diff says more than a comment can.
const MaxObjectDiffs = 25

// PlanView is one cluster's plan for a pull request, ready to render.
type PlanView struct {
	PR      PullRequest
	Cluster string
	Time    time.Time
	Err     error
	BaseOK  bool // the base validated and has the cluster
	Changes []WorkloadChange
	// Diffs are the object diffs shown (at most MaxObjectDiffs); MoreDiffs
	// counts the rest.
	Diffs     []WorkloadChange
	MoreDiffs int
	Rows      []DecisionRow // the pull request's workloads on this cluster
	Quota     []QuotaRow
	Blast     Blast
	GPUHours  []GPUHoursRow
	Budgets   []BudgetRow
	// Counts of the pull request's workloads by action, for the headline.
	Counts map[berth.Action]int
	// Total is the number of decisions on the cluster.
	Total int
}

// DecisionRow is one decision about one of the pull request's workloads.
type DecisionRow struct {
	Decision berth.Decision
	// Change is "added", "changed", "removed", or "" for a workload the
	// pull request does not touch.
	Change string
	Text   string // what happens, in a sentence
	Pos    berth.Pos
	Hint   string
	// Mounts is what the run mounts (MountsText), empty for none.
	Mounts string
}

// QuotaRow is one team's use of one resource of one flavor, without and
// with the pull request.
type QuotaRow struct {
	Team, Flavor string
	Resource     berth.Resource
	Before       string // "3 of 8", or "-" when the base has no such quota
	After        string // "11 of 8 (borrowed 3)", or "-"
	Changed      bool
}

// Blast is what a pull request does to workloads it does not touch: the
// blast radius of a quota, cohort or policy change, or of a large job.
type Blast struct {
	// OverQuota: teams whose running workloads would be above their quota
	// plus borrowing limit.
	OverQuota []string
	// Unadmittable: workloads that could run or wait before and would be
	// rejected after.
	Unadmittable []string
	// Preempted: running workloads the change would stop.
	Preempted []string
	// Displaced: other workloads whose decision changes (start later,
	// start now).
	Displaced []string
	// Exposed: teams newly borrowing, whose borrowed runs may be preempted
	// when the lenders reclaim their quota.
	Exposed []string
}

// Empty reports whether nothing outside the pull request is affected.
func (b Blast) Empty() bool {
	return len(b.OverQuota)+len(b.Unadmittable)+len(b.Preempted)+len(b.Displaced)+len(b.Exposed) == 0
}

// GPUHoursRow is what one run-once workload of the pull request asks for.
type GPUHoursRow struct {
	ID          berth.WorkloadID
	GPUs        string
	MaxDuration string
	GPUHours    float64
	Before      float64 // the base's GPU-hours for the workload (0 when new)
}

// BudgetRow is a team's GPU-hours asked by the pull request against its
// budget (the base's budget: a pull request cannot raise its own).
type BudgetRow struct {
	Team     string
	GPUHours float64
	Budget   float64 // 0: no budget
	Over     bool
}

// NewPlanView compares the head plan with the base plan for one cluster.
func NewPlanView(in PlanInput) PlanView {
	v := PlanView{PR: in.PR, Cluster: in.Cluster, Err: in.Err, Counts: map[berth.Action]int{}}
	if in.Head == nil || in.HeadPlan == nil {
		return v
	}
	v.Time = in.HeadPlan.Time
	v.Total = len(in.HeadPlan.Decisions)
	v.BaseOK = in.Base != nil && in.BasePlan != nil

	// 1. The pull request's workloads on this cluster.
	all := ChangedWorkloads(in.Base, in.Head)
	touched := map[berth.WorkloadID]WorkloadChange{}
	for _, c := range all {
		cfg := in.Head
		w, ok := cfg.Workloads[c.ID]
		if !ok {
			cfg, w = in.Base, in.Base.Workloads[c.ID]
		}
		if schedule.ClusterOf(cfg, w) != in.Cluster {
			continue
		}
		v.Changes = append(v.Changes, c)
		touched[c.ID] = c
	}

	v.Diffs = v.Changes
	if len(v.Diffs) > MaxObjectDiffs {
		v.Diffs, v.MoreDiffs = v.Diffs[:MaxObjectDiffs], len(v.Diffs)-MaxObjectDiffs
	}

	// 2. Their decisions, as people read them.
	for _, dp := range SortForPeople(in.HeadPlan.Decisions) {
		d := *dp
		c, ok := touched[d.Workload]
		if !ok {
			continue
		}
		row := DecisionRow{Decision: d, Change: c.Change, Text: DecisionText(d, v.Time), Pos: c.Pos, Hint: Hint(in.Head, d)}
		if showsMounts(d) {
			row.Mounts = MountsText(d.Mounts)
		}
		v.Rows = append(v.Rows, row)
		v.Counts[d.Action]++
	}

	// 3. The blast radius, against the base's plan.
	if v.BaseOK {
		v.Blast = blastRadius(in, touched)
	}

	// 4. Quota of the teams involved.
	v.Quota = quotaRows(in, touched, v.Blast)

	// 5. GPU-hours asked for, against the teams' budgets.
	v.GPUHours, v.Budgets = gpuHours(in, v.Changes)
	return v
}

// DecisionText is what happens to a run, in a sentence: "admitted now on
// h100: 2 workers on 2 nodes (...)", "queued at position 3: ...; estimated
// start 2026-11-21 11:00 UTC (in 2h)".
func DecisionText(d berth.Decision, now time.Time) string {
	switch d.Action {
	case berth.ActionAdmit:
		return "admitted now on " + Detail(d) + scaleRoom(d)
	case berth.ActionPreempt:
		return "admitted now on " + Detail(d) + " by preempting " + VictimsText(d.Victims) + scaleRoom(d)
	case berth.ActionQueue:
		s := fmt.Sprintf("queued at position %d: %s", d.Position, reasonText(d.Reason))
		if d.EstimatedStart != nil {
			s += fmt.Sprintf("; estimated start %s (%s)", FormatTime(*d.EstimatedStart), WaitText(*d.EstimatedStart, now))
		} else {
			s += "; no estimated start (it waits for runs without a maxDuration)"
		}
		return s
	case berth.ActionReject:
		return "rejected: " + reasonText(d.Reason)
	case berth.ActionWait:
		return "waiting: " + reasonText(d.Reason)
	case berth.ActionKeep:
		return "keeps running on " + Detail(d) + scaleRoom(d)
	case berth.ActionPreempted:
		return preemptedBy(d, "would be preempted") + ": " + reasonText(d.Reason)
	case berth.ActionStop:
		return "stops: " + reasonText(d.Reason)
	case berth.ActionDone:
		return "not run again: " + Detail(d)
	}
	return string(d.Action)
}

// scaleRoom is how far an autoscaled service may scale, after its
// decision: "; may scale to 4 replicas: 4 GPUs, within nominal".
func scaleRoom(d berth.Decision) string {
	if d.ScaleRoom == "" {
		return ""
	}
	return "; " + d.ScaleRoom
}

// RunSuffix names a run after its workload where it is not the first
// ("run 2", a periodic job's tick), and a replica of an autoscaled service
// above its minimum by its number ("replica 3"); empty for run "1".
func RunSuffix(runID string) string {
	if svc, n, ok := berth.ParseScaleRunID(runID); ok {
		s := fmt.Sprintf(" replica %d", n)
		if svc != "1" {
			s += " of run " + svc
		}
		return s
	}
	if runID == "1" {
		return ""
	}
	return " run " + runID
}

// VictimsText names victims with their priorities, those that share a
// reason together, each reason once: "nlp/a (low (10)) and nlp/b (low
// (10)): outranked within team nlp by normal (100); vision/c (normal
// (100)): its team borrowed h100 quota that team nlp takes back".
func VictimsText(vs []berth.Victim) string {
	var order []string
	names := map[string][]string{}
	for _, v := range vs {
		msg := v.Reason.Message
		if _, ok := names[msg]; !ok {
			order = append(order, msg)
		}
		names[msg] = append(names[msg], fmt.Sprintf("%s (%s)", v.Workload, berth.PriorityText(v.PriorityTier, v.Priority)))
	}
	groups := make([]string, len(order))
	for i, msg := range order {
		groups[i] = policy.JoinAnd(names[msg]) + ": " + msg
	}
	return strings.Join(groups, "; ")
}

// WaitText is how long until t, from now: "in 2h 10m", "now".
func WaitText(t, now time.Time) string {
	d := t.Sub(now).Round(time.Minute)
	if d <= 0 {
		return "now"
	}
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	mins := int(d % time.Hour / time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, fmt.Sprintf("%dd", days))
	}
	if hours > 0 {
		parts = append(parts, fmt.Sprintf("%dh", hours))
	}
	if mins > 0 && days == 0 {
		parts = append(parts, fmt.Sprintf("%dm", mins))
	}
	return "in " + strings.Join(parts, " ")
}

func blastRadius(in PlanInput, touched map[berth.WorkloadID]WorkloadChange) Blast {
	var b Blast
	base := map[berth.RunKey]berth.Decision{}
	for _, d := range in.BasePlan.Decisions {
		base[d.Key()] = *d
	}
	for _, d := range in.HeadPlan.Decisions {
		if _, ok := touched[d.Workload]; ok {
			continue
		}
		bd, ok := base[d.Key()]
		if !ok || bd.Action == d.Action {
			continue
		}
		id := "`" + string(d.Workload) + "`"
		switch {
		case d.Action == berth.ActionReject:
			b.Unadmittable = append(b.Unadmittable, id+": "+reasonText(d.Reason))
		case d.Action == berth.ActionPreempted:
			by := " by `" + string(d.PreemptedBy) + "`"
			if d.PreemptedBy == "" {
				by = "" // its node was lost
			}
			b.Preempted = append(b.Preempted, id+" (team "+d.Team+")"+by+": "+reasonText(d.Reason))
		case d.Action == berth.ActionStop && bd.Action == berth.ActionKeep:
			b.Preempted = append(b.Preempted, id+" (team "+d.Team+") stops: "+reasonText(d.Reason))
		case bd.Starts() && !d.Starts():
			b.Displaced = append(b.Displaced, id+" would no longer start now: "+DecisionText(*d, in.HeadPlan.Time))
		case !bd.Starts() && d.Starts():
			b.Displaced = append(b.Displaced, id+" would start now instead of "+ActionPhrase(bd.Action))
		}
	}
	baseQuota := map[string]berth.QuotaUse{}
	for _, q := range in.BasePlan.Quota {
		baseQuota[q.Team+"/"+q.Flavor+"/"+string(q.Resource)] = q
	}
	for _, q := range in.HeadPlan.Quota {
		bq, had := baseQuota[q.Team+"/"+q.Flavor+"/"+string(q.Resource)]
		f := func(n int64) string { return berth.FormatAmount(q.Resource, n) }
		if q.BorrowingLimit != nil && q.UsedBefore > q.Nominal+*q.BorrowingLimit &&
			!(had && bq.BorrowingLimit != nil && bq.UsedBefore > bq.Nominal+*bq.BorrowingLimit) {
			var runs []string
			for _, d := range in.HeadPlan.Decisions {
				if d.Team == q.Team && d.Flavor == q.Flavor && (d.Action == berth.ActionKeep || d.Action == berth.ActionPreempted) {
					runs = append(runs, "`"+string(d.Workload)+"`")
				}
			}
			b.OverQuota = append(b.OverQuota, fmt.Sprintf("team %s runs %s, above its nominal %s plus borrowing limit %s (%s)",
				q.Team, amountText(q.Resource, q.Flavor, q.UsedBefore), f(q.Nominal), f(*q.BorrowingLimit), policy.JoinAnd(policy.Abbrev(runs, 5))))
		}
		if q.BorrowedAfter > 0 && (!had || bq.BorrowedAfter == 0) {
			b.Exposed = append(b.Exposed, fmt.Sprintf("team %s would borrow %s from its cohort: runs above its nominal %s can be preempted when lenders reclaim",
				q.Team, amountText(q.Resource, q.Flavor, q.BorrowedAfter), f(q.Nominal)))
		}
	}
	for _, l := range [][]string{b.OverQuota, b.Unadmittable, b.Preempted, b.Displaced, b.Exposed} {
		slices.Sort(l)
	}
	return b
}

// amountText is "8 h100 GPUs", "16 cpu of cpu", "64Gi memory of h100".
func amountText(r berth.Resource, flavor string, n int64) string {
	if r == berth.ResourceGPU {
		g := berth.FormatAmount(r, n)
		if g == "1" {
			return "1 " + flavor + " GPU"
		}
		return g + " " + flavor + " GPUs"
	}
	return berth.FormatAmount(r, n) + " " + string(r) + " of " + flavor
}

func quotaRows(in PlanInput, touched map[berth.WorkloadID]WorkloadChange, blast Blast) []QuotaRow {
	teams := map[string]bool{}
	for id := range touched {
		teams[id.Team()] = true
	}
	if in.Base != nil {
		for _, name := range in.Head.TeamNames() {
			if bt, ok := in.Base.Teams[name]; !ok || !sameJSON(bt, in.Head.Teams[name]) {
				teams[name] = true
			}
		}
	}
	type key struct {
		team, flavor string
		r            berth.Resource
	}
	base := map[key]berth.QuotaUse{}
	if in.BasePlan != nil {
		for _, q := range in.BasePlan.Quota {
			base[key{q.Team, q.Flavor, q.Resource}] = q
		}
	}
	var out []QuotaRow
	seen := map[key]bool{}
	for _, q := range in.HeadPlan.Quota {
		k := key{q.Team, q.Flavor, q.Resource}
		seen[k] = true
		bq, had := base[k]
		changed := !had || bq.Nominal != q.Nominal || bq.UsedAfter != q.UsedAfter || bq.BorrowedAfter != q.BorrowedAfter ||
			!sameLimit(bq.BorrowingLimit, q.BorrowingLimit)
		if !teams[q.Team] || (q.Resource != berth.ResourceGPU && !changed) {
			continue
		}
		row := QuotaRow{Team: q.Team, Flavor: q.Flavor, Resource: q.Resource, Before: "-", After: useText(q, false), Changed: changed}
		if had {
			row.Before = useText(bq, false)
		}
		out = append(out, row)
	}
	for k, bq := range base {
		if !seen[k] && teams[k.team] {
			out = append(out, QuotaRow{Team: k.team, Flavor: k.flavor, Resource: k.r, Before: useText(bq, false), After: "-", Changed: true})
		}
	}
	slices.SortStableFunc(out, func(a, b QuotaRow) int {
		return cmp.Or(
			cmp.Compare(a.Team, b.Team),
			cmp.Compare(a.Flavor, b.Flavor),
			cmp.Compare(resourceOrder(a.Resource), resourceOrder(b.Resource)),
		)
	})
	return out
}

func resourceOrder(r berth.Resource) int {
	for i, x := range berth.ResourceNames {
		if x == r {
			return i
		}
	}
	return len(berth.ResourceNames)
}

func sameLimit(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// useText is "11 of 8 (borrowed 3)": use after the plan of a nominal quota.
func useText(q berth.QuotaUse, _ bool) string {
	f := func(n int64) string { return berth.FormatAmount(q.Resource, n) }
	s := f(q.UsedAfter) + " of " + f(q.Nominal)
	if q.BorrowedAfter > 0 {
		s += " (borrowed " + f(q.BorrowedAfter) + ")"
	}
	if q.BorrowingLimit != nil && *q.BorrowingLimit > 0 {
		s += ", may borrow " + f(*q.BorrowingLimit)
	}
	return s
}

func gpuHours(in PlanInput, changes []WorkloadChange) ([]GPUHoursRow, []BudgetRow) {
	var rows []GPUHoursRow
	perTeam := map[string]float64{}
	for _, c := range changes {
		w, ok := in.Head.Workloads[c.ID]
		if !ok || !w.Kind.RunsOnce() || !w.Resources.UsesGPU() {
			continue
		}
		gpus, hours := policy.WorkloadSize(w)
		row := GPUHoursRow{ID: c.ID, GPUs: policy.FormatNumber(gpus), MaxDuration: "-", GPUHours: hours}
		if w.MaxDuration > 0 {
			row.MaxDuration = w.MaxDuration.String()
		}
		if in.Base != nil {
			if bw, ok := in.Base.Workloads[c.ID]; ok {
				_, row.Before = policy.WorkloadSize(bw)
			}
		}
		rows = append(rows, row)
		perTeam[w.Team] += hours
	}
	var budgets []BudgetRow
	for _, team := range slices.Sorted(maps.Keys(perTeam)) {
		b := BudgetRow{Team: team, GPUHours: perTeam[team]}
		// The base's budget: a pull request cannot raise its own.
		if in.Base != nil {
			if t, ok := in.Base.Teams[team]; ok {
				b.Budget = t.GPUHoursBudget
			}
		} else if t, ok := in.Head.Teams[team]; ok {
			b.Budget = t.GPUHoursBudget
		}
		b.Over = b.Budget > 0 && b.GPUHours > b.Budget
		budgets = append(budgets, b)
	}
	return rows, budgets
}
