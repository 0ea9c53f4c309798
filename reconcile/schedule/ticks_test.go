package schedule_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// hourly is a periodic job whose last tick that ran was 01:00; the
// snapshots below are taken later that day, berth having been down.
func hourly() *build.WorkloadBuilder {
	return build.Workload("v", "hourly").GPUs(1).Schedule("0 * * * *")
}

func hour(h, m int) time.Time { return time.Date(2026, 11, 22, h, m, 0, 0, time.UTC) }

func afterDowntime(h, m int) *build.SnapshotBuilder {
	s := h100Nodes(1).At(hour(h, m))
	s.FinishedAfter("v/hourly", schedule.TickRunID("1", hour(1, 0)), true, 1, "")
	return s
}

// tickSummary is each decision of v/hourly as "action runId code".
func tickSummary(p *berth.Plan) []string {
	var out []string
	for _, d := range runsOf(p, "v/hourly") {
		s := string(d.Action) + " " + d.RunID
		if d.Reason != nil {
			s += " " + string(d.Reason.Code)
		}
		out = append(out, s)
	}
	return out
}

func tick(h int) string { return schedule.TickRunID("1", hour(h, 0)) }

// TestCatchUp: after berth was down from 01:00 to 05:30, the ticks of
// 02:00 to 05:00 were missed. none runs none of them (05:00 is 30 minutes
// late, past the 10-minute deadline), latest runs 05:00, all with a limit
// of 2 runs 04:00 and 05:00; every tick that does not run is reported.
func TestCatchUp(t *testing.T) {
	for _, tc := range []struct {
		catchUp berth.CatchUp
		limit   int
		want    []string
		message string
	}{
		{"", 0, []string{"done " + tick(5) + " TicksMissed", "wait 1 WaitingForSchedule"},
			"missed 4 ticks (2026-11-22 02:00 UTC .. 2026-11-22 05:00 UTC) by more than the tick deadline 10m0s: catchUp none does not run them; set catchUp latest or all to run them"},
		{berth.CatchUpLatest, 0, []string{"done " + tick(4) + " TicksMissed", "admit " + tick(5)},
			"missed 3 ticks (2026-11-22 02:00 UTC .. 2026-11-22 04:00 UTC): catchUp latest runs only the latest"},
		{berth.CatchUpAll, 2, []string{"done " + tick(3) + " TicksMissed", "admit " + tick(4), "admit " + tick(5)},
			"missed 2 ticks (2026-11-22 02:00 UTC .. 2026-11-22 03:00 UTC): catchUp all runs at most catchUpLimit 2, the newest"},
		{berth.CatchUpAll, 10, []string{"admit " + tick(2), "admit " + tick(3), "admit " + tick(4), "admit " + tick(5)}, ""},
	} {
		t.Run(string(tc.catchUp)+"/"+itoa(tc.limit), func(t *testing.T) {
			p := plan(t, prepCfg(hourly().CatchUp(tc.catchUp, tc.limit)), afterDowntime(5, 30))
			got := tickSummary(p)
			if !equalSorted(got, tc.want) {
				t.Fatalf("decisions %q, want %q", got, tc.want)
			}
			for _, d := range runsOf(p, "v/hourly") {
				if d.Reason != nil && d.Reason.Code == berth.ReasonTicksMissed && d.Reason.Message != tc.message {
					t.Errorf("message %q\nwant    %q", d.Reason.Message, tc.message)
				}
			}
		})
	}
	// On time, nothing was missed: the due tick runs and nothing is reported.
	p := plan(t, prepCfg(hourly()), afterDowntime(2, 3))
	if got := tickSummary(p); !equalSorted(got, []string{"admit " + tick(2)}) {
		t.Errorf("on time: %q, want tick 02:00 admitted alone", got)
	}
}

// TestConcurrency: at 05:02, the 04:00 tick still runs and 05:00 is due.
// allow runs both, forbid has 05:00 wait, replace stops 04:00 and runs
// 05:00.
func TestConcurrency(t *testing.T) {
	for _, tc := range []struct {
		c    berth.Concurrency
		want []string
	}{
		{"", []string{"keep " + tick(4), "admit " + tick(5)}},
		{berth.ConcurrencyForbid, []string{"keep " + tick(4), "wait 1 TickWaitsForRun"}},
		{berth.ConcurrencyReplace, []string{"stop " + tick(4) + " SupersededByTick", "admit " + tick(5)}},
	} {
		t.Run(string(tc.c), func(t *testing.T) {
			w := hourly().Concurrency(tc.c)
			snap := h100Nodes(1).At(hour(5, 2)).Running(build.Running(w, "h100", 100).RunID(tick(4)).Since(hour(4, 0)).On("gpu-a", 0))
			p := plan(t, prepCfg(w), snap)
			if got := tickSummary(p); !equalSorted(got, tc.want) {
				t.Fatalf("decisions %q, want %q", got, tc.want)
			}
		})
	}
}

func equalSorted(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestIsRunOf: a run is of a workload as Git has it when it is of its
// runId, or, for a periodic job only, a tick of it.
func TestIsRunOf(t *testing.T) {
	periodic := build.Workload("ml", "etl").Schedule("0 3 * * *").Obj()
	once := build.Workload("ml", "train").Obj()
	tick := schedule.TickRunID(periodic.RunID, time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		w     berth.Workload
		runID string
		want  bool
	}{
		{once, once.RunID, true},
		{once, "2", false},
		{once, once.RunID + "-20261122t0300", false},
		{periodic, tick, true},
		{periodic, "2-20261122t0300", false},
		{periodic, periodic.RunID + "-later", false},
	} {
		if got := schedule.IsRunOf(tc.w, tc.runID); got != tc.want {
			t.Errorf("IsRunOf(%s, %q) = %v, want %v", tc.w.ID(), tc.runID, got, tc.want)
		}
	}
}
