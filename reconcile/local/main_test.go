package local

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/notebook"
	"github.com/berth-gpu/berth/fixtures/replica"
	"github.com/berth-gpu/berth/reconcile"
)

// TestMain lets the test binary be the shim (the default ShimCommand is
// this executable with "shim"), a service's replica, a notebook's Jupyter
// stand-in, and the helper process the crash tests kill.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "shim" {
		os.Exit(RunShim(os.Args[2], os.Stderr))
	}
	if len(os.Args) == 2 && os.Args[1] == "replica" {
		os.Exit(replica.Main())
	}
	if len(os.Args) >= 2 && os.Args[1] == "notebook" {
		os.Exit(notebook.Main(os.Args[2:]))
	}
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helperMain(dir, os.Getenv(helperKillEnv)))
	}
	os.Exit(m.Run())
}

const (
	node      = "box"
	inventory = "7xH100,1xH100:1g.10gb"
	timeout   = 60 * time.Second
)

// testOptions are the options every test starts from: a simulated box of
// eight H100s (the last in MIG mode), a short grace period.
func testOptions(stateDir string, log *slog.Logger) Options {
	cpu, mem := berth.MustQuantity("64"), berth.MustQuantity("512Gi")
	return Options{
		Name: "box", StateDir: stateDir, SimulatedGPUs: inventory, NodeName: node,
		CPU: &cpu, Memory: &mem, GracePeriod: time.Second, Logger: log,
	}
}

func newCluster(t *testing.T, stateDir string) *Cluster {
	t.Helper()
	c, err := New(testOptions(stateDir, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })
	return c
}

// stopAll signals every live pod, so a failed test leaves no process
// behind, and waits (at most 10 s) until none is live: a pod still
// writing its files into the state directory made the test's TempDir
// cleanup fail ("directory not empty").
func stopAll(c *Cluster) {
	signalled := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		any := false
		for _, r := range c.ledger.runs {
			if r.Attempt != nil && c.view(r).live {
				c.signalPods(r, map[int]bool{})
				any = true
			}
		}
		return any
	}
	for deadline := time.Now().Add(10 * time.Second); signalled() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger writes berth's notes to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// syncBuffer is a log destination tests read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wl builds a workload.
type wl struct{ w berth.Workload }

func batch(name, script string) *wl {
	return &wl{berth.Workload{Name: name, Team: "vision", Kind: berth.KindBatch, RunID: "1",
		Command: []string{"sh", "-c", script}, Image: "busybox:1.36"}}
}

func (b *wl) Kind(k berth.Kind) *wl           { b.w.Kind = k; return b }
func (b *wl) Workers(n int) *wl               { b.w.Workers = n; return b }
func (b *wl) Retries(n int) *wl               { b.w.Retries = n; return b }
func (b *wl) RunID(id string) *wl             { b.w.RunID = id; return b }
func (b *wl) MaxDuration(d time.Duration) *wl { b.w.MaxDuration = berth.Duration(d); return b }
func (b *wl) Env(k, v string) *wl             { b.w.Env = merge(b.w.Env, k, v); return b }
func (b *wl) Resources(r berth.Resources) *wl { b.w.Resources = r; return b }
func (b *wl) Checkpoint() *wl {
	b.w.Checkpoint = &berth.Checkpoint{Dir: "/ckpt", Resume: true}
	return b
}
func (b *wl) Obj() berth.Workload  { return b.w }
func (b *wl) ID() berth.WorkloadID { return b.w.ID() }
func merge(m berth.Env, k, v string) berth.Env {
	if m == nil {
		m = berth.Env{}
	}
	m[k] = berth.Val(v)
	return m
}

// Placements.
func gpus(idx ...int) berth.Placement {
	return berth.Placement{Node: node, GPUs: idx, MIG: []berth.MIGSlice{}}
}

func migSlice(gpu int, profile string) berth.Placement {
	return berth.Placement{Node: node, GPUs: []int{}, MIG: []berth.MIGSlice{{GPU: gpu, Profile: profile}}}
}

func fraction(gpu int, f float64) berth.Placement {
	return berth.Placement{Node: node, GPUs: []int{gpu}, GPUFraction: f, MIG: []berth.MIGSlice{}}
}

func cpuOnly() berth.Placement {
	return berth.Placement{Node: node, GPUs: []int{}, MIG: []berth.MIGSlice{}}
}

// change builds a change of op for w at placements.
func change(op reconcile.Op, w berth.Workload, ps ...berth.Placement) reconcile.Change {
	return reconcile.Change{
		Op: op, Workload: w, RunID: w.RunID, Digest: berth.SpecDigest(w), Revision: "main@sha1:test",
		Decision: berth.Decision{Workload: w.ID(), RunID: w.RunID, Team: w.Team, Kind: w.Kind,
			Cluster: "box", Action: berth.ActionAdmit, Priority: 100, Flavor: "h100", Placements: ps},
	}
}

func stopChange(w berth.Workload, phase reconcile.Phase, reason string) reconcile.Change {
	return reconcile.Change{Op: reconcile.OpStop, Workload: berth.Workload{Name: w.Name, Team: w.Team},
		RunID: w.RunID, Phase: phase, Reason: reason}
}

// apply applies changes and fails the test on any failed result.
func apply(t *testing.T, c *Cluster, changes ...reconcile.Change) []reconcile.Outcome {
	t.Helper()
	res, err := c.Apply(context.Background(), nil, changes)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]reconcile.Outcome, len(res))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s %s: %v", r.Change.Op, r.Change.Workload.ID(), r.Err)
		}
		out[i] = r.Outcome
	}
	return out
}

func observe(t *testing.T, c *Cluster) *reconcile.Observed {
	t.Helper()
	obs, err := c.Observe(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// waitPhase observes until the run is in phase, and returns it.
func waitPhase(t *testing.T, c *Cluster, id berth.WorkloadID, runID string, phase reconcile.Phase) reconcile.RunState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last reconcile.RunState
	for time.Now().Before(deadline) {
		r, ok := observe(t, c).Run(berth.RunKey{Workload: id, RunID: runID})
		if ok && r.Phase == phase {
			return r
		}
		last = r
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s run %s: still %s (%s) after %s, want %s", id, runID, last.Phase, last.Reason, timeout, phase)
	return last
}

// waitFile waits until path exists and holds want (or anything, if want
// is empty).
func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no %q after %s", path, want, timeout)
	return ""
}

// stdout is pod i's stdout of the run's latest attempt.
func stdout(t *testing.T, c *Cluster, id berth.WorkloadID, runID string, pod int) string {
	t.Helper()
	logs, err := Logs(c.StateDir(), id, runID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pod >= len(logs.Pods) {
		t.Fatalf("%s: %d pods, want pod %d", id, len(logs.Pods), pod)
	}
	var s strings.Builder
	for _, f := range logs.Pods[pod].Stdout {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s.Write(b)
	}
	return s.String()
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dirCount(t *testing.T, root string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(root, func(string, os.DirEntry, error) error { n++; return nil })
	return n
}

var _ = fmt.Sprint
