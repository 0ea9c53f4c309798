package local

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// fillLedger writes n records the way a long-lived berth accumulates them:
// nine in ten finished (settled), one in ten queued.
func fillLedger(b *testing.B, c *Cluster, n int) []reconcile.Change {
	b.Helper()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var recs []*record
	var queued []reconcile.Change
	for i := range n {
		w := batch(fmt.Sprintf("w%05d", i), "true").Obj()
		r := &record{RunRecord: reconcile.RunRecord{Workload: w.ID(), RunID: "1", Kind: w.Kind, Digest: berth.SpecDigest(w), Priority: 100,
			QueuedSince: now, Resources: berth.Resources{GPU: 1}, Placements: []berth.Placement{gpus(i % 7)}}}
		if i%10 == 0 {
			r.Waiting = true
			queued = append(queued, change(reconcile.OpQueue, w))
		} else {
			r.Attempts = 1
			r.Attempt = &attempt{N: 1, StartedAt: now, Pods: []podSpec{{Dir: podDir(w.ID(), "1", 1, 0)}}}
			phase := reconcile.PhaseSucceeded
			if i%7 == 0 {
				phase = reconcile.PhaseFailed
			}
			r.Ended = &ending{Phase: phase, FinishedAt: now.Add(time.Hour)}
		}
		recs = append(recs, r)
		if len(recs) == 1000 {
			if err := c.ledger.put(recs...); err != nil {
				b.Fatal(err)
			}
			recs = nil
		}
	}
	if err := c.ledger.put(recs...); err != nil {
		b.Fatal(err)
	}
	return queued
}

// cpuTime is the CPU this process has used. The benchmarks report it per
// op beside the wall time, which a loaded machine inflates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func benchCluster(b *testing.B) *Cluster {
	c, err := New(testOptions(b.TempDir(), nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkObserve10k(b *testing.B) {
	c := benchCluster(b)
	fillLedger(b, c, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer reportCPU(b, cpu)
	for b.Loop() {
		obs, err := c.Observe(ctx, nil)
		if err != nil || len(obs.Runs) != 10_000 {
			b.Fatal(err, len(obs.Runs))
		}
	}
}

// BenchmarkOpenLedger10k is a restart: opening and decoding 10,000 records.
func BenchmarkOpenLedger10k(b *testing.B) {
	c := benchCluster(b)
	fillLedger(b, c, 10_000)
	dir := c.StateDir()
	c.Close()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer reportCPU(b, cpu)
	for b.Loop() {
		l, err := openLedger(dir, nil)
		if err != nil || len(l.runs) != 10_000 {
			b.Fatal(err)
		}
		l.close()
	}
}

// BenchmarkApplyUnchanged applies 1,000 queue changes already in effect
// against a ledger of 10,000 runs: all unchanged, no write.
func BenchmarkApplyUnchanged(b *testing.B) {
	c := benchCluster(b)
	changes := fillLedger(b, c, 10_000)
	ctx := context.Background()
	tx := c.ledger.txID()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer reportCPU(b, cpu)
	for b.Loop() {
		res, err := c.Apply(ctx, nil, changes)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Outcome != reconcile.OutcomeUnchanged {
				b.Fatal(r.Outcome, r.Err)
			}
		}
	}
	b.StopTimer()
	if c.ledger.txID() != tx {
		b.Fatal("an unchanged apply wrote")
	}
}
