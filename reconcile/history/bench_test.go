package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// BenchmarkRecord10k is what serve's loop adds to a resync of 10,000 runs
// (1,000 running, the rest queued, nothing changed): the step over every
// run and decision, and the one transaction of what changed (the running
// runs' bills, every BillEvery).
func BenchmarkRecord10k(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var runs []reconcile.RunState
	plan := &berth.Plan{}
	for i := range 10000 {
		r := run(reconcile.PhaseQueued, 0, time.Time{}, time.Time{})
		r.Workload = berth.MakeWorkloadID(fmt.Sprintf("team%d", i%200), fmt.Sprintf("w%d", i))
		d := berth.Decision{Workload: r.Workload, RunID: "1", Action: berth.ActionQueue, Reason: &berth.Reason{Code: berth.ReasonQuota, Message: "short"}}
		if i < 1000 {
			r = run(reconcile.PhaseRunning, 1, t0, time.Time{})
			r.Workload = d.Workload
			d.Action, d.Reason = berth.ActionKeep, nil
		}
		runs = append(runs, r)
		plan.Decisions = append(plan.Decisions, &d)
	}
	rep := report(runs...)
	rep.Clusters[0].Plan = plan
	now := t0
	if _, err := st.Record(rep, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(2 * time.Second) // serve's resync
		if _, err := st.Record(rep, now); err != nil {
			b.Fatal(err)
		}
	}
}
