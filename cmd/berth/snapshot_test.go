package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// TestSnapshotCommand: berth applies the kube demo to a real control plane,
// `berth snapshot` writes what runs there, the file loads as #Snapshot, and
// `berth plan --snapshot` plans from it.
func TestSnapshotCommand(t *testing.T) {
	env := testenv.Kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes, err := env.CreateGPUNodes(ctx, 2, testenv.NodeSpec{GPUs: 8, Product: "NVIDIA-H100-80GB-HBM3",
		MIG: map[string]int{"1g.10gb": 7, "nvidia.com/gpu.shared": 80}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitNodesReady(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../../fixtures/repos/kube-demo")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cue.Load(os.DirFS(repo), cue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.New(kube.Options{Name: "gpu", Config: env.Config, Render: kube.FromCluster(cfg.Clusters["gpu"], repo)})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	eng := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{kc}, Loader: cue.NewLoader(cue.Options{})})
	rep := eng.ReconcileRevision(ctx, reconcile.Revision{Name: "main@sha1:c1", Commit: "c1", FS: os.DirFS(repo)})
	if err := rep.Clusters[0].Err; err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "gpu.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"snapshot", repo, "--cluster", "gpu", "--kubeconfig", env.Kubeconfig, "--file", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("berth snapshot: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "2 nodes") {
		t.Errorf("berth snapshot said %q", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cue.LoadSnapshot(out, data)
	if err != nil {
		t.Fatalf("the snapshot does not load: %v\n%s", err, data)
	}
	if snap.Cluster != "gpu" || len(snap.Nodes) != 2 || len(snap.Running) == 0 {
		t.Fatalf("snapshot: cluster %q, %d nodes, %d running", snap.Cluster, len(snap.Nodes), len(snap.Running))
	}
	for _, n := range snap.Nodes {
		if n.GPUs != 9 || n.GPUModel != "NVIDIA-H100-80GB-HBM3" || len(n.MIG) != 1 || n.MIG[0].Count != 7 {
			t.Errorf("node %s: %d GPUs of %q, MIG %+v; want 8 whole and one in seven 1g.10gb slices", n.Name, n.GPUs, n.GPUModel, n.MIG)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"plan", repo, "--snapshot", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("berth plan --snapshot: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "resnet-train") {
		t.Errorf("the plan does not mention resnet-train:\n%s", stdout.String())
	}

	// An unknown cluster is the caller's mistake.
	if code := run([]string{"snapshot", repo, "--cluster", "nope", "--kubeconfig", env.Kubeconfig}, &stdout, &stderr); code != exitError {
		t.Errorf("snapshot of an unknown cluster: exit %d, want %d", code, exitError)
	}
}
