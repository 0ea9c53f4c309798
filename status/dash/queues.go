package dash

import (
	"cmp"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/status"
)

// quotaRow is one team's use of one resource of one flavor.
type quotaRow struct {
	Flavor, Resource               string
	Nominal, Limit, Used, Borrowed string
	// Lent is the team's share of what its cohort's teams borrow of this
	// flavor and resource: the cohort's borrowing, divided among the
	// teams that leave quota unused in proportion to what each may lend
	// (its unused nominal, within its lending limit); "-" out of a cohort.
	Lent    string
	Percent int // used of nominal, for the bar (capped at 100)
	Over    bool
}

type teamQuota struct {
	Team string
	Rows []quotaRow
}

type cohortView struct {
	Name  string // "" for teams in no cohort
	Teams []teamQuota
}

type pendingRow struct {
	Position  string
	Workload  string
	Href      string
	Team      string
	GPUs      string
	Reason    string
	Estimated string
	Since     string
}

type clusterQueues struct {
	Name    string
	Error   string
	Cohorts []cohortView
	Pending []pendingRow
	// More is how many more wait than Pending lists; MoreHref the
	// workloads page of every queued run of the cluster.
	More     int
	MoreHref string
}

// MaxPending is how many waiting runs the queues page lists per cluster,
// the first in line; the workloads page lists them all.
const MaxPending = 100

type queuesView struct {
	page
	Clusters []clusterQueues
}

// Queues writes the queues page: for each cluster, every team's quota
// per flavor (nominal, borrowing limit, used, borrowed) grouped by cohort,
// and the workloads waiting in line in their order with their reasons.
func Queues(w io.Writer, d Data) error {
	v := queuesView{page: newPage(d, "queues", "Queues")}
	for _, c := range sortedClusters(d.Clusters) {
		cq := clusterQueues{Name: c.Name, Error: c.Error}
		if c.Plan != nil {
			cq.Cohorts = cohorts(c.Plan.Quota, d.cohort, d.lendingLimit)
			var waiting int
			cq.Pending, waiting = pending(c.Plan.Decisions, MaxPending)
			if cq.More = waiting - len(cq.Pending); cq.More > 0 {
				cq.MoreHref = Query{Cluster: c.Name, State: "queued"}.href(1)
			}
		}
		v.Clusters = append(v.Clusters, cq)
	}
	return render(w, "queues", v)
}

// lendingLimit is a team's lending limit of a resource of a flavor, in
// the plan's units (false: none).
func (d Data) lendingLimit(team, flavor string, r berth.Resource) (int64, bool) {
	if d.Config == nil {
		return 0, false
	}
	fq, ok := d.Config.Teams[team].FlavorQuota(flavor)
	if !ok {
		return 0, false
	}
	rq := fq.Resource(r)
	if rq == nil || rq.LendingLimit == nil {
		return 0, false
	}
	return berth.Amount(r, *rq.LendingLimit), true
}

// lent divides each cohort's borrowing of a flavor and resource among its
// teams that leave quota unused, in proportion to what each may lend: the
// amount lent by each team's quota row (by its index in quota).
func lent(quota []berth.QuotaUse, cohortOf func(team string) string, limit func(team, flavor string, r berth.Resource) (int64, bool)) map[int]int64 {
	type cell struct {
		cohort, flavor string
		r              berth.Resource
	}
	borrowed := map[cell]int64{}
	lendable := map[cell]int64{}
	each := map[int]int64{}
	for i, q := range quota {
		co := cohortOf(q.Team)
		if co == "" {
			continue
		}
		c := cell{co, q.Flavor, q.Resource}
		borrowed[c] += q.BorrowedAfter
		l := max(0, q.Nominal-q.UsedAfter)
		if lim, ok := limit(q.Team, q.Flavor, q.Resource); ok {
			l = min(l, lim)
		}
		each[i] = l
		lendable[c] += l
	}
	out := map[int]int64{}
	for i, q := range quota {
		co := cohortOf(q.Team)
		if co == "" {
			continue
		}
		c := cell{co, q.Flavor, q.Resource}
		if lendable[c] > 0 {
			out[i] = min(borrowed[c], lendable[c]) * each[i] / lendable[c]
		} else {
			out[i] = 0
		}
	}
	return out
}

func cohorts(quota []berth.QuotaUse, cohortOf func(team string) string, limit func(team, flavor string, r berth.Resource) (int64, bool)) []cohortView {
	byCohort := map[string]map[string][]quotaRow{}
	lentBy := lent(quota, cohortOf, limit)
	for i, q := range quota {
		co := cohortOf(q.Team)
		if byCohort[co] == nil {
			byCohort[co] = map[string][]quotaRow{}
		}
		r := quotaRow{Flavor: q.Flavor, Resource: string(q.Resource), Nominal: berth.FormatAmount(q.Resource, q.Nominal),
			Used: berth.FormatAmount(q.Resource, q.UsedAfter), Borrowed: berth.FormatAmount(q.Resource, q.BorrowedAfter), Limit: "none"}
		if q.BorrowingLimit != nil {
			r.Limit = berth.FormatAmount(q.Resource, *q.BorrowingLimit)
		}
		r.Lent = "-"
		if n, ok := lentBy[i]; ok {
			r.Lent = berth.FormatAmount(q.Resource, n)
		}
		if q.Nominal > 0 {
			r.Percent = int(min(100, q.UsedAfter*100/q.Nominal))
		} else if q.UsedAfter > 0 {
			r.Percent = 100
		}
		r.Over = q.UsedAfter > q.Nominal
		byCohort[co][q.Team] = append(byCohort[co][q.Team], r)
	}
	var out []cohortView
	for _, co := range slices.Sorted(maps.Keys(byCohort)) {
		cv := cohortView{Name: co}
		for _, t := range slices.Sorted(maps.Keys(byCohort[co])) {
			rows := byCohort[co][t]
			slices.SortStableFunc(rows, func(a, b quotaRow) int {
				return cmp.Or(cmp.Compare(a.Flavor, b.Flavor), cmp.Compare(resourceOrder(a.Resource), resourceOrder(b.Resource)))
			})
			cv.Teams = append(cv.Teams, teamQuota{Team: t, Rows: rows})
		}
		out = append(out, cv)
	}
	// Teams in no cohort come last.
	slices.SortStableFunc(out, func(a, b cohortView) int { return cmp.Compare(noCohort(a), noCohort(b)) })
	return out
}

func resourceOrder(r string) int {
	for i, n := range berth.ResourceNames {
		if string(n) == r {
			return i
		}
	}
	return len(berth.ResourceNames)
}

// pending is the first limit runs in line, and how many wait in all.
func pending(ds []*berth.Decision, limit int) ([]pendingRow, int) {
	var queued []*berth.Decision
	for _, d := range ds {
		if d.Action == berth.ActionQueue {
			queued = append(queued, d)
		}
	}
	slices.SortStableFunc(queued, func(a, b *berth.Decision) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), cmp.Compare(a.Workload, b.Workload))
	})
	var out []pendingRow
	for _, d := range queued[:min(limit, len(queued))] {
		r := pendingRow{Position: "-", Workload: string(d.Workload), Href: workloadHref(d.Workload, d.Cluster, d.RunID),
			Team: d.Team, GPUs: status.DecisionGPUs(*d), Estimated: "unknown", Since: timeText(d.Since)}
		if d.Position > 0 {
			r.Position = "#" + strconv.Itoa(d.Position)
		}
		if d.Reason != nil {
			r.Reason = d.Reason.Message
		}
		if d.EstimatedStart != nil {
			r.Estimated = timeText(*d.EstimatedStart)
		}
		out = append(out, r)
	}
	return out, len(queued)
}

func noCohort(c cohortView) int {
	if c.Name == "" {
		return 1
	}
	return 0
}
