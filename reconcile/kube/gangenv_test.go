package kube

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// gangEnv is the container's env by name: a value, or the field a
// downward-API reference reads.
func gangEnv(t *testing.T, j batchv1.Job) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "field " + e.ValueFrom.FieldRef.FieldPath
		}
	}
	return env
}

// TestGangEnvAgrees: every pod of a gang, plain or with roles, gets each of
// berth.GangEnv (the names the local backend gives too), RANK and
// BERTH_WORKER_INDEX read the same as BERTH_RANK, and the rendezvous is the
// same as berth's own names say.
func TestGangEnvAgrees(t *testing.T) {
	cfg := kubeDemo(t)
	wl := cfg.Workloads["vision/resnet-train"]
	plain := Run{Workload: wl, RunID: "1", Digest: berth.SpecDigest(wl), Path: wl.Pos.String(), Commit: "c1",
		Flavor: "h100", Priority: 100, QueuedSince: build.T0}
	var jobs []batchv1.Job
	for _, r := range []Run{plain, rolesRun(build.T0)} {
		objs, err := Render(renderOpts, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() != "Job" {
				continue
			}
			var j batchv1.Job
			fromUnstructured(t, o.Object, &j)
			jobs = append(jobs, j)
		}
	}
	if len(jobs) != 3 {
		t.Fatalf("%d Jobs, want the gang's and two roles'", len(jobs))
	}
	for _, j := range jobs {
		env := gangEnv(t, j)
		for _, name := range berth.GangEnv {
			if _, ok := env[name]; !ok {
				t.Errorf("%s: no %s", j.Name, name)
			}
		}
		for name, same := range map[string]string{"RANK": "BERTH_RANK", "BERTH_WORKER_INDEX": "BERTH_RANK",
			"WORLD_SIZE": "BERTH_WORLD_SIZE", "MASTER_ADDR": "BERTH_MASTER_ADDR", "MASTER_PORT": "BERTH_MASTER_PORT"} {
			if env[name] != env[same] {
				t.Errorf("%s: %s=%q but %s=%q", j.Name, name, env[name], same, env[same])
			}
		}
		if env["LOCAL_RANK"] != "0" {
			t.Errorf("%s: LOCAL_RANK=%q, want 0", j.Name, env["LOCAL_RANK"])
		}
	}
}
