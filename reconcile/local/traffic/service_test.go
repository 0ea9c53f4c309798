package traffic

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
)

// service is a workload of two replicas whose readiness is /healthz,
// checked every 50ms; version goes into the replicas' env.
func service(version string, readyAfter time.Duration) berth.Workload {
	return berth.Workload{
		Name: "chat-api", Team: "serving", Kind: berth.KindService, Replicas: 2,
		Env:   berth.EnvOf(map[string]string{"VERSION": version, "READY_AFTER": readyAfter.String()}),
		Ports: []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}},
		Health: &berth.Health{
			Readiness: &berth.Probe{Path: "/healthz", Period: berth.Duration(50 * time.Millisecond),
				Timeout: berth.Duration(time.Second), FailureThreshold: 1},
			Liveness: &berth.Probe{Period: berth.Duration(50 * time.Millisecond),
				Timeout: berth.Duration(time.Second), FailureThreshold: 3, StartupGrace: berth.Duration(5 * time.Second)},
		},
	}
}

func startService(t *testing.T, w berth.Workload) (*Service, *procStarter, string) {
	t.Helper()
	procs := newProcStarter()
	t.Cleanup(procs.closeAll)
	pool := NewPool(string(w.ID()))
	svc := NewService(w, ServiceOptions{Starter: procs, Pool: pool, ReadyTimeout: 30 * time.Second})
	t.Cleanup(func() { svc.Close(context.Background()) })
	if err := svc.Scale(context.Background(), w.Replicas); err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(pool.Proxy(nil))
	t.Cleanup(proxy.Close)
	return svc, procs, proxy.URL
}

// TestRolloutFailsNoRequest rolls a service of two replicas to a new
// version while requests go through the proxy without pause: the new
// replicas take a while to become ready, and not one request fails.
func TestRolloutFailsNoRequest(t *testing.T) {
	svc, _, url := startService(t, service("1", 0))
	stop := make(chan struct{})
	l := runLoad(url+"/", 8, stop)
	time.Sleep(100 * time.Millisecond)
	if err := svc.Roll(context.Background(), service("2", 300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	l.wait()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed through the rollout; first: %v", n, l.total.Load(), l.firstErr)
	}
	if l.bodies["v1"] == 0 || l.bodies["v2"] == 0 {
		t.Errorf("responses by version: %v, want both v1 (before) and v2 (after)", l.bodies)
	}
	if got := len(svc.Replicas()); got != 2 {
		t.Errorf("%d replicas after the rollout, want 2", got)
	}
	body, err := get(httpClient(), url+"/")
	if err != nil || body != "v2" {
		t.Errorf("after the rollout: %q, %v; want v2", body, err)
	}
	t.Logf("%d requests, %d failed, by version %v", l.total.Load(), l.failed.Load(), l.bodies)
}

// TestCrashedReplicaIsReplaced kills a replica under load: requests that
// reached no replica go to the other, and a new replica takes the dead
// one's place.
func TestCrashedReplicaIsReplaced(t *testing.T) {
	svc, procs, url := startService(t, service("1", 0))
	stop := make(chan struct{})
	l := runLoad(url+"/", 8, stop)
	time.Sleep(100 * time.Millisecond)
	procs.live()[0].kill()
	deadline := time.Now().Add(30 * time.Second)
	for (svc.Restarts() < 1 || len(svc.opts.Pool.Ready()) < 2) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	l.wait()
	if svc.Restarts() != 1 || len(svc.opts.Pool.Ready()) != 2 {
		t.Fatalf("after a crash: %d restarts, %d ready replicas; want 1 and 2", svc.Restarts(), len(svc.opts.Pool.Ready()))
	}
	t.Logf("%d requests, %d failed through a crash (first: %v)", l.total.Load(), l.failed.Load(), l.firstErr)
}

// TestRolloutBelowTheReadyCountDropsRequests is the rollout the default
// avoids: maxUnavailable 2 stops both old replicas before the new ones are
// ready, and requests fail with the proxy's named reason. It shows the
// load above would see a gap.
func TestRolloutBelowTheReadyCountDropsRequests(t *testing.T) {
	svc, _, url := startService(t, service("1", 0))
	stop := make(chan struct{})
	l := runLoad(url+"/", 8, stop)
	time.Sleep(100 * time.Millisecond)
	w := service("2", 300*time.Millisecond)
	w.Rollout = &berth.Rollout{MaxSurge: 0, MaxUnavailable: 2}
	if err := svc.Roll(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	close(stop)
	l.wait()
	if l.failed.Load() == 0 {
		t.Fatalf("no request failed while no replica was ready (%d requests)", l.total.Load())
	}
	if want := "503 Service Unavailable: service serving/chat-api: no ready replica\n"; l.firstErr.Error() != want {
		t.Errorf("first failure %q, want %q", l.firstErr, want)
	}
}
