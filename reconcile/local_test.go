package reconcile_test

import (
	"context"
	"strings"
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
	return localEngineWith(t, localPlatform, workloads)
}

// localEngineWith is localEngine on another platform (clusters, flavors,
// teams) of the same box.
func localEngineWith(t *testing.T, platform, workloads string) (*reconcile.Engine, *local.Cluster, reconcile.Revision) {
	t.Helper()
	state := t.TempDir()
	c, err := local.New(local.Options{Name: "box", StateDir: state, SimulatedGPUs: "4xH100", GracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRuns(state); c.Close() })
	fsys := fstest.MapFS{"p/p.cue": {Data: []byte(platform)}, "w/w.cue": {Data: []byte("package w\n" + workloads)}}
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

// TestResourceGroupsOnTheLocalBackend: a team whose quota has resource
// groups runs a workload that takes cpu and memory from its CPU pool and a
// GPU from h100; the run is observed back with both flavors, its cpu
// charged to the pool, so a second one waits for the pool's cpu quota
// while GPUs are free.
func TestResourceGroupsOnTheLocalBackend(t *testing.T) {
	e, _, rev := localEngineWith(t, `package p
clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: {h100: gpuModel: "H100", "cpu-pool": nodeLabels: {}}
teams: t: {owners: ["@t"], resourceGroups: [
	{coveredResources: ["cpu", "memory"], flavors: [{name: "cpu-pool", resources: [{name: "cpu", nominalQuota: "750m"}, {name: "memory", nominalQuota: "8Gi"}]}]},
	{coveredResources: ["gpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 4}]}]},
]}
`, `workloads: t: {
	a: {kind: "batch", image: "x", command: ["sh", "-c", "while true; do sleep 1; done"], resources: {gpu: 1, cpu: "500m", memory: "1Gi"}}
	b: {kind: "batch", image: "x", command: ["sh", "-c", "while true; do sleep 1; done"], resources: {gpu: 1, cpu: "500m", memory: "1Gi"}}
}
`)
	r := until(t, e, rev, "t/a", func(r reconcile.RunState) bool { return r.Phase == reconcile.PhaseRunning })
	if r.Flavor != "cpu-pool+h100" {
		t.Errorf("a runs on %q, want cpu-pool+h100", r.Flavor)
	}
	rep := e.ReconcileRevision(context.Background(), rev)
	d, _ := rep.Clusters[0].Plan.Decision("t/b")
	if d.Action != berth.ActionQueue || d.Reason == nil || !strings.Contains(d.Reason.Message, "insufficient unused cpu-pool quota in team t: it asks 500m cpu; the team uses 500m of nominal 750m") {
		t.Errorf("b: %s %+v, want queued for the pool's cpu quota", d.Action, d.Reason)
	}
	if a, _ := rep.Clusters[0].Plan.Decision("t/a"); a.Action != berth.ActionKeep || a.Flavors[berth.ResourceGPU] != "h100" || a.Flavors[berth.ResourceCPU] != "cpu-pool" {
		t.Errorf("a: %s on %v, want kept with gpu from h100 and cpu from cpu-pool", a.Action, a.Flavors)
	}
}
