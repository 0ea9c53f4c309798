package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// ledgerFile writes a ledger of n settled runs (records only: no pods) and
// returns its bytes: big enough for branch pages and overflow.
func ledgerFile(t *testing.T, n int) []byte {
	t.Helper()
	dir := t.TempDir()
	l, err := openLedger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 50 {
		var recs []*record
		for j := i; j < i+50 && j < n; j++ {
			w := batch(fmt.Sprintf("w%04d", j), "true").Obj()
			recs = append(recs, &record{RunRecord: reconcile.RunRecord{Workload: w.ID(), RunID: "1", Kind: w.Kind, Attempts: 1},
				Attempt: &attempt{N: 1, StartedAt: now, Pods: []podSpec{{Dir: podDir(w.ID(), "1", 1, 0)}}},
				Ended:   &ending{Phase: reconcile.PhaseSucceeded, FinishedAt: now}})
		}
		if err := l.put(recs...); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	b, err := os.ReadFile(filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openDamaged opens a ledger file holding b; it must not panic, and any
// error must be a *DamagedError naming the file.
func openDamaged(t *testing.T, b []byte) error {
	t.Helper()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, dbFile), string(b))
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("opening the ledger panicked: %v", p)
			}
		}()
		var l *ledger
		if l, err = openLedger(dir, nil); err == nil {
			l.close()
		}
	}()
	var d *DamagedError
	if err != nil && (!errors.As(err, &d) || d.Path != filepath.Join(dir, dbFile)) {
		t.Fatalf("error %v (%T), want a *DamagedError of the file", err, err)
	}
	return err
}

func TestDamagedLedgerIsNamedNeverAPanic(t *testing.T) {
	good := ledgerFile(t, 400)
	const ps = 4096
	pageOf := func(b []byte, i int) []byte { return b[i*ps : (i+1)*ps] }
	tests := []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "the file is empty"},
		{"truncated", func(b []byte) []byte { return b[:len(b)/3] }, "pages in use"},
		{"both meta pages garbled", func(b []byte) []byte {
			copy(pageOf(b, 0)[16:], strings.Repeat("x", 64))
			copy(pageOf(b, 1)[16:], strings.Repeat("x", 64))
			return b
		}, "no valid meta page"},
		{"the root bucket's page zeroed", func(b []byte) []byte {
			m0, _ := readMeta(b, 0)
			m1, _ := readMeta(b, ps)
			if m1.txid > m0.txid {
				m0 = m1
			}
			clear(pageOf(b, int(m0.root)))
			return b
		}, "root bucket: page"},
		{"a page pointing at itself", func(b []byte) []byte {
			// Every branch element of every branch page points at page 2.
			for i := 2; i < len(b)/ps; i++ {
				p := pageOf(b, i)
				if le.Uint16(p[8:]) == flagBranch {
					for e := range int(le.Uint16(p[10:])) {
						le.PutUint64(p[pageHeaderSize+e*elementSize+8:], uint64(i))
					}
				}
			}
			return b
		}, "page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openDamaged(t, tt.damage(append([]byte(nil), good...)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "is damaged (") {
				t.Fatalf("error %v, want one saying the ledger is damaged: %q", err, tt.want)
			}
		})
	}
	// Garbled at random: bytes overwritten anywhere past the meta pages.
	// Whatever the damage, opening the ledger returns (an error or a sound
	// ledger) and never panics, faults or hangs.
	rng := rand.New(rand.NewPCG(1, 2))
	damaged := 0
	for range 100 {
		b := append([]byte(nil), good...)
		for range 1 + rng.IntN(8) {
			off := 2*ps + rng.IntN(len(b)-2*ps-8)
			for k := range 1 + rng.IntN(8) {
				b[off+k] = byte(rng.Uint32())
			}
		}
		if openDamaged(t, b) != nil {
			damaged++
		}
	}
	if damaged == 0 {
		t.Fatal("no random damage was found")
	}
}

func TestLedgerCheckAndRebuildRunNothingTwice(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	ran := func(name string) string { return filepath.Join(tmp, name) }
	count := func(name string) int {
		b, _ := os.ReadFile(ran(name))
		return strings.Count(string(b), "\n")
	}
	ok := batch("ok", `echo ran >> "$OUT"`).Env("OUT", ran("ok")).Obj()
	bad := batch("bad", `echo ran >> "$OUT"; exit 3`).Env("OUT", ran("bad")).Retries(1).Obj()
	svc := batch("svc", `echo ran >> "$OUT"; exec sleep 600`).Env("OUT", ran("svc")).Kind(berth.KindService).Obj()
	wait := batch("wait", `echo ran >> "$OUT"`).Env("OUT", ran("wait")).Obj() // queued, never started

	c := newClusterNoCleanup(t, dir)
	apply(t, c, change(reconcile.OpStart, ok, cpuOnly()), change(reconcile.OpStart, bad, cpuOnly()), change(reconcile.OpStart, svc, cpuOnly()),
		change(reconcile.OpQueue, wait, cpuOnly()))
	waitPhase(t, c, ok.ID(), "1", reconcile.PhaseSucceeded)
	waitPhase(t, c, bad.ID(), "1", reconcile.PhaseFailed)
	apply(t, c, change(reconcile.OpStart, bad, cpuOnly())) // its one retry
	waitPhase(t, c, bad.ID(), "1", reconcile.PhaseFailed)
	waitPhase(t, c, svc.ID(), "1", reconcile.PhaseRunning)
	apply(t, c) // settles the ends into the ledger
	before := observe(t, c)
	c.Close()

	// Garble the file: every page past the two meta pages overwritten.
	path := filepath.Join(dir, dbFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[2*4096:], strings.Repeat("garbled!", len(b)/8))
	mustWrite(t, path, string(b))

	if _, err := New(testOptions(dir, testLogger(t))); err == nil || !strings.Contains(err.Error(), "ledger "+path+" is damaged (") {
		t.Fatalf("New on a damaged ledger: %v, want the ledger named damaged", err)
	}
	check, err := CheckLedger(dir)
	if err != nil || check.Damaged == nil {
		t.Fatalf("check: %+v, %v; want damaged", check, err)
	}
	now := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	rebuilt, err := RebuildLedger(dir, RebuildOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".damaged-20261102T030405Z"; rebuilt.Kept != want || len(rebuilt.Runs) != 4 || len(rebuilt.Unrecorded) != 0 {
		t.Fatalf("rebuilt %+v, want 4 runs and the old file kept as %s", rebuilt, want)
	}
	if kept, _ := os.ReadFile(rebuilt.Kept); string(kept) != string(b) {
		t.Error("the damaged file was not kept as it was")
	}
	if check, err := CheckLedger(dir); err != nil || check.Damaged != nil || check.Runs != 4 {
		t.Fatalf("check after the rebuild: %+v, %v", check, err)
	}
	if _, err := RebuildLedger(dir, RebuildOptions{}); !errors.Is(err, ErrLedgerSound) {
		t.Fatalf("rebuilding a sound ledger: %v, want ErrLedgerSound", err)
	}

	c2 := newCluster(t, dir)
	after := observe(t, c2)
	for _, w := range []berth.Workload{ok, bad, svc, wait} {
		b, _ := before.Run(berth.RunKey{Workload: w.ID(), RunID: "1"})
		a, _ := after.Run(berth.RunKey{Workload: w.ID(), RunID: "1"})
		if a.Phase != b.Phase || a.Attempts != b.Attempts || a.Reason != b.Reason || !a.QueuedSince.Equal(b.QueuedSince) {
			t.Errorf("%s after the rebuild: %s, %d attempts (%s), queued since %s; before: %s, %d attempts (%s), queued since %s",
				w.ID(), a.Phase, a.Attempts, a.Reason, a.QueuedSince, b.Phase, b.Attempts, b.Reason, b.QueuedSince)
		}
	}
	if len(after.Snapshot.Finished) != 2 || len(after.Snapshot.Running) != 1 || len(after.Snapshot.Queue) != 1 {
		t.Errorf("after the rebuild: %d finished, %d running, %d queued; want 2, 1, 1",
			len(after.Snapshot.Finished), len(after.Snapshot.Running), len(after.Snapshot.Queue))
	}
	// What the engine would ask again is a no-op.
	got := apply(t, c2, change(reconcile.OpStart, svc, cpuOnly()), change(reconcile.OpQueue, wait, cpuOnly()))
	if got[0] != reconcile.OutcomeUnchanged || got[1] != reconcile.OutcomeUnchanged {
		t.Errorf("after the rebuild, the running service's start: %s, the waiting job's queue: %s; want both unchanged", got[0], got[1])
	}
	if count("ok") != 1 || count("bad") != 2 || count("svc") != 1 || count("wait") != 0 {
		t.Errorf("runs: ok %d, bad %d, svc %d, wait %d; want 1, 2, 1, 0", count("ok"), count("bad"), count("svc"), count("wait"))
	}
}

// newClusterNoCleanup is a Cluster the test closes itself (its pods are
// stopped by the Cluster the test opens next).
func newClusterNoCleanup(t *testing.T, dir string) *Cluster {
	t.Helper()
	c, err := New(testOptions(dir, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRebuildRunDirectoriesFromBeforeRecordFiles: run directories that a
// berth older than the record files left (no run.json) are rebuilt from
// their pods' files and the workloads' specs in the repository: a job
// that succeeded stays succeeded and a service that runs is adopted with
// its spec, and nothing runs twice. Without the repository they are
// listed, with why.
func TestRebuildRunDirectoriesFromBeforeRecordFiles(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	ran := func(name string) string { return filepath.Join(tmp, name) }
	count := func(name string) int {
		b, _ := os.ReadFile(ran(name))
		return strings.Count(string(b), "\n")
	}
	ok := batch("ok", `echo ran >> "$OUT"`).Env("OUT", ran("ok")).Obj()
	svc := batch("svc", `echo ran >> "$OUT"; exec sleep 600`).Env("OUT", ran("svc")).Kind(berth.KindService).Obj()
	c := newClusterNoCleanup(t, dir)
	apply(t, c, change(reconcile.OpStart, ok, cpuOnly()), change(reconcile.OpStart, svc, cpuOnly()))
	waitPhase(t, c, ok.ID(), "1", reconcile.PhaseSucceeded)
	waitPhase(t, c, svc.ID(), "1", reconcile.PhaseRunning)
	// Running is the process started; its first line may come later on
	// a loaded machine.
	for deadline := time.Now().Add(30 * time.Second); count("svc") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the service did not write its line in 30 s")
		}
	}
	apply(t, c)
	c.Close()
	// As an older berth left them: no record files, and no ledger.
	for _, w := range []berth.Workload{ok, svc} {
		if err := os.Remove(filepath.Join(dir, runDir(w.ID(), "1"), fileRunRecord)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, dbFile)); err != nil {
		t.Fatal(err)
	}

	without, err := RebuildLedger(dir, RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(without.Runs) != 0 || len(without.Unrecorded) != 2 || !strings.Contains(without.Unrecorded[0], "no record file (give the repository") {
		t.Fatalf("without the repository: %+v, want both directories listed as unrecorded", without)
	}
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{ok.ID(): ok}} // svc is no longer in the repository
	partial, err := RebuildLedger(dir, RebuildOptions{Force: true, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if len(partial.FromPods) != 1 || len(partial.Unrecorded) != 1 || !strings.Contains(partial.Unrecorded[0], "workload vision/svc is not in the repository") {
		t.Fatalf("with ok only in the repository: %+v", partial)
	}
	cfg.Workloads[svc.ID()] = svc
	rebuilt, err := RebuildLedger(dir, RebuildOptions{Force: true, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{runDir(ok.ID(), "1"), runDir(svc.ID(), "1")}, rebuilt.FromPods); d != "" || len(rebuilt.Unrecorded) != 0 {
		t.Fatalf("rebuilt from the pods (-want +got):\n%s\nunrecorded: %v", d, rebuilt.Unrecorded)
	}

	c2 := newCluster(t, dir)
	after := observe(t, c2)
	for _, tc := range []struct {
		w     berth.Workload
		phase reconcile.Phase
	}{{ok, reconcile.PhaseSucceeded}, {svc, reconcile.PhaseRunning}} {
		a, _ := after.Run(berth.RunKey{Workload: tc.w.ID(), RunID: "1"})
		if a.Phase != tc.phase || a.Attempts != 1 || a.Kind != tc.w.Kind || a.Digest != berth.SpecDigest(tc.w) {
			t.Errorf("%s after the rebuild: %s, %d attempts, kind %q; want %s, 1 attempt, kind %s, its spec's digest",
				tc.w.ID(), a.Phase, a.Attempts, a.Kind, tc.phase, tc.w.Kind)
		}
	}
	// The engine sees the job finished (it never starts it again) and the
	// service running with its spec (a restart for the same spec is a
	// no-op).
	if len(after.Snapshot.Finished) != 1 || after.Snapshot.Finished[0].Workload != ok.ID() ||
		len(after.Snapshot.Running) != 1 || after.Snapshot.Running[0].Workload != svc.ID() {
		t.Errorf("after the rebuild: finished %+v, running %+v; want ok finished, svc running", after.Snapshot.Finished, after.Snapshot.Running)
	}
	got := apply(t, c2, change(reconcile.OpStart, svc, cpuOnly()), change(reconcile.OpRestart, svc, cpuOnly()))
	if got[0] != reconcile.OutcomeUnchanged || got[1] != reconcile.OutcomeUnchanged {
		t.Errorf("the service's start and restart for the same spec after the rebuild: %v, want both unchanged", got)
	}
	if count("ok") != 1 || count("svc") != 1 {
		t.Errorf("runs: ok %d, svc %d; want 1, 1", count("ok"), count("svc"))
	}
	// The service the first berth left running stops through the second,
	// before the test's directories go.
	apply(t, c2, change(reconcile.OpStop, svc, cpuOnly()))
	waitPhase(t, c2, svc.ID(), "1", reconcile.PhaseStopped)
}
