package local

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// TestReplicasGetPortsOfTheirOwn starts two replicas of a service with two
// named ports: each is told its own ports through PORT and
// BERTH_PORT_<NAME>, so both can listen on one machine.
func TestReplicasGetPortsOfTheirOwn(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("api", `echo "$PORT $BERTH_PORT_HTTP $BERTH_PORT_METRICS"; sleep 60`).Kind(berth.KindService).Obj()
	w.Replicas = 2
	w.Env = berth.EnvOf(map[string]string{"PORT": "8080"}) // berth's own wins
	w.Ports = []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "metrics", Port: 9090, Protocol: "TCP"}}
	apply(t, c, change(reconcile.OpStart, w, cpuOnly(), cpuOnly()))
	t.Cleanup(func() { apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over")) })
	seen := map[string]bool{}
	for pod := range 2 {
		f := strings.Fields(waitFile(t, filepath.Join(c.StateDir(), podDir(w.ID(), "1", 1, pod), fileStdout), "\n"))
		if len(f) != 3 || f[0] != f[1] || f[1] == f[2] {
			t.Fatalf("pod %d: PORT BERTH_PORT_HTTP BERTH_PORT_METRICS = %q, want PORT = BERTH_PORT_HTTP != BERTH_PORT_METRICS", pod, f)
		}
		for _, p := range f[1:] {
			if n, err := strconv.Atoi(p); err != nil || n == 8080 || n == 9090 {
				t.Errorf("pod %d: port %q, want a free port of berth's, not the declared one", pod, p)
			}
			if seen[p] {
				t.Errorf("pod %d: port %s given twice", pod, p)
			}
			seen[p] = true
		}
	}
}

// webService is a service of two replicas of fixtures/replica (this test
// binary run as "replica"), ready once /healthz passes, exposed on
// hostPort.
func webService(version string, readyAfter time.Duration, hostPort int) berth.Workload {
	w := batch("web", "").Kind(berth.KindService).Obj()
	w.Command = []string{os.Args[0], "replica"}
	w.Replicas = 2
	w.Env = berth.EnvOf(map[string]string{"VERSION": version, "READY_AFTER": readyAfter.String()})
	w.Ports = []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}}
	w.Health = &berth.Health{Readiness: &berth.Probe{Path: "/healthz", Period: berth.Duration(100 * time.Millisecond),
		Timeout: berth.Duration(time.Second), FailureThreshold: 1}}
	w.Expose = &berth.Expose{HostPort: hostPort}
	return w
}

// TestRollingUpdateThroughTheProxy runs a service of two real HTTP
// replicas behind berth's proxy on its host port, and changes its spec
// while requests go through the proxy without pause: the new replicas
// start beside the old, take a while to pass readiness, and only then
// replace them. Not one request fails.
func TestRollingUpdateThroughTheProxy(t *testing.T) {
	c := newCluster(t, t.TempDir())
	hostPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	v1 := webService("1", 0, hostPort)
	apply(t, c, change(reconcile.OpStart, v1, cpuOnly(), cpuOnly()))
	t.Cleanup(func() { apply(t, c, stopChange(v1, reconcile.PhaseStopped, "test over")) })
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if body, err := getBody(client, url); err == nil && body == "v1" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the proxy never answered v1: %q, %v", body, err)
		}
		observe(t, c) // Observe routes the pods that have started
		time.Sleep(50 * time.Millisecond)
	}

	var total, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	versions := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				body, err := getBody(client, url)
				mu.Lock()
				if err != nil {
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					versions[body]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	v2 := webService("2", 500*time.Millisecond, hostPort)
	if got := apply(t, c, change(reconcile.OpRestart, v2, cpuOnly(), cpuOnly())); got[0] != reconcile.OutcomeConfigured {
		t.Errorf("restart: %s, want configured", got[0])
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed through the rollout; first: %v", n, total.Load(), firstErr)
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Errorf("answers by version %v, want v1 before and v2 after", versions)
	}
	if body, err := getBody(client, url); body != "v2" {
		t.Errorf("after the rollout the proxy answers %q, %v; want v2", body, err)
	}
	for pod := range 2 {
		if st, err := probePod(filepath.Join(c.StateDir(), podDir(v1.ID(), "1", 1, pod))); err != nil || st.state == podLive {
			t.Errorf("old pod %d: state %d (%v), want ended", pod, st.state, err)
		}
	}
	t.Logf("%d requests through the rollout, %d failed, by version %v", total.Load(), failed.Load(), versions)
}

func getBody(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

// TestLivenessFailureStopsThePod runs a replica that listens on nothing:
// its liveness probe (a TCP check of its port) fails, and berth stops it
// so that it is restarted.
func TestLivenessFailureStopsThePod(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("deaf", "exec sleep 60").Kind(berth.KindService).Obj()
	w.Ports = []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}}
	w.Health = &berth.Health{Liveness: &berth.Probe{Period: berth.Duration(50 * time.Millisecond),
		Timeout: berth.Duration(time.Second), FailureThreshold: 2}}
	apply(t, c, change(reconcile.OpStart, w, cpuOnly()))
	t.Cleanup(func() { apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over")) })
	got := waitFile(t, filepath.Join(c.StateDir(), podDir(w.ID(), "1", 1, 0), fileExit), "finishedAt")
	if !strings.Contains(got, "SIGTERM") && !strings.Contains(got, "terminated") {
		t.Errorf("exit.json %s, want the pod terminated", got)
	}
}
