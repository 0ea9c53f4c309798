package reconcile_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// demoFS is the demo repository with some files replaced (or removed, with
// an empty string).
func demoFS(t *testing.T, over map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(fixtures.Demo(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fixtures.Demo(), p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range over {
		if s == "" {
			delete(m, p)
			continue
		}
		m[p] = &fstest.MapFile{Data: []byte(s)}
	}
	return m
}

// scenario is an engine on the demo repository and a fake 8-GPU box.
type scenario struct {
	t        *testing.T
	now      time.Time
	cluster  *fake.Cluster
	reporter *fake.Reporter
	engine   *reconcile.Engine
	commit   int
}

func newScenario(t *testing.T) *scenario {
	s := &scenario{t: t, now: build.T0, reporter: &fake.Reporter{}}
	node := build.Node("box").GPUs(8, "NVIDIA H100 80GB HBM3").MIG(7, "1g.10gb", 7).Obj()
	s.cluster = fake.NewCluster("box", node)
	s.cluster.Now = func() time.Time { return s.now }
	s.engine = reconcile.New(reconcile.Options{
		Clusters: []reconcile.Cluster{s.cluster},
		Loader:   cue.NewLoader(cue.Options{}),
		Reporter: s.reporter,
		Now:      func() time.Time { return s.now },
	})
	return s
}

// reconcile reconciles the demo with over applied, as a new commit when
// over is not nil.
func (s *scenario) reconcile(over map[string]string) reconcile.Report {
	s.t.Helper()
	if over != nil || s.commit == 0 {
		s.commit++
	}
	rev := reconcile.Revision{Name: "main@sha1:c" + string(rune('0'+s.commit)), Commit: "c" + string(rune('0'+s.commit)), FS: demoFS(s.t, over)}
	return s.engine.ReconcileRevision(context.Background(), rev)
}

func (s *scenario) phase(id, runID string) reconcile.Phase {
	r, ok := s.cluster.Run(id, runID)
	if !ok {
		return ""
	}
	return r.Phase
}

func (s *scenario) expectPhases(want map[string]reconcile.Phase) {
	s.t.Helper()
	for id, p := range want {
		if got := s.phase(id, "1"); got != p {
			s.t.Errorf("%s: phase %q, want %q", id, got, p)
		}
	}
}

func TestDemoConverges(t *testing.T) {
	s := newScenario(t)
	rep := s.reconcile(nil)
	if rep.Invalid != nil || rep.Err != nil || rep.Clusters[0].Err != nil {
		t.Fatalf("reconcile: invalid=%v err=%v cluster=%v", rep.Invalid, rep.Err, rep.Clusters[0].Err)
	}
	s.expectPhases(map[string]reconcile.Phase{
		"nlp/prepare-data":      reconcile.PhaseRunning,
		"serving/chat-api":      reconcile.PhaseRunning,
		"serving/docs-site":     reconcile.PhaseRunning,
		"vision/label-notebook": reconcile.PhaseRunning,
		"vision/resnet-train":   reconcile.PhaseRunning,
		"nlp/finetune":          "", // waits for prepare-data: nothing recorded
	})
	writes := s.cluster.Writes()

	// An unchanged state writes nothing.
	s.now = s.now.Add(time.Minute)
	rep = s.reconcile(nil)
	if n := rep.Clusters[0].Writes(); n != 0 || len(rep.Clusters[0].Changes) != 0 || s.cluster.Writes() != writes {
		t.Fatalf("second reconcile changed %d things: %+v", n, rep.Clusters[0].Changes)
	}

	// The pipeline advances as steps succeed.
	if err := s.cluster.Finish("nlp/prepare-data", "1", true, ""); err != nil {
		t.Fatal(err)
	}
	s.reconcile(nil)
	s.expectPhases(map[string]reconcile.Phase{"nlp/prepare-data": reconcile.PhaseSucceeded, "nlp/finetune": reconcile.PhaseRunning})
	// A finished run never runs again.
	s.reconcile(nil)
	if r, _ := s.cluster.Run("nlp/prepare-data", "1"); r.Attempts != 1 {
		t.Fatalf("prepare-data ran %d times", r.Attempts)
	}
}

// TestPrunableIsApplied: with no change due, the engine still applies
// when the cluster has the storage of ended runs to delete, and not again
// once it is gone.
func TestPrunableIsApplied(t *testing.T) {
	s := newScenario(t)
	s.reconcile(nil)
	s.reconcile(nil)
	applies := s.cluster.Applies()
	s.reconcile(nil)
	if s.cluster.Applies() != applies {
		t.Fatalf("a converged reconcile applied")
	}
	s.cluster.SetPrunable(2)
	if rep := s.reconcile(nil); len(rep.Clusters[0].Changes) != 0 || s.cluster.Applies() != applies+1 {
		t.Fatalf("with 2 prunable and %d changes: %d applies, want 1", len(rep.Clusters[0].Changes), s.cluster.Applies()-applies)
	}
	s.reconcile(nil)
	if s.cluster.Applies() != applies+1 {
		t.Errorf("applied again with nothing to prune")
	}
}

func TestInvalidCommitChangesNothing(t *testing.T) {
	s := newScenario(t)
	s.reconcile(nil)
	writes := s.cluster.Writes()
	// A broken commit that would also remove a workload and add another.
	rep := s.reconcile(map[string]string{
		"workloads/vision/train.cue": "",
		"workloads/nlp/pipeline.cue": "package nlp\nworkloads: nlp: broken: {kind: \"batch\", image: 1}\n",
	})
	if rep.Invalid == nil {
		t.Fatal("a broken commit was not reported invalid")
	}
	if s.cluster.Writes() != writes {
		t.Fatalf("a broken commit changed the cluster: %+v", rep.Clusters[0].Changes)
	}
	s.expectPhases(map[string]reconcile.Phase{"vision/resnet-train": reconcile.PhaseRunning})
}

func TestRemovedWorkloadStops(t *testing.T) {
	s := newScenario(t)
	s.reconcile(nil)
	s.reconcile(map[string]string{"workloads/serving/services.cue": `package serving
workloads: serving: "docs-site": {kind: "service", image: "nginx:1.27", command: ["nginx"], resources: {cpu: "500m", memory: "512Mi", flavor: "cpu"}}
`})
	if got := s.phase("serving/chat-api", "1"); got != reconcile.PhaseStopped {
		t.Fatalf("chat-api left Git but is %q", got)
	}
	// docs-site's spec changed: it is restarted with the new one.
	r, _ := s.cluster.Run("serving/docs-site", "1")
	if r.Attempts != 2 {
		t.Fatalf("docs-site attempts %d, want a restart for the new spec", r.Attempts)
	}
}

func TestRetriesAndRestarts(t *testing.T) {
	s := newScenario(t)
	s.reconcile(nil)
	// resnet-train has retries: 2. It fails: it waits for the backoff, then
	// runs again.
	if err := s.cluster.Finish("vision/resnet-train", "1", false, "exit code 1"); err != nil {
		t.Fatal(err)
	}
	s.now = s.now.Add(time.Second)
	rep := s.reconcile(nil)
	d, _ := rep.Clusters[0].Plan.Decision("vision/resnet-train")
	if d.Action != berth.ActionWait || d.Reason.Code != berth.ReasonBackoff {
		t.Fatalf("after a failure: %s %+v, want waiting for the backoff", d.Action, d.Reason)
	}
	s.now = s.now.Add(time.Minute)
	s.reconcile(nil)
	r, _ := s.cluster.Run("vision/resnet-train", "1")
	if r.Phase != reconcile.PhaseRunning || r.Attempts != 2 {
		t.Fatalf("after the backoff: %s attempt %d, want running attempt 2", r.Phase, r.Attempts)
	}
	// Two more failures exhaust retries: 2.
	for range 2 {
		s.cluster.Finish("vision/resnet-train", "1", false, "exit code 1")
		s.now = s.now.Add(10 * time.Minute)
		s.reconcile(nil)
	}
	r, _ = s.cluster.Run("vision/resnet-train", "1")
	if r.Phase != reconcile.PhaseFailed || r.Attempts != 3 {
		t.Fatalf("after 3 failures: %s attempt %d, want failed for good after 3 attempts", r.Phase, r.Attempts)
	}
	// A service that dies is restarted.
	s.cluster.Finish("serving/docs-site", "1", false, "exit code 137")
	s.now = s.now.Add(time.Hour)
	s.reconcile(nil)
	if r, _ := s.cluster.Run("serving/docs-site", "1"); r.Phase != reconcile.PhaseRunning || r.Attempts != 2 {
		t.Fatalf("docs-site: %s attempt %d, want restarted", r.Phase, r.Attempts)
	}
}

func TestPeriodicTicks(t *testing.T) {
	s := newScenario(t)
	s.reconcile(nil)
	tick := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	runID := schedule.TickRunID("1", tick)
	s.now = tick.Add(30 * time.Second)
	s.reconcile(nil)
	r, ok := s.cluster.Run("nlp/nightly-eval", runID)
	if !ok || r.Phase != reconcile.PhaseRunning {
		t.Fatalf("tick %s: %+v, want running", runID, r)
	}
	s.cluster.Finish("nlp/nightly-eval", runID, true, "")
	s.now = tick.Add(5 * time.Minute)
	s.reconcile(nil)
	if r, _ := s.cluster.Run("nlp/nightly-eval", runID); r.Attempts != 1 || r.Phase != reconcile.PhaseSucceeded {
		t.Fatalf("the tick ran again: %+v", r)
	}
	// Berth down over the next tick (missed by more than the deadline):
	// skipped, not run late.
	s.now = tick.Add(24*time.Hour + time.Hour)
	s.reconcile(nil)
	if _, ok := s.cluster.Run("nlp/nightly-eval", schedule.TickRunID("1", tick.Add(24*time.Hour))); ok {
		t.Fatal("a tick missed by an hour was run")
	}
}

// countingLoader counts loads.
type countingLoader struct {
	reconcile.Loader
	n int
}

func (l *countingLoader) Load(fsys fs.FS) (*berth.Config, error) {
	l.n++
	return l.Loader.Load(fsys)
}

func TestInvalidRevisionIsLoadedOnce(t *testing.T) {
	l := &countingLoader{Loader: cue.NewLoader(cue.Options{})}
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{fake.NewCluster("box")}, Loader: l})
	rev := reconcile.Revision{Name: "main@sha1:bad", Commit: "bad", FS: demoFS(t, map[string]string{
		"workloads/nlp/pipeline.cue": "package nlp\nworkloads: nlp: x: {kind: \"batch\", image: 1}\n"})}
	for range 3 {
		if rep := e.ReconcileRevision(context.Background(), rev); rep.Invalid == nil {
			t.Fatal("not reported invalid")
		}
	}
	if l.n != 1 {
		t.Fatalf("an invalid revision was evaluated %d times; resyncs must reuse the result", l.n)
	}
}
