package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-gpu/berth/status"
)

// TestAutoscaleThroughTheProxy runs berth serve on a repository with an
// autoscaled GPU service (1 to 4 replicas, 50 requests a second each)
// behind berth's proxy, in a team with 2 GPUs: under load the autoscaler
// asks for more replicas, the second is admitted and serves, the third
// waits with the quota's reason; when the load ends, the extra replica is
// stopped after the scale-down window. The load is hey's where it is
// installed (its figures in the log), else a Go client's.
func TestAutoscaleThroughTheProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs berth serve and real replicas")
	}
	e := newE2E(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e.write("platform/platform.cue", `package platform

clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: h100: gpuModel: "H100"
teams: t: {
	owners: ["@t"]
	quota: [{flavor: "h100", gpu: nominal: 2}]
}
`)
	e.write("jobs/api.cue", fmt.Sprintf(`package jobs

workloads: t: api: {
	kind: "service"
	command: [%q, "replica"]
	env: VERSION: "1"
	ports: [{name: "http", port: 8080}]
	health: readiness: {path: "/healthz", period: "200ms", failureThreshold: 1}
	expose: hostPort: %d
	resources: {gpu: 1, flavor: "h100"}
	autoscale: {min: 1, max: 4, targetRPS: 50, scaleDownWindow: "4s"}
}
`, exe, hostPort))
	e.commit("an autoscaled service")
	e.start()
	e.waitState("t/api@1", "running")
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	waitOK(t, url)

	// Load until replica 2 serves and replica 3 waits, or a minute.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var heyOut strings.Builder
	wg.Add(1)
	go func() {
		defer wg.Done()
		if hey, err := exec.LookPath("hey"); err == nil {
			// Rounds of 3 s, so the load ends soon after the test has
			// seen what it waits for.
			for {
				select {
				case <-stop:
					return
				default:
				}
				out, _ := exec.Command(hey, "-z", "3s", "-c", "8", url).CombinedOutput()
				heyOut.Reset()
				heyOut.Write(out)
			}
		}
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			resp, err := client.Get(url)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	var third status.WorkloadStatus
	loadStart := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for {
		second, _ := serveWorkload(e.state, "t/api", "1.replica-2")
		third, _ = serveWorkload(e.state, "t/api", "1.replica-3")
		if second.State == "running" && third.State == "queued" {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("under load: replica 2 %q, replica 3 %q (%s); want running and queued", second.State, third.State, third.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
	scaledUp := time.Since(loadStart)
	close(stop)
	wg.Wait()
	loadEnd := time.Now()
	t.Logf("load started -> replica 2 serving and replica 3 waiting: %s", scaledUp.Round(100*time.Millisecond))
	if !strings.HasPrefix(third.Reason, "insufficient unused h100 quota in team t") {
		t.Errorf("replica 3 waits for %q, want the team's quota", third.Reason)
	}
	if out := heyOut.String(); out != "" {
		t.Logf("hey -z 3s -c 8, the last round:\n%s", heySummary(out))
	} else {
		t.Logf("Go client: %d requests, %d failed", sent.Load(), failed.Load())
	}

	// No load: after the 4 s window, replica 2 is stopped, and replica 3
	// no longer waits.
	deadline = time.Now().Add(60 * time.Second)
	for {
		second, _ := serveWorkload(e.state, "t/api", "1.replica-2")
		third, _ := serveWorkload(e.state, "t/api", "1.replica-3")
		if second.State == "stopped" && third.State != "queued" {
			t.Logf("load ended -> replica 2 stopped: %s (scale-down window 4s)", time.Since(loadEnd).Round(100*time.Millisecond))
			if second.Reason != "its autoscaler asks for 1 replicas now" {
				t.Errorf("replica 2 stopped for %q, want scaled down", second.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without load: replica 2 %q (%s), replica 3 %q; want stopped and not waiting", second.State, second.Reason, third.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if base, _ := serveWorkload(e.state, "t/api", "1"); base.State != "running" {
		t.Errorf("the service's own run is %s, want running", base.State)
	}
}

func waitOK(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

var heySummaryLines = regexp.MustCompile(`(?m)^\s*(Requests/sec:.*|Total:.*|\s*50% in .*|\s*99% in .*|\s*\[\d+\]\s+\d+ responses)$`)

func heySummary(out string) string {
	return strings.Join(heySummaryLines.FindAllString(out, -1), "\n")
}
