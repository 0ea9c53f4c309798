package kube

import (
	"bytes"
	"flag"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	goldens "github.com/berth-gpu/berth/fixtures/golden"
	"github.com/berth-gpu/berth/reconcile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// kubeDemo is fixtures/repos/kube-demo, loaded.
func kubeDemo(t testing.TB) *berth.Config {
	t.Helper()
	cfg, err := cue.Load(os.DirFS(kubeDemoDir), cue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const kubeDemoDir = "../../fixtures/repos/kube-demo"

var renderOpts = RenderOptions{Repository: "https://git.example.com/acme/gpu-platform", GPUToleration: true}

func golden(t *testing.T, name string, objs []*unstructured.Unstructured) {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	goldens.Check(t, filepath.Join("testdata", name+".golden"), buf.Bytes(), *update)
}

func TestRender(t *testing.T) {
	cfg := kubeDemo(t)
	w := func(id string) berth.Workload {
		wl, ok := cfg.Workloads[berth.WorkloadID(id)]
		if !ok {
			t.Fatalf("no workload %s", id)
		}
		return wl
	}
	t0 := build.T0
	h100 := cfg.Flavors["h100"].NodeLabels
	place := func(node string, gpus ...int) berth.Placement {
		return berth.Placement{Node: node, GPUs: gpus, MIG: []berth.MIGSlice{}}
	}
	run := func(id string) Run {
		wl := w(id)
		return Run{Workload: wl, RunID: wl.RunID, Digest: berth.SpecDigest(wl), Path: wl.Pos.String(),
			Commit: "main@sha1:4f2a9c1", Priority: 100, QueuedSince: t0}
	}
	cases := map[string]Run{}

	r := run("nlp/prepare-data")
	r.Flavor = "cpu"
	cases["batch-queued"] = r

	r = run("nlp/prepare-data")
	r.Flavor, r.Started, r.StartedAt, r.Attempts = "cpu", true, t0.Add(time.Minute), 1
	r.Placements = []berth.Placement{place("kwok-gpu-0001")}
	cases["batch-started"] = r

	r = run("vision/resnet-train")
	r.Flavor, r.FlavorLabels, r.Started, r.StartedAt, r.Attempts = "h100", h100, true, t0.Add(time.Minute), 1
	r.Placements = []berth.Placement{place("kwok-gpu-0001", 0), place("kwok-gpu-0002", 3)}
	cases["training-gang"] = r

	r = run("vision/resnet-train")
	r.Flavor, r.Attempts = "h100", 1
	r.Phase, r.Reason, r.StoppedAt = reconcile.PhasePreempted, "preempted by nlp/finetune (PreemptedWithinTeam)", t0.Add(2*time.Minute)
	cases["training-preempted"] = r

	r = run("serving/chat-api")
	r.Priority, r.Flavor, r.Started, r.StartedAt, r.Attempts = 1000, "h100", true, t0, 1
	r.Placements = []berth.Placement{{Node: "kwok-gpu-0001", GPUs: []int{4}, GPUFraction: 0.5}, {Node: "kwok-gpu-0001", GPUs: []int{4}, GPUFraction: 0.5}}
	cases["inference-fraction"] = r

	r = run("serving/docs-site")
	r.Flavor, r.Started, r.StartedAt, r.Attempts, r.OmitReplicas = "cpu", true, t0, 2, true
	cases["service-autoscaled"] = r

	r = run("vision/label-notebook")
	r.Flavor, r.Started, r.StartedAt, r.Attempts = "h100-1g", true, t0, 1
	r.Placements = []berth.Placement{{Node: "kwok-gpu-0000", GPUs: []int{}, MIG: []berth.MIGSlice{{GPU: 8, Profile: "1g.10gb"}}}}
	cases["notebook-mig"] = r

	// A notebook that names no port and no command: the image's Jupyter
	// on 8888, behind a Service.
	r.Workload.Name, r.Workload.Ports, r.Workload.Command = "explore", nil, nil
	r.Digest = berth.SpecDigest(r.Workload)
	cases["notebook-jupyter"] = r

	roles := rolesRun(t0)
	cases["roles-queued"] = roles

	r = rolesRun(t0)
	r.Started, r.StartedAt, r.Attempts = true, t0.Add(time.Minute), 1
	r.Flavor = "cpu"
	r.Roles = []RoleRun{
		{Role: "launcher", Flavor: "cpu", FlavorLabels: map[string]string{"berth.dev/pool": "cpu"}, Placements: []berth.Placement{place("kwok-cpu-0001")}},
		{Role: "worker", Flavor: "h100", FlavorLabels: map[string]string{"berth.dev/pool": "h100"}, Placements: []berth.Placement{
			place("kwok-gpu-0001", 0), place("kwok-gpu-0001", 1), place("kwok-gpu-0002", 0), place("kwok-gpu-0002", 1)}},
	}
	cases["roles-started"] = r

	r.Started = false
	r.Phase, r.Reason, r.StoppedAt = reconcile.PhasePreempted, "preempted by vision/resnet-train (PreemptedWithinTeam)", t0.Add(2*time.Minute)
	cases["roles-preempted"] = r

	// chat-api exposed: an Ingress as the cluster's ingress says, or an
	// HTTPRoute on its gateway.
	exposed := run("serving/chat-api")
	exposed.Priority, exposed.Flavor, exposed.Started, exposed.StartedAt, exposed.Attempts = 1000, "h100", true, t0, 1
	ingressOpts, gatewayOpts := renderOpts, renderOpts
	ingressOpts.Ingress = cfg.Clusters["gpu"].Ingress
	gatewayOpts.Ingress = &berth.Ingress{Gateway: "infra/public"}
	opts := map[string]RenderOptions{"service-ingress": ingressOpts, "service-httproute": gatewayOpts}
	cases["service-ingress"], cases["service-httproute"] = exposed, exposed

	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			o, ok := opts[name]
			if !ok {
				o = renderOpts
			}
			objs, err := Render(o, r)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, objs)
		})
	}

	t.Run("team", func(t *testing.T) {
		objs, err := RenderTeam(renderOpts, cfg, "vision")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "team-vision", objs)
		objs, err = RenderTeam(renderOpts, cfg, "serving")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "team-serving", objs)
		objs, err = RenderTeam(renderOpts, nil, "unknown")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "team-unknown", objs)
	})
}

// Rendering is pure: the same run renders the same bytes, and a run
// rendered from the annotations berth wrote is the run it was.
func TestRenderRoundTrip(t *testing.T) {
	cfg := kubeDemo(t)
	wl := cfg.Workloads["serving/chat-api"]
	r := Run{Workload: wl, RunID: "1", Digest: berth.SpecDigest(wl), Path: wl.Pos.String(), Commit: "c1",
		Flavor: "h100", Priority: 1000, Started: true, StartedAt: build.T0, QueuedSince: build.T0, Attempts: 3,
		Placements: []berth.Placement{{Node: "n1", GPUs: []int{0}, GPUFraction: 0.5, MIG: []berth.MIGSlice{}}}}
	objs, err := Render(renderOpts, r)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := runFromAnnotations(objs[0].GetAnnotations())
	if !ok {
		t.Fatal("the annotations do not give the run back")
	}
	back.Started = true
	back.Workload.Pos = wl.Pos
	if d := cmp.Diff(r, back, cmp.Comparer(func(a, b berth.Quantity) bool { return a.String() == b.String() })); d != "" {
		t.Errorf("run from annotations (-rendered +read back):\n%s", d)
	}
	again, err := Render(renderOpts, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range objs {
		if d := cmp.Diff(objs[i].Object, again[i].Object); d != "" {
			t.Errorf("rendering twice differs:\n%s", d)
		}
	}
}

func TestJobName(t *testing.T) {
	long := berth.WorkloadID("vision/a-very-long-workload-name-that-goes-on-and-on-and-on")
	for _, tc := range []struct {
		id    berth.WorkloadID
		runID string
		want  string
	}{
		{"vision/train", "1", "train-1"},
		{"nlp/nightly-eval", "1-20261122t0300", "nightly-eval-1-20261122t0300"},
		{"vision/train", "Run_2", "train-run-2-1fa2d0a3e4"},
		{long, "1", "a-very-long-workload-name-that-goes-on-an-656908ea33"},
	} {
		got := JobName(berth.RunKey{Workload: tc.id, RunID: tc.runID})
		if len(got) > maxJobName {
			t.Errorf("JobName(%s, %s) = %q: %d characters", tc.id, tc.runID, got, len(got))
		}
		if got != tc.want && !*update {
			t.Errorf("JobName(%s, %s) = %q, want %q", tc.id, tc.runID, got, tc.want)
		}
	}
}

// rolesRun is a queued run of an MPI-style workload of two roles: one
// launcher on the CPU pool, four workers of one GPU each.
func rolesRun(t0 time.Time) Run {
	w := build.Workload("vision", "mpi-train").Image("mpioperator/mpi-pi:openmpi").Command("/home/mpiuser/pi").
		Env("NCCL_DEBUG", "INFO").MaxDuration("2h").
		Roles(
			build.Role("launcher", 1).Command("mpirun", "-n", "4", "/home/mpiuser/pi").Flavor("cpu").Env("NCCL_DEBUG", "WARN"),
			build.Role("worker", 4).GPUs(1).CPU("8").Memory("64Gi").Select("topology.kubernetes.io/zone", "eu-1a"),
		).Obj()
	return Run{Workload: w, RunID: w.RunID, Digest: berth.SpecDigest(w), Path: "workloads/vision/mpi.cue:3:1",
		Commit: "main@sha1:4f2a9c1", Priority: 100, QueuedSince: t0}
}

// A gang admitted with fewer workers than it asks (minWorkers) runs as many
// pods as berth placed, and tells them so; queued, it asks for all.
func TestRenderPartialGang(t *testing.T) {
	cfg := kubeDemo(t)
	wl := cfg.Workloads["vision/resnet-train"]
	wl.Workers, wl.MinWorkers = 4, 2
	r := Run{Workload: wl, RunID: "1", Digest: berth.SpecDigest(wl), Path: wl.Pos.String(), Commit: "c1",
		Flavor: "h100", Priority: 100, QueuedSince: build.T0}
	count := func(r Run) (int64, string) {
		t.Helper()
		objs, err := Render(renderOpts, r)
		if err != nil {
			t.Fatal(err)
		}
		n, _, _ := unstructured.NestedInt64(objs[0].Object, "spec", "completions")
		containers, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "containers")
		for _, e := range containers[0].(map[string]any)["env"].([]any) {
			if m := e.(map[string]any); m["name"] == "WORLD_SIZE" {
				return n, m["value"].(string)
			}
		}
		return n, ""
	}
	if n, ws := count(r); n != 4 || ws != "4" {
		t.Errorf("queued: completions %d, WORLD_SIZE %q; want 4 and 4", n, ws)
	}
	r.Started, r.StartedAt, r.Attempts = true, build.T0, 1
	r.Placements = []berth.Placement{{Node: "a", GPUs: []int{0}, MIG: []berth.MIGSlice{}}, {Node: "a", GPUs: []int{1}, MIG: []berth.MIGSlice{}}}
	if n, ws := count(r); n != 2 || ws != "2" {
		t.Errorf("admitted with 2 of 4 workers: completions %d, WORLD_SIZE %q; want 2 and 2", n, ws)
	}
}

// TestScaleWant: what a HorizontalPodAutoscaler asks for is its desired
// count, or one more than its max while it is held there.
func TestScaleWant(t *testing.T) {
	limited := autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingLimited, Status: "True", Reason: "TooManyReplicas"}
	for _, tc := range []struct {
		name         string
		max, desired int32
		conds        []autoscalingv2.HorizontalPodAutoscalerCondition
		want         int
	}{
		{"below its max", 4, 3, nil, 3},
		{"at its max, not limited", 4, 4, nil, 4},
		{"held at its max", 4, 4, []autoscalingv2.HorizontalPodAutoscalerCondition{limited}, 5},
		{"limited by its min", 4, 1, []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScalingLimited, Status: "True", Reason: "TooFewReplicas"}}, 1},
	} {
		h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: tc.max},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: tc.desired, Conditions: tc.conds}}
		if got := scaleWant(h); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
