package local

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// desired observes with cfg and returns what the run of w's spec says its
// autoscaler asks for.
func desired(t *testing.T, c *Cluster, cfg *berth.Config, w berth.Workload) int {
	t.Helper()
	obs, err := c.Observe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := obs.Snapshot.ScaleOf(berth.RunKey{Workload: w.ID(), RunID: w.RunID})
	if !ok {
		t.Fatalf("%s: the snapshot says nothing of its autoscaler", w.ID())
	}
	return n
}

// TestAutoscalerAsksFromTheProxysRate: the run of an autoscaled service
// asks for the replicas its proxy's request rate needs (ceil(rate /
// targetRPS), at most max); when the load stops it asks for fewer only
// after its scale-down window. Before a rate is known it asks for what
// runs, so a restart of berth scales nothing.
func TestAutoscalerAsksFromTheProxysRate(t *testing.T) {
	c := newCluster(t, t.TempDir())
	hostPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	w := webService("1", 0, hostPort)
	w.Replicas = 1
	window := 2500 * time.Millisecond
	w.Autoscale = &berth.Autoscale{Min: 1, Max: 3, TargetRPS: 20, ScaleDownWindow: berth.Duration(window)}
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{w.ID(): w}}
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	t.Cleanup(func() { apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over")) })
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	deadline := time.Now().Add(timeout)
	for {
		if resp, err := http.Get(url); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the service never answered through its proxy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := desired(t, c, cfg, w); got != 1 {
		t.Fatalf("before a rate is known: asks %d, want the 1 that runs", got)
	}
	// About 100 requests a second for 1.5 s: 5 replicas' worth, max 3.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if got := desired(t, c, cfg, w); got < 2 {
		t.Fatalf("under load: asks %d, want at least 2", got)
	}
	loadEnded := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if got := desired(t, c, cfg, w); got < 2 {
		t.Errorf("%s after the load, within its %s window: asks %d, want still at least 2", time.Since(loadEnded).Round(100*time.Millisecond), window, got)
	}
	time.Sleep(window)
	if got := desired(t, c, cfg, w); got != 1 {
		t.Errorf("past its scale-down window with no load: asks %d, want 1", got)
	}
}
