package kube_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// startContainer does what a kubelet does with a pod's main container, as
// far as berth's resume wrapper sees it: it runs the container's command
// and args with the container's literal env, with the run's checkpoint
// claim "mounted": BERTH_CHECKPOINT_DIR is dir. The workload's command is
// env, so the output is the environment the workload's process gets.
func startContainer(t *testing.T, c corev1.Container, dir string) map[string]string {
	t.Helper()
	if len(c.Command) == 0 {
		t.Fatal("the container has no command")
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		switch {
		case e.Name == berth.EnvCheckpointDir:
			env = append(env, e.Name+"="+dir)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	cmd := exec.Command(c.Command[0], append(c.Command[1:], c.Args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	return got
}

// mainContainer renders the run and returns its Job's main container.
func mainContainer(t *testing.T, r kube.Run) corev1.Container {
	t.Helper()
	objs, err := kube.Render(kube.RenderOptions{}, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Job" {
			var j batchv1.Job
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &j); err != nil {
				t.Fatal(err)
			}
			return j.Spec.Template.Spec.Containers[0]
		}
	}
	t.Fatal("no Job")
	return corev1.Container{}
}

// TestResumeFromCheckpointOnKubernetes: a pod of a run that resumes from
// checkpoints, started by whoever starts it (berth after a preemption or
// a node loss, the Job controller on a retry: the pod template is the
// same), gets BERTH_RESUME=1 and BERTH_RESUME_FROM, the newest checkpoint
// in its claim, as on one machine; with an empty claim (its first
// attempt), only a half-written checkpoint (a dot name) or lost+found, or
// resume: false, it gets neither. The workload's args reach its command.
func TestResumeFromCheckpointOnKubernetes(t *testing.T) {
	w := build.Workload("ml", "train").Training(1).Image("img:1").Command("env").Checkpoint("/ckpt").Obj()
	w.Args = []string{"EPOCHS=3"} // env sets it: the args reach the command
	r := kube.Run{Workload: w, RunID: "1", Flavor: "h100", Started: true, Attempts: 1}
	c := mainContainer(t, r)
	if c.Command[0] != kube.ResumeShell || c.Args[0] != "EPOCHS=3" {
		t.Fatalf("command %q args %q: want the workload's command wrapped in %s, its args kept", c.Command, c.Args, kube.ResumeShell)
	}

	dir := t.TempDir()
	touch := func(name string, age time.Duration) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	resumes := func(what string, c corev1.Container, wantFrom string) {
		t.Helper()
		env := startContainer(t, c, dir)
		if env["EPOCHS"] != "3" {
			t.Errorf("%s: the workload's args did not reach its command: %v", what, env)
		}
		if wantFrom == "" {
			if v, ok := env[berth.EnvResume]; ok {
				t.Errorf("%s: BERTH_RESUME=%q, want it unset", what, v)
			}
			if v, ok := env[berth.EnvResumeFrom]; ok {
				t.Errorf("%s: BERTH_RESUME_FROM=%q, want it unset", what, v)
			}
			return
		}
		if env[berth.EnvResume] != "1" || env[berth.EnvResumeFrom] != wantFrom {
			t.Errorf("%s: BERTH_RESUME=%q BERTH_RESUME_FROM=%q, want 1 and %s", what, env[berth.EnvResume], env[berth.EnvResumeFrom], wantFrom)
		}
	}
	resumes("an empty claim", c, "")
	touch("lost+found", 0)
	touch(".step-300.tmp", 0)
	resumes("only lost+found and a half-written checkpoint", c, "")
	touch("step-100", 2*time.Hour)
	touch("step-200", time.Hour)
	resumes("after two checkpoints", c, filepath.Join(dir, "step-200"))

	r.Resume, r.Attempts = true, 2 // berth's own mark does not change what the claim says
	resumes("attempt 2", mainContainer(t, r), filepath.Join(dir, "step-200"))

	r.Workload.Checkpoint = &berth.Checkpoint{Dir: "/ckpt", Resume: false}
	resumes("resume: false", mainContainer(t, r), "")
}

// TestResumeWithoutCommand: a workload with no command runs its image's
// entrypoint, which berth cannot wrap: its command stays unset and
// BERTH_RESUME comes from the pod's resume mark.
func TestResumeWithoutCommand(t *testing.T) {
	w := build.Workload("ml", "train").Training(1).Image("img:1").Checkpoint("/ckpt").Obj()
	c := mainContainer(t, kube.Run{Workload: w, RunID: "1", Flavor: "h100", Started: true, Attempts: 1})
	if len(c.Command) != 0 {
		t.Errorf("command %q, want none (the image's entrypoint)", c.Command)
	}
	if from := podEnvFrom(corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}, berth.EnvResume); from != "metadata.annotations['berth.dev/resume']" {
		t.Errorf("BERTH_RESUME comes from %q, want the pod's resume annotation", from)
	}
}

// TestRetryResumesFromCheckpoint (real control plane): a training run's
// pod fails and the Job controller retries it by itself (retries is the
// Job's backoffLimit): the retried pod is of the same Job, mounts the
// same checkpoint claim, and, started as its container would be with the
// claim holding the first pod's checkpoint, gets BERTH_RESUME=1 and
// BERTH_RESUME_FROM. berth had no part in the retry.
func TestRetryResumesFromCheckpoint(t *testing.T) {
	s := newScenario(t, "retryckpt", gpuNode())
	s.waitReadyNodes(1)
	s.team(8, `workloads: ml: train: {kind: "training", image: "img:1", command: ["env"], retries: 1,
	env: {BERTH_SIMULATED_DURATION: "1s", BERTH_SIMULATED_EXIT: "1"},
	resources: {gpu: 8, flavor: "h100"}, checkpoint: dir: "/ckpt"}
`)
	s.mustReconcile()
	deadline := time.Now().Add(2 * time.Minute)
	var pods []corev1.Pod
	for {
		pods = s.pods("ml", "train")
		if len(pods) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("train has %d pods, want a retried one", len(pods))
		}
		time.Sleep(300 * time.Millisecond)
	}
	a, b := pods[0], pods[1]
	if a.OwnerReferences[0].UID != b.OwnerReferences[0].UID {
		t.Fatalf("the pods are of two Jobs: the retry was berth's, not the Job controller's")
	}
	if claimsOf(a)["berth-checkpoints"] != "train-1-checkpoints" || claimsOf(b)["berth-checkpoints"] != "train-1-checkpoints" {
		t.Errorf("the pods mount %v and %v, want the run's checkpoint claim both", claimsOf(a), claimsOf(b))
	}
	dir := t.TempDir()
	if env := startContainer(t, b.Spec.Containers[0], dir); env[berth.EnvResume] != "" {
		t.Errorf("with an empty claim the retried pod gets BERTH_RESUME=%q, want none", env[berth.EnvResume])
	}
	if err := os.WriteFile(filepath.Join(dir, "epoch-1.pt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := startContainer(t, b.Spec.Containers[0], dir)
	if env[berth.EnvResume] != "1" || env[berth.EnvResumeFrom] != filepath.Join(dir, "epoch-1.pt") {
		t.Errorf("the retried pod gets BERTH_RESUME=%q BERTH_RESUME_FROM=%q, want 1 and the first pod's checkpoint", env[berth.EnvResume], env[berth.EnvResumeFrom])
	}
}
