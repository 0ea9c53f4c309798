package local

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
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
	w.Autoscale = &berth.Autoscale{Min: 1, Max: 3, TargetRPS: 5, ScaleDownWindow: berth.Duration(window)}
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
	// Four clients for 1.5 s: even on a loaded machine, far more than
	// the 10 requests a second of 2 replicas (max 3).
	var wg sync.WaitGroup
	end := time.Now().Add(1500 * time.Millisecond)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if resp, err := http.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
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

// TestAutoscalerAsksFromGPUUtilisation: a service autoscaled on GPU
// utilisation asks for ceil(replicas x average / target) of the GPUs its
// replicas hold, from the latest NVML reading (GPUs, which `berth serve`
// takes for its history, keeps it); a reading of other GPUs changes
// nothing, and before any reading it asks for what runs.
func TestAutoscalerAsksFromGPUUtilisation(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("llm", "exec sleep 600").Kind(berth.KindInference).Obj()
	w.Replicas = 1
	w.Autoscale = &berth.Autoscale{Min: 1, Max: 4, TargetGPUUtilization: 50}
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{w.ID(): w}}
	apply(t, c, change(reconcile.OpStart, w, gpus(2)))
	t.Cleanup(func() { apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over")) })
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseRunning)

	if n := desired(t, c, cfg, w); n != 1 {
		t.Errorf("before any GPU reading it asks for %d, want the 1 that runs", n)
	}
	at := time.Now()
	reading := func(util map[int]int) {
		at = at.Add(time.Second)
		var gs []GPU
		for i, u := range util {
			gs = append(gs, GPU{Index: i, Utilization: u})
		}
		c.NoteGPUs(gs, at)
	}
	reading(map[int]int{0: 0, 2: 100})
	if n := desired(t, c, cfg, w); n != 2 {
		t.Errorf("its GPU at 100%% of a 50%% target: asks for %d, want 2", n)
	}
	reading(map[int]int{0: 100})
	if n := desired(t, c, cfg, w); n != 2 {
		t.Errorf("a reading without its GPU: asks for %d, want the 2 it asked for", n)
	}
	reading(map[int]int{2: 10})
	if n := desired(t, c, cfg, w); n != 1 {
		t.Errorf("its GPU at 10%%, no scale-down window: asks for %d, want min 1", n)
	}
}
