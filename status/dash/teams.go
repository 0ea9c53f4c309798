package dash

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
)

// DeviceKey names one GPU of one cluster: its node and index
// (history.Device).
type DeviceKey struct{ Cluster, Device string }

// Right-sizing: a run is hinted when its GPUs were busy less than
// hintBelow percent on average over at least hintMinutes of readings; the
// GPUs that would carry its load are those that keep it under hintTarget.
const (
	hintBelow   = 30.0
	hintTarget  = 70.0
	hintMinutes = 5
)

// nearFraction is how near a quota or budget a team is noticed.
const nearFraction = 0.9

type teamView struct {
	Team      string
	Today     string
	Month     string
	Budget    string // "" for none
	Percent   int    // of the budget, for the bar (capped at 100)
	Over      bool
	Chart     template.HTML
	Notices   []string
	Hints     []string
	DaysTotal string
}

type teamsView struct {
	page
	MonthName string
	Teams     []teamView
}

// Teams writes the teams page: each team's GPU-hours today and this month
// against its monthly budget, a bar per day of the month, a notice where
// its use nears a quota or its budget, and right-sizing hints for its runs
// whose GPUs stay far less busy than what they hold.
func Teams(w io.Writer, d Data) error {
	month := history.MonthStart(d.Now)
	today := history.Day(d.Now)
	v := teamsView{page: newPage(d, "teams", "Teams"), MonthName: d.Now.UTC().Format("January 2006")}
	perTeam := map[string]map[string]int64{} // team -> day -> milli-GPU-ms
	names := map[string]bool{}
	for _, u := range d.Usage {
		if u.Day < month || u.Day > today {
			continue
		}
		if perTeam[u.Team] == nil {
			perTeam[u.Team] = map[string]int64{}
		}
		perTeam[u.Team][u.Day] += u.MilliGPUMillis
		names[u.Team] = true
	}
	if d.Config != nil {
		for t := range d.Config.Teams {
			names[t] = true
		}
	}
	notices := quotaNotices(d)
	hints := rightSizing(d)
	_, _, day := d.Now.UTC().Date()
	for _, team := range slices.Sorted(maps.Keys(names)) {
		tv := teamView{Team: team}
		var total int64
		var bars []bar
		for i := 1; i <= day; i++ {
			dd := time.Date(d.Now.UTC().Year(), d.Now.UTC().Month(), i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			v := perTeam[team][dd]
			total += v
			h := history.GPUHours(v)
			bars = append(bars, bar{Label: strconv.Itoa(i), Value: h, Title: dd + ": " + hoursText(h) + " GPU-hours"})
		}
		tv.Today = hoursText(history.GPUHours(perTeam[team][today]))
		tv.Month = hoursText(history.GPUHours(total))
		budget := 0.0
		if d.Config != nil {
			budget = d.Config.Teams[team].GPUHoursPerMonth
		}
		if budget > 0 {
			used := history.GPUHours(total)
			tv.Budget = hoursText(budget)
			tv.Percent = min(100, int(used/budget*100))
			tv.Over = used > budget
			if used >= nearFraction*budget {
				tv.Notices = append(tv.Notices, fmt.Sprintf("%s of its %s GPU-hours for %s are used (%d%%)", tv.Month, tv.Budget, v.MonthName, int(used/budget*100)))
			}
		}
		tv.Chart = barChart("usage-"+team, bars, 0, fmt.Sprintf("GPU-hours of team %s per day of %s", team, v.MonthName))
		tv.Notices = append(tv.Notices, notices[team]...)
		tv.Hints = hints[team]
		v.Teams = append(v.Teams, tv)
	}
	return render(w, "teams", v)
}

// quotaNotices are, per team, its GPU quotas used at 90% of nominal or
// more once the plan's admissions start.
func quotaNotices(d Data) map[string][]string {
	out := map[string][]string{}
	for _, c := range sortedClusters(d.Clusters) {
		if c.Plan == nil {
			continue
		}
		for _, q := range c.Plan.Quota {
			if q.Resource != berth.ResourceGPU || q.Nominal <= 0 || float64(q.UsedAfter) < nearFraction*float64(q.Nominal) {
				continue
			}
			out[q.Team] = append(out[q.Team], fmt.Sprintf("uses %s of its %s nominal %s GPUs on %s (%d%%)%s",
				berth.FormatAmount(q.Resource, q.UsedAfter), berth.FormatAmount(q.Resource, q.Nominal), q.Flavor, c.Name, q.UsedAfter*100/q.Nominal, borrowedText(q.BorrowedAfter)))
		}
	}
	return out
}

func borrowedText(n int64) string {
	if n <= 0 {
		return ""
	}
	return ", " + berth.FormatAmount(berth.ResourceGPU, n) + " borrowed from its cohort"
}

// rightSizing is, per team, a hint for each running run whose whole GPUs
// were on average less than hintBelow percent busy over the readings kept
// for the last hour: how busy, and how few GPUs would carry that load.
func rightSizing(d Data) map[string][]string {
	out := map[string][]string{}
	since := d.Now.Add(-time.Hour)
	for _, c := range sortedClusters(d.Clusters) {
		for _, r := range c.Runs {
			if r.Phase != reconcile.PhaseRunning {
				continue
			}
			held, sum, peak, minutes := 0, 0.0, 0.0, 0
			perMinute := map[time.Time]float64{}
			for _, p := range r.Placements {
				for _, g := range p.GPUs {
					held++
					for _, pt := range d.Series[DeviceKey{c.Name, history.Device(p.Node, g)}] {
						if pt.Time.Before(since) || pt.Utilization < 0 {
							continue
						}
						sum += pt.Utilization
						perMinute[pt.Time] += pt.Utilization
					}
				}
			}
			for _, v := range perMinute {
				peak = math.Max(peak, v)
				minutes++
			}
			if held == 0 || minutes < hintMinutes {
				continue
			}
			mean := sum / float64(minutes) / float64(held) // percent of each GPU
			need := max(1, int(math.Ceil(mean*float64(held)/hintTarget)))
			if mean >= hintBelow || need >= held {
				continue
			}
			out[r.Workload.Team()] = append(out[r.Workload.Team()], fmt.Sprintf(
				"%s holds %d GPUs on %s; over the last %d minutes they were %.0f%% busy on average (all together at most %.0f%% of one GPU): %d GPU%s would carry that load under %.0f%% busy",
				r.Key(), held, c.Name, minutes, mean, peak, need, plural(need), hintTarget))
		}
	}
	for t := range out {
		slices.Sort(out[t])
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
