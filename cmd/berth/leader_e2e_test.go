package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile/kube"
)

const leaderPlatform = `package platform

clusters: gpu: {backend: "kubernetes", context: "berth-testenv", namespacePrefix: "berth-"}
flavors: h100: gpuModel: "H100"
teams: t: {owners: ["@t"], quota: [{flavor: "h100", gpu: nominal: 64}]}
`

// TestLeaderKilledMidApply: two replicas of berth serve share a Lease on a
// real control plane. Commits land while the leader is SIGKILLed at random
// points of its apply: every run gets exactly one Job (no Job is created
// twice), the standby takes over within its lease, and the cluster
// converges on every commit.
func TestLeaderKilledMidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and two berth serve replicas")
	}
	env := testenv.Kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	nodes, err := env.CreateGPUNodes(ctx, 4, testenv.NodeSpec{GPUs: 8, Product: "NVIDIA-H100-80GB-HBM3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitNodesReady(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "berth-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Every Job berth creates, by name: a second UID for a name is a run
	// started twice.
	var mu sync.Mutex
	uids := map[string]map[types.UID]bool{}
	w, err := env.Client.BatchV1().Jobs("").Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=" + kube.ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			j, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type != watch.Added {
				continue
			}
			mu.Lock()
			k := j.Namespace + "/" + j.Name
			if uids[k] == nil {
				uids[k] = map[types.UID]bool{}
			}
			uids[k][j.UID] = true
			mu.Unlock()
		}
	}()

	e := newE2E(t)
	e.write("platform/platform.cue", leaderPlatform)
	e.commit("platform")
	const lease = 3 * time.Second
	replicas := map[string]*exec.Cmd{}
	start := func(id string) {
		t.Helper()
		cmd := exec.Command(e.bin, "serve", "--repo", e.repo, "--cluster", "gpu", "--state-dir", filepath.Join(e.state, id),
			"--listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0", "--resync", "300ms", "--kubeconfig", env.Kubeconfig,
			"--leader-election-namespace", "berth-system", "--leader-election-lease-duration", lease.String())
		cmd.Env = append(os.Environ(), "POD_NAME="+id)
		f, err := os.OpenFile(filepath.Join(e.state+"-"+id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		replicas[id] = cmd
	}
	defer func() {
		for _, c := range replicas {
			c.Process.Kill()
			c.Wait()
		}
		if t.Failed() {
			for _, id := range []string{"replica-a", "replica-b"} {
				b, _ := os.ReadFile(e.state + "-" + id + ".log")
				t.Logf("%s log (tail):\n%s", id, tail(string(b), 40))
			}
		}
	}()
	holder := func() string {
		l, err := env.Client.CoordinationV1().Leases("berth-system").Get(ctx, "berth-gpu", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		t0 := time.Now()
		for !cond() {
			if time.Since(t0) > limit {
				t.Fatalf("%s: not within %v", what, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(t0)
	}
	start("replica-a")
	start("replica-b")
	waitFor("a replica leads", time.Minute, func() bool { return holder() != "" })

	r := rand.New(rand.NewPCG(11, 11))
	var jobs []string
	var takeovers []time.Duration
	const rounds = 5
	for round := range rounds {
		var src string
		for i := range 6 {
			name := fmt.Sprintf("r%d-j%d", round, i)
			jobs = append(jobs, name)
			src += fmt.Sprintf("workloads: t: %q: {kind: \"batch\", image: \"busybox\", command: [\"true\"], resources: {gpu: 1}}\n", name)
		}
		e.write(fmt.Sprintf("jobs/r%d.cue", round), "package jobs\n"+src)
		e.commit(fmt.Sprintf("round %d", round))
		committed := time.Now()
		// The leader sees the commit within a resync and applies it; kill
		// it somewhere in that window.
		time.Sleep(time.Duration(r.IntN(900)) * time.Millisecond)
		leader := holder()
		other := "replica-a"
		if leader == other {
			other = "replica-b"
		}
		killed := time.Now()
		replicas[leader].Process.Signal(syscall.SIGKILL)
		replicas[leader].Wait()
		delete(replicas, leader)
		took := waitFor("the standby takes over", lease+5*time.Second, func() bool { return holder() == other })
		takeovers = append(takeovers, took)
		t.Logf("round %d: killed %s %v after the commit; %s led %v later", round, leader, killed.Sub(committed).Round(time.Millisecond), other, took.Round(time.Millisecond))
		start(leader)
	}

	// Converged: every run has its Job, once.
	ns := "berth-t"
	waitFor("every run has its Job", 2*time.Minute, func() bool {
		list, err := env.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		have := map[string]bool{}
		for _, j := range list.Items {
			have[j.Labels[kube.LabelWorkload]] = j.Spec.Suspend == nil || !*j.Spec.Suspend
		}
		for _, name := range jobs {
			if !have[name] {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // several resyncs more
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for k, set := range uids {
		if len(set) > 1 {
			dups++
			t.Errorf("Job %s was created %d times", k, len(set))
		}
	}
	if len(uids) < len(jobs) {
		t.Errorf("%d Jobs seen for %d runs", len(uids), len(jobs))
	}
	t.Logf("%d runs, %d Jobs, %d duplicates; takeovers after SIGKILL: %v (lease %v)", len(jobs), len(uids), dups, takeovers, lease)
}
