package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

var t0 = time.Date(2026, 12, 7, 23, 50, 0, 123456789, time.UTC)

// run is a run of vision/train holding gpus whole GPUs.
func run(phase reconcile.Phase, gpus int, started, finished time.Time) reconcile.RunState {
	p := berth.Placement{Node: "box"}
	for i := range gpus {
		p.GPUs = append(p.GPUs, i)
	}
	return reconcile.RunState{
		RunRecord: reconcile.RunRecord{Workload: "vision/train", RunID: "1", Kind: berth.KindTraining, Flavor: "h100",
			Attempts: 1, Placements: []berth.Placement{p}},
		Phase: phase, StartedAt: started, FinishedAt: finished,
	}
}

func report(runs ...reconcile.RunState) reconcile.Report {
	return reconcile.Report{
		Applied:  reconcile.Revision{Name: "main@sha1:abc", Commit: "abc", Subject: "Merge pull request #12 from ana/train", Author: "Ana <ana@example.com>"},
		Clusters: []reconcile.ClusterReport{{Name: "box", Observed: &reconcile.Observed{Runs: runs}}},
	}
}

func total(u []Usage) int64 {
	var n int64
	for _, x := range u {
		n += x.MilliGPUMillis
	}
	return n
}

// A run billed across midnight, a restart of the store, and an
// observation that saw it running past the end it then reports is billed
// exactly 2 GPUs x its duration, split at midnight.
func TestBillingIsExactAcrossRestartsAndDays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	st, err := Open(path, Options{BillEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	start := t0
	end := t0.Add(17*time.Minute + 333*time.Millisecond + 777)
	steps := []struct {
		at  time.Time
		run reconcile.RunState
	}{
		{t0.Add(3 * time.Second), run(reconcile.PhaseRunning, 2, start, time.Time{})},
		{t0.Add(9*time.Minute + 7*time.Millisecond), run(reconcile.PhaseRunning, 2, start, time.Time{})},
		// Seen running after it ended (the backend noticed late).
		{end.Add(2 * time.Second), run(reconcile.PhaseRunning, 2, start, time.Time{})},
		{end.Add(5 * time.Second), run(reconcile.PhaseSucceeded, 2, start, end)},
		{end.Add(9 * time.Second), run(reconcile.PhaseSucceeded, 2, start, end)},
	}
	for i, s := range steps {
		if _, err := st.Record(report(s.run), s.at); err != nil {
			t.Fatal(err)
		}
		if i == 1 { // berth restarts
			st.Close()
			if st, err = Open(path, Options{BillEvery: time.Nanosecond}); err != nil {
				t.Fatal(err)
			}
		}
	}
	u, err := st.Usage("2026-12-01", "2026-12-31")
	if err != nil {
		t.Fatal(err)
	}
	want := 2000 * end.Sub(start).Milliseconds()
	if got := total(u); got != want {
		t.Errorf("billed %d milli-GPU-ms (%.6f GPU-h), want %d (%.6f GPU-h)", got, GPUHours(got), want, GPUHours(want))
	}
	if len(u) != 2 || u[0].Day != "2026-12-07" || u[1].Day != "2026-12-08" || u[0].Team != "vision" || u[0].Flavor != "h100" {
		t.Errorf("usage cells: %+v", u)
	}
	if got, want := u[0].MilliGPUMillis, int64(2000*(10*time.Minute-123456789).Milliseconds()); got != want {
		t.Errorf("before midnight: %d, want %d", got, want)
	}
	evs, err := st.Events(Query{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Type)+" "+e.What+" "+e.Time.Format(time.TimeOnly))
		if e.PR != 12 || e.MergedBy != "Ana <ana@example.com>" || e.Commit != "abc" {
			t.Errorf("event %+v: revision not stamped", e)
		}
	}
	if diff := cmp.Diff([]string{"lifecycle running 23:50:00", "lifecycle succeeded 00:07:00"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	st.Close()
}

func TestPullRequest(t *testing.T) {
	for subject, want := range map[string]int{
		"Merge pull request #12 from ana/train": 12,
		"vision: bigger batch (#345)":           345,
		"vision: bigger batch":                  0,
		"fix #12 in the middle":                 0,
	} {
		if got := PullRequest(subject); got != want {
			t.Errorf("PullRequest(%q) = %d, want %d", subject, got, want)
		}
	}
}

// Events selects by time, type and run, newest kept when limited.
func TestEventsQuery(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "history.db"), Options{BillEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := t0
	for i, ph := range []reconcile.Phase{reconcile.PhaseRunning, reconcile.PhasePreempted, reconcile.PhaseRunning, reconcile.PhaseSucceeded} {
		r := run(ph, 2, start, time.Time{})
		r.Attempts = 1 + i/2
		if ph == reconcile.PhasePreempted || ph == reconcile.PhaseSucceeded {
			r.FinishedAt = start.Add(time.Minute)
		}
		if _, err := st.Record(report(r), start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		start = start.Add(time.Hour)
	}
	whats := func(q Query) string {
		evs, err := st.Events(q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.What)
		}
		return fmt.Sprint(out)
	}
	for _, c := range []struct {
		q    Query
		want string
	}{
		{Query{}, "[running preempted running succeeded]"},
		{Query{Limit: 2}, "[running succeeded]"},
		{Query{Until: t0.Add(2 * time.Hour)}, "[running preempted]"},
		{Query{Since: t0.Add(2 * time.Hour)}, "[running succeeded]"},
		{Query{Match: "preempt"}, "[preempted]"},
		{Query{Team: "nlp"}, "[]"},
		{Query{Workload: "vision/train", Types: []EventType{EventDecision}}, "[]"},
	} {
		if got := whats(c.q); got != c.want {
			t.Errorf("%+v: %s, want %s", c.q, got, c.want)
		}
	}
}
