package reconcile_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// The engine with the real local backend: real processes, a simulated box.

const localPlatform = `package p
clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: h100: gpuModel: "H100"
teams: t: {owners: ["@t"], quota: [{flavor: "h100", gpu: nominal: 4}]}
`

func localEngine(t *testing.T, workloads string) (*reconcile.Engine, *local.Cluster, reconcile.Revision) {
	t.Helper()
	state := t.TempDir()
	c, err := local.New(local.Options{Name: "box", StateDir: state, SimulatedGPUs: "4xH100", GracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRuns(state); c.Close() })
	fsys := fstest.MapFS{"p/p.cue": {Data: []byte(localPlatform)}, "w/w.cue": {Data: []byte("package w\n" + workloads)}}
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{}),
		Schedule: schedule.Options{Backoff: func(int) time.Duration { return 0 }}})
	return e, c, reconcile.Revision{Name: "main@sha1:1", Commit: "1", FS: fsys}
}

// until reconciles every 100 ms until cond holds of the run, or fails.
func until(t *testing.T, e *reconcile.Engine, rev reconcile.Revision, id string, cond func(reconcile.RunState) bool) reconcile.RunState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last reconcile.RunState
	for time.Now().Before(deadline) {
		rep := e.ReconcileRevision(context.Background(), rev)
		if c := rep.Clusters[0]; c.Err == nil && c.Observed != nil {
			if r, ok := c.Observed.Run(berth.RunKey{Workload: berth.WorkloadID(id), RunID: "1"}); ok {
				last = r
				if cond(r) {
					return r
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: condition never held; last %+v", id, last)
	return last
}

func TestServiceReplicaThatDiesIsRestarted(t *testing.T) {
	e, _, rev := localEngine(t, `workloads: t: api: {
	kind: "service", image: "x", replicas: 2
	command: ["sh", "-c", "if [ \"$BERTH_RANK\" = 1 ] && [ \"$BERTH_ATTEMPT\" = 1 ]; then exit 3; fi; while true; do sleep 1; done"]
	resources: {gpu: 1, cpu: 1, memory: "1Gi"}
}
`)
	r := until(t, e, rev, "t/api", func(r reconcile.RunState) bool { return r.Attempts >= 2 && r.PodsRunning == 2 })
	if r.Phase != reconcile.PhaseRunning {
		t.Fatalf("after a replica died: %+v, want running again with both replicas", r)
	}
}

func TestGangThatLosesAWorkerFails(t *testing.T) {
	e, _, rev := localEngine(t, `workloads: t: gang: {
	kind: "training", image: "x", workers: 2, retries: 0
	command: ["sh", "-c", "if [ \"$BERTH_RANK\" = 1 ]; then exit 4; fi; while true; do sleep 1; done"]
	resources: {gpu: 1, cpu: 1, memory: "1Gi"}
}
`)
	r := until(t, e, rev, "t/gang", func(r reconcile.RunState) bool { return r.Phase.Final() })
	if r.Phase != reconcile.PhaseFailed {
		t.Fatalf("a gang that lost a worker: %+v, want failed", r)
	}
}
