package dash

import (
	"cmp"
	"io"
	"slices"
	"strconv"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/status"
)

// quotaRow is one team's use of one resource of one flavor.
type quotaRow struct {
	Flavor, Resource               string
	Nominal, Limit, Used, Borrowed string
	Percent                        int // used of nominal, for the bar (capped at 100)
	Over                           bool
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
			cq.Cohorts = cohorts(c.Plan.Quota, d.cohort)
			cq.Pending = pending(c.Plan.Decisions)
			if n := len(cq.Pending); n > MaxPending {
				cq.Pending, cq.More = cq.Pending[:MaxPending], n-MaxPending
				cq.MoreHref = Query{Cluster: c.Name, State: "queued"}.href(1)
			}
		}
		v.Clusters = append(v.Clusters, cq)
	}
	return render(w, "queues", v)
}

func cohorts(quota []berth.QuotaUse, cohortOf func(team string) string) []cohortView {
	byCohort := map[string]map[string][]quotaRow{}
	for _, q := range quota {
		co := cohortOf(q.Team)
		if byCohort[co] == nil {
			byCohort[co] = map[string][]quotaRow{}
		}
		r := quotaRow{Flavor: q.Flavor, Resource: string(q.Resource), Nominal: berth.FormatAmount(q.Resource, q.Nominal),
			Used: berth.FormatAmount(q.Resource, q.UsedAfter), Borrowed: berth.FormatAmount(q.Resource, q.BorrowedAfter), Limit: "none"}
		if q.BorrowingLimit != nil {
			r.Limit = berth.FormatAmount(q.Resource, *q.BorrowingLimit)
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
	for _, co := range sortedKeys(byCohort) {
		cv := cohortView{Name: co}
		for _, t := range sortedKeys(byCohort[co]) {
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

func pending(ds []berth.Decision) []pendingRow {
	var queued []*berth.Decision
	for i := range ds {
		if ds[i].Action == berth.ActionQueue {
			queued = append(queued, &ds[i])
		}
	}
	slices.SortStableFunc(queued, func(a, b *berth.Decision) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), cmp.Compare(a.Workload, b.Workload))
	})
	var out []pendingRow
	for _, d := range queued {
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
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func noCohort(c cohortView) int {
	if c.Name == "" {
		return 1
	}
	return 0
}
