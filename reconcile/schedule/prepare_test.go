package schedule_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// The prepare stage: what is pending now is decided from the snapshot
// alone, so a plan made from a snapshot and the engine agree.

func prepCfg(ws ...*build.WorkloadBuilder) *build.ConfigBuilder {
	return build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").Quota("h100", build.GPU("16"))).Workload(ws...)
}

func runsOf(p *berth.Plan, id string) []berth.Decision {
	var out []berth.Decision
	for _, d := range p.Decisions {
		if string(d.Workload) == id {
			out = append(out, *d)
		}
	}
	return out
}

func TestRetryWaitsOutItsBackoff(t *testing.T) {
	job := build.Workload("v", "job").GPUs(1).Retries(3)
	for _, tc := range []struct {
		name     string
		failedAt time.Time
		failures int
		want     got
		message  string
	}{
		{"within the first backoff (10 s)", build.T0.Add(-5 * time.Second), 1,
			got{Action: berth.ActionWait, Code: berth.ReasonBackoff}, "retrying at 09:00:05 UTC (attempt 1 failed: OOMKilled)"},
		{"past the first backoff", build.T0.Add(-11 * time.Second), 1,
			got{Action: berth.ActionAdmit, Flavor: "h100"}, ""},
		{"the third failure waits 40 s", build.T0.Add(-30 * time.Second), 3,
			got{Action: berth.ActionWait, Code: berth.ReasonBackoff}, "retrying at 09:00:10 UTC (attempt 3 failed: OOMKilled)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(t, prepCfg(job), h100Nodes(1).Failed("v/job", "1", tc.failures, tc.failedAt, "OOMKilled"))
			expect(t, p, map[string]got{"v/job": tc.want})
			if d := decision(t, p, "v/job"); tc.message != "" && d.Reason.Message != tc.message {
				t.Errorf("message %q, want %q", d.Reason.Message, tc.message)
			}
		})
	}
}

func TestBackoffIsAnOption(t *testing.T) {
	job := build.Workload("v", "job").GPUs(1).Retries(3)
	snap := h100Nodes(1).Failed("v/job", "1", 1, build.T0, "exit code 1").Obj()
	p := schedule.Schedule(schedule.Input{Config: prepCfg(job).Obj(), Snapshot: snap},
		schedule.Options{Backoff: func(int) time.Duration { return 0 }})
	expect(t, p, map[string]got{"v/job": {Action: berth.ActionAdmit, Flavor: "h100"}})
}

func TestRunThatUsedEveryRetrySaysSo(t *testing.T) {
	job := build.Workload("v", "job").GPUs(1).Retries(2)
	p := plan(t, prepCfg(job), h100Nodes(1).FinishedAfter("v/job", "1", false, 3, "OOMKilled"))
	expect(t, p, map[string]got{"v/job": {Action: berth.ActionDone, Code: berth.ReasonRunFailed}})
	if d := decision(t, p, "v/job"); d.Reason.Message != "run 1 failed after 3 attempts: OOMKilled; bump runId to run it again" {
		t.Errorf("message %q", d.Reason.Message)
	}
}

func TestServiceThatExitedRestartsAfterBackoff(t *testing.T) {
	api := build.Workload("v", "api").Service(1).GPUs(1)
	p := plan(t, prepCfg(api), h100Nodes(1).Failed("v/api", "1", 2, build.T0.Add(-time.Second), "exit code 3"))
	d := decision(t, p, "v/api")
	if d.Action != berth.ActionWait || d.Reason.Code != berth.ReasonBackoff || !strings.HasPrefix(d.Reason.Message, "restarting at ") {
		t.Fatalf("got %s %+v, want a wait to restart", d.Action, d.Reason)
	}
}

func TestPeriodicTickIsPreparedFromTheSnapshot(t *testing.T) {
	nightly := build.Workload("v", "nightly").GPUs(1).Schedule("0 3 * * *")
	at := func(h, m int) *build.SnapshotBuilder {
		return h100Nodes(1).At(time.Date(2026, 11, 22, h, m, 0, 0, time.UTC))
	}
	tick := schedule.TickRunID("1", time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))

	// Due: the latest tick is queued and admitted under its own run id.
	p := plan(t, prepCfg(nightly), at(3, 4))
	runs := runsOf(p, "v/nightly")
	if len(runs) != 1 || runs[0].RunID != tick || runs[0].Action != berth.ActionAdmit {
		t.Fatalf("at 03:04: %+v, want tick %s admitted", runs, tick)
	}
	// Missed by more than the deadline (10 minutes): it waits for the next.
	p = plan(t, prepCfg(nightly), at(3, 11))
	expect(t, p, map[string]got{"v/nightly": {Action: berth.ActionWait, Code: berth.ReasonSchedule}})
	// A tick the snapshot knows (it ran) is not run again.
	known := at(3, 4)
	known.FinishedAfter("v/nightly", tick, true, 1, "")
	p = plan(t, prepCfg(nightly), known)
	for _, d := range runsOf(p, "v/nightly") {
		if d.Starts() {
			t.Fatalf("a tick that ran starts again: %+v", d)
		}
	}
}

func TestRunningWithoutMaxDurationTakesTheSpecs(t *testing.T) {
	// A hand-written snapshot leaves maxDuration out of a running entry:
	// the spec's 2h bounds it, so the head's estimate is known and a 3h
	// job is not backfilled ahead of it.
	long := build.Workload("v", "long").GPUs(4).MaxDuration("2h")
	cfg := build.Config().GPUFlavor("h100", "H100").Team(build.Team("v").WithinTeam(berth.PreemptNever).Quota("h100", build.GPU("16"))).
		Workload(long, build.Workload("v", "head").GPUs(8).Priority("production"),
			build.Workload("v", "slow").GPUs(4).MaxDuration("3h").Priority("low"))
	snap := h100Nodes(1).Running(build.Running(long, "h100", 100).NoMaxDuration().Since(build.T0.Add(-time.Hour)).On("gpu-a", 0, 1, 2, 3))
	p := plan(t, cfg, snap)
	expect(t, p, map[string]got{"v/slow": {Action: berth.ActionQueue, Code: berth.ReasonBehindHead}})
	if h := decision(t, p, "v/head"); h.EstimatedStart == nil || !h.EstimatedStart.Equal(build.T0.Add(time.Hour)) {
		t.Errorf("head estimate %v, want %v", h.EstimatedStart, build.T0.Add(time.Hour))
	}
}

func TestDefaultBackoffDoublesToFiveMinutes(t *testing.T) {
	var got []time.Duration
	for failures := range 8 {
		got = append(got, schedule.DefaultBackoff(failures))
	}
	s := time.Second
	want := []time.Duration{10 * s, 10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs after 0..7 failures: %v, want %v", got, want)
	}
}

// TestIdleStoppedNotebookStaysStopped: a notebook the backend stopped for
// being idle is reported finished; it is not started again (its GPU stays
// free) until its runId changes.
func TestIdleStoppedNotebookStaysStopped(t *testing.T) {
	nb := func() *build.WorkloadBuilder {
		return build.Workload("v", "explore").Service(1).Kind(berth.KindNotebook).GPUs(1)
	}
	stopped := h100Nodes(1).FinishedAfter("v/explore", "1", true, 1, "idle for 2h0m0s (limit 2h): stopped and its GPUs freed")
	p := plan(t, prepCfg(nb()), stopped)
	expect(t, p, map[string]got{"v/explore": {Action: berth.ActionDone, Code: berth.ReasonIdleStopped}})
	if d := decision(t, p, "v/explore"); d.Reason.Message != "idle for 2h0m0s (limit 2h): stopped and its GPUs freed; bump runId to start it again" {
		t.Errorf("message %q", d.Reason.Message)
	}
	p = plan(t, prepCfg(nb().RunID("2")), stopped)
	expect(t, p, map[string]got{"v/explore": {Action: berth.ActionAdmit, Flavor: "h100"}})
}
