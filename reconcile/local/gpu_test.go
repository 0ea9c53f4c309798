package local

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
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
	gpus, err := c.GPUs()
	if err != nil {
		t.Fatal(err)
	}
	if gpus[0].UUID != SimulatedUUID(0) || gpus[0].Utilization != 0 || gpus[7].Utilization != -1 ||
		len(gpus[7].MIG) != 7 || gpus[7].MIG[6].UUID != SimulatedMIGUUID(7, 6) || gpus[7].MIG[0].MemoryMiB != 10240 {
		t.Errorf("GPUs: %+v", gpus)
	}
}

// failingNVML is the real library's answer on a machine with no driver.
func failingNVML() nvml.Interface {
	return &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

func TestNVMLMissingFallsBackToSimulation(t *testing.T) {
	for _, tc := range []struct {
		name, inventory string
		lib             nvml.Interface
	}{
		{"mock without driver", "2xA100,1xA100:3g.20gb", failingNVML()},
		// The real library: no driver here, so it fails as the mock does.
		{"real library", "2xA100,1xA100:3g.20gb", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lib == nil {
				if ret := nvml.Init(); ret == nvml.SUCCESS {
					nvml.Shutdown()
					t.Skip("this machine has NVML: nothing to fall back from")
				}
			}
			var logs syncBuffer
			opts := testOptions(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
			opts.NVML, opts.SimulatedGPUs = tc.lib, tc.inventory
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			observe(t, c)
			observe(t, c)
			if n := strings.Count(logs.String(), "NVML is not available"); n != 1 {
				t.Errorf("NVML failure logged %d times, want once:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "ERROR_LIBRARY_NOT_FOUND") || !strings.Contains(logs.String(), "simulated GPU inventory "+tc.inventory) {
				t.Errorf("log does not say why and what:\n%s", logs.String())
			}
			n := c.Node()
			if n.GPUs != 3 || n.GPUModel != "NVIDIA A100-SXM4-40GB" || len(n.MIG) != 1 || n.MIG[0] != (berth.MIGSlices{GPU: 2, Profile: "3g.20gb", Count: 2}) {
				t.Errorf("node: %+v", n)
			}
		})
	}
}

func TestNoGPUNoSimulationIsCPUOnly(t *testing.T) {
	var logs syncBuffer
	opts := testOptions(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	opts.NVML, opts.SimulatedGPUs = failingNVML(), ""
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

// NVIDIA's own fake DGX A100 goes through the same discovery.
func TestDiscoverDGXA100(t *testing.T) {
	srv := dgxa100.New()
	for _, d := range srv.Devices {
		d.(*dgxa100.Device).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 42, Memory: 7}, nvml.SUCCESS
		}
	}
	gpus, err := discover(srv)
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 8 {
		t.Fatalf("%d GPUs, want 8", len(gpus))
	}
	g := gpus[3]
	if g.Name != "Mock NVIDIA A100-SXM4-40GB" || g.MemoryMiB != 40960 || !strings.HasPrefix(g.UUID, "GPU-") ||
		g.MIGEnabled || g.Utilization != 42 || g.MemoryUtilization != 7 {
		t.Errorf("GPU 3: %+v", g)
	}
}

// A driver that does not put the profile in a MIG device's name: the
// profile comes from its attributes.
func TestMIGProfileFromAttributes(t *testing.T) {
	for _, tc := range []struct {
		totalMiB, migMB uint64
		slices          uint32
		want            string
	}{
		{81559, 9856, 1, "1g.10gb"},
		{81559, 40192, 3, "3g.40gb"},
		{40960, 4864, 1, "1g.5gb"},
		{40960, 19968, 4, "4g.20gb"},
	} {
		got := migProfileOf(tc.totalMiB, tc.slices, tc.migMB)
		if got != tc.want {
			t.Errorf("%d MiB GPU, %d slices of %d MB: %s, want %s", tc.totalMiB, tc.slices, tc.migMB, got, tc.want)
		}
	}
}

func migProfileOf(totalMiB uint64, slices uint32, migMB uint64) string {
	mig := &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) { return "MIG-x", nvml.SUCCESS },
		GetNameFunc: func() (string, nvml.Return) { return "NVIDIA GPU", nvml.SUCCESS },
		GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
			return nvml.DeviceAttributes{GpuInstanceSliceCount: slices, MemorySizeMB: migMB}, nvml.SUCCESS
		},
	}
	dev := &mock.Device{
		GetUUIDFunc:              func() (string, nvml.Return) { return "GPU-x", nvml.SUCCESS },
		GetNameFunc:              func() (string, nvml.Return) { return "NVIDIA GPU", nvml.SUCCESS },
		GetMemoryInfoFunc:        func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: totalMiB << 20}, nvml.SUCCESS },
		GetUtilizationRatesFunc:  func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED },
		GetMigModeFunc:           func() (int, int, nvml.Return) { return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS },
		GetMaxMigDeviceCountFunc: func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		GetMigDeviceHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) {
			return mig, nvml.SUCCESS
		},
	}
	g, err := describe(0, dev)
	if err != nil || len(g.MIG) != 1 {
		return "error"
	}
	return g.MIG[0].Profile
}
