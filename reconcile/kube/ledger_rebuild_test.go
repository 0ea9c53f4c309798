package kube_test

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// TestLedgerRebuildFromObjects garbles a team's ledger, rebuilds it from
// the Jobs and Deployments, and reconciles again: the finished job is not
// run again and the service is not restarted.
func TestLedgerRebuildFromObjects(t *testing.T) {
	s := newScenario(t, "rebuild", gpuNode())
	s.team(8, `
workloads: ml: done: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "1s", resources: {gpu: 1, flavor: "h100"}}
workloads: ml: web: {kind: "service", image: "img:1", resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}}
`)
	s.until("done succeeded, web runs", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/done") == reconcile.PhaseSucceeded && phase(cr, "ml/web") == reconcile.PhaseRunning
	})
	jobUID := s.job("done-1").UID

	// Every entry garbled, and one more for a run that has no object.
	cms := s.env.Client.CoreV1().ConfigMaps(s.ns("ml"))
	cm, err := cms.Get(s.ctx, kube.LedgerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"ghost.1": "{garbled"}
	for k := range cm.Data {
		data[k] = "{garbled"
	}
	patch, _ := json.Marshal(map[string]any{"data": data})
	if _, err := cms.Patch(s.ctx, kube.LedgerName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	damaged := func() int {
		t.Helper()
		checks, err := s.cluster.CheckLedger(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range checks {
			n += len(c.Problems)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for damaged() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // the informer sees the patch
	}
	if n := damaged(); n != len(data) {
		t.Fatalf("check found %d damaged entries, want %d", n, len(data))
	}

	now := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	rebuilt, err := s.cluster.RebuildLedger(s.ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rebuilt) != 1 || rebuilt[0].Derived != 2 || len(rebuilt[0].Lost) != 1 || rebuilt[0].Lost[0] != "ghost.1" ||
		rebuilt[0].Copy != "berth-ledger-damaged-20261102t030405z" {
		t.Fatalf("rebuilt %+v, want 2 runs derived, ghost.1 lost, a copy", rebuilt)
	}
	if _, err := cms.Get(s.ctx, rebuilt[0].Copy, metav1.GetOptions{}); err != nil {
		t.Fatalf("the copy of the damaged ledger: %v", err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for damaged() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := damaged(); n != 0 {
		t.Fatalf("%d damaged entries after the rebuild", n)
	}
	for range 3 {
		cr := s.mustReconcile()
		if p := phase(cr, "ml/done"); p != reconcile.PhaseSucceeded {
			t.Fatalf("done after the rebuild: %s", p)
		}
		if r := run(cr, "ml/web"); r.Phase != reconcile.PhaseRunning || r.Attempts > 1 {
			t.Fatalf("web after the rebuild: %s, %d attempts", r.Phase, r.Attempts)
		}
	}
	if j := s.job("done-1"); j.UID != jobUID {
		t.Fatal("done's Job was created again")
	}
}
