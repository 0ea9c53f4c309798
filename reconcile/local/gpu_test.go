package local

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

func TestSimulatedNode(t *testing.T) {
	c := newCluster(t, t.TempDir())
	n := c.Node()
	want := berth.Node{
		Name: node, Ready: true, CPU: berth.MustQuantity("64"), Memory: berth.MustQuantity("512Gi"),
		GPUs: 8, GPUModel: "NVIDIA H100 80GB HBM3",
		Labels: map[string]string{
			LabelHostname: node, LabelGPUProduct: "NVIDIA-H100-80GB-HBM3",
			LabelGPUCount: "8", LabelGPUMemory: "81559",
		},
		MIG: []berth.MIGSlices{{GPU: 7, Profile: "1g.10gb", Count: 7}},
	}
	if diff := cmp.Diff(want, n, cmp.Comparer(func(a, b berth.Quantity) bool { return a.Milli() == b.Milli() })); diff != "" {
		t.Errorf("node (-want +got):\n%s", diff)
	}
	if !schedule.ModelMatches("H100", n.GPUModel) {
		t.Errorf("flavor model H100 does not match %q", n.GPUModel)
	}
	if !c.Simulated() {
		t.Error("not reported as simulated")
	}
	gpus, err := c.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gpus[0].UUID != SimulatedUUID(0) || gpus[0].Utilization != 0 || gpus[7].Utilization != -1 ||
		len(gpus[7].MIG) != 7 || gpus[7].MIG[6].UUID != SimulatedMIGUUID(7, 6) || gpus[7].MIG[0].MemoryMiB != 10240 ||
		gpus[7].PowerMilliwatts != 70000 || gpus[7].PowerLimitMilliwatts != 700000 || gpus[7].TemperatureC != 31 { // an idle H100's, MIG or not
		t.Errorf("GPUs: %+v", gpus)
	}
}

// buildNVMLHelper builds cmd/berth-nvml, as make build does, into a
// temporary directory.
func buildNVMLHelper(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build berth-nvml with")
	}
	bin := filepath.Join(t.TempDir(), "berth-nvml")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/berth-gpu/berth/cmd/berth-nvml").CombinedOutput()
	if err != nil {
		t.Fatalf("go build berth-nvml: %v\n%s", err, out)
	}
	return bin
}

// The real berth-nvml, as berth runs it: NVML through the helper's JSON,
// the fallback to the simulated inventory when NVML cannot start, and a
// helper that fails.
func TestNVMLHelper(t *testing.T) {
	helper := buildNVMLHelper(t)
	var nvmlWorks bool
	if out, err := exec.Command(helper).Output(); err == nil && !strings.Contains(string(out), `"source": "none"`) {
		nvmlWorks = true
	}
	const inv = "2xA100,1xA100:3g.20gb"
	wantNode := func(t *testing.T, n berth.Node) {
		t.Helper()
		if n.GPUs != 3 || n.GPUModel != "NVIDIA A100-SXM4-40GB" || len(n.MIG) != 1 || n.MIG[0] != (berth.MIGSlices{GPU: 2, Profile: "3g.20gb", Count: 2}) {
			t.Errorf("node: %+v", n)
		}
	}
	for _, tc := range []struct {
		name    string
		command []string
		// logged: what the log must say (NVML not available, why, what
		// instead); "" when NVML answered.
		logged []string
	}{
		{"no helper", nil, []string{"NVML is not available", "not found beside berth or on PATH", "simulated GPU inventory " + inv}},
		{"helper missing", []string{filepath.Join(t.TempDir(), "berth-nvml")}, []string{"NVML is not available", "berth-nvml cannot start", "simulated GPU inventory " + inv}},
		{"helper, no driver", []string{helper}, []string{"NVML is not available", "ERROR_LIBRARY_NOT_FOUND", "no NVIDIA driver", "simulated GPU inventory " + inv}},
		{"helper, mock devices", []string{helper, "--mock", inv}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if nvmlWorks && len(tc.command) == 1 && tc.command[0] == helper {
				t.Skip("this machine has NVML: nothing to fall back from")
			}
			var logs syncBuffer
			opts := testOptions(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
			opts.NVMLCommand, opts.SimulatedGPUs = tc.command, inv
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			observe(t, c)
			observe(t, c)
			wantNode(t, c.Node())
			if !c.Simulated() {
				t.Error("not reported as simulated")
			}
			if tc.logged == nil {
				if strings.Contains(logs.String(), "NVML is not available") {
					t.Errorf("NVML answered, yet the log says:\n%s", logs.String())
				}
				gpus, err := c.GPUs(context.Background())
				// The MIG-mode GPU's power and temperature come through the
				// helper's report (an idle A100's).
				if err != nil || len(gpus) != 3 || gpus[2].MIG[1].UUID != SimulatedMIGUUID(2, 1) ||
					gpus[2].PowerMilliwatts != 54000 || gpus[2].PowerLimitMilliwatts != 400000 || gpus[2].TemperatureC != 30 {
					t.Errorf("GPUs through the helper: %+v, %v", gpus, err)
				}
				return
			}
			if n := strings.Count(logs.String(), "NVML is not available"); n != 1 {
				t.Errorf("NVML failure logged %d times, want once:\n%s", n, logs.String())
			}
			for _, want := range tc.logged {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log does not say %q:\n%s", want, logs.String())
				}
			}
		})
	}
}

// A helper that started NVML and then failed stops the cluster from
// starting, with the helper's words; so does one that prints nonsense.
func TestNVMLHelperFails(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"exit 1", "echo 'berth-nvml: nvml: GPU 0: GetName: ERROR_GPU_IS_LOST' >&2; exit 1", "/bin/sh: berth-nvml: nvml: GPU 0: GetName: ERROR_GPU_IS_LOST"},
		{"not JSON", "echo GPUs: 8", "/bin/sh: report: invalid character"},
		{"unknown source", `echo '{"source": "cuda", "gpus": []}'`, `/bin/sh: report: unknown source "cuda"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t.TempDir(), testLogger(t))
			opts.NVMLCommand = []string{"/bin/sh", "-c", tc.script}
			c, err := New(opts)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			if want := "local cluster box: GPUs: " + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start %q", err, want)
			}
		})
	}
}

func TestNoGPUNoSimulationIsCPUOnly(t *testing.T) {
	var logs syncBuffer
	opts := testOptions(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	opts.SimulatedGPUs = ""
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := c.Node(); n.GPUs != 0 || n.GPUModel != "" || n.Labels[LabelGPUProduct] != "" || !n.Ready {
		t.Errorf("node: %+v", n)
	}
	if !strings.Contains(logs.String(), "CPU-only") {
		t.Errorf("log: %s", logs.String())
	}
}
