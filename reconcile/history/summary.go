package history

import (
	"cmp"
	"slices"
	"time"
)

// TeamUsage is one team's GPU time over a range of days.
type TeamUsage struct {
	Team           string  `json:"team"`
	GPUHours       float64 `json:"gpuHours"`
	MilliGPUMillis int64   `json:"milliGpuMillis"`
	// Days are the days it used GPUs, in order.
	Days []DayUsage `json:"days,omitempty"`
}

// DayUsage is a team's GPU time on one day.
type DayUsage struct {
	Day            string  `json:"day"`
	GPUHours       float64 `json:"gpuHours"`
	MilliGPUMillis int64   `json:"milliGpuMillis"`
}

// ByTeam sums usage per team and day (every cluster and flavor), teams
// by name.
func ByTeam(usage []Usage) []TeamUsage {
	teams := map[string]*TeamUsage{}
	for _, u := range usage {
		t := teams[u.Team]
		if t == nil {
			t = &TeamUsage{Team: u.Team}
			teams[u.Team] = t
		}
		t.MilliGPUMillis += u.MilliGPUMillis
		if n := len(t.Days); n > 0 && t.Days[n-1].Day == u.Day {
			t.Days[n-1].MilliGPUMillis += u.MilliGPUMillis
		} else {
			t.Days = append(t.Days, DayUsage{Day: u.Day, MilliGPUMillis: u.MilliGPUMillis})
		}
	}
	out := make([]TeamUsage, 0, len(teams))
	for _, t := range teams {
		t.GPUHours = GPUHours(t.MilliGPUMillis)
		for i := range t.Days {
			t.Days[i].GPUHours = GPUHours(t.Days[i].MilliGPUMillis)
		}
		slices.SortFunc(t.Days, func(a, b DayUsage) int { return cmp.Compare(a.Day, b.Day) })
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b TeamUsage) int { return cmp.Compare(a.Team, b.Team) })
	return out
}

// Day is t's UTC day as the usage table keys it.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// MonthStart is the first day of t's UTC month.
func MonthStart(t time.Time) string {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}
