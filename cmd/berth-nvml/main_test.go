package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
)

// The simulated inventory the local backend uses without NVML is what
// discovery reads from go-nvml's mocks of those GPUs: one inventory, seen
// the same way with or without the driver.
func TestSimulatedIsWhatDiscoverySees(t *testing.T) {
	for _, inv := range []string{"8xH100", "7xH100,1xH100:1g.10gb", "2xA100,1xA100:3g.20gb", "1xL4,2xT4", "4xA100-80GB:3g.40gb*2"} {
		want, err := gpuinfo.Simulated(inv)
		if err != nil {
			t.Fatal(err)
		}
		got, err := discover(Mock(want))
		if err != nil {
			t.Fatalf("%s: %v", inv, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: discovered (-simulated +discovered):\n%s", inv, diff)
		}
	}
}

// failing is the real library's answer on a machine with no driver.
func failing(...nvml.LibraryOption) nvml.Interface {
	return &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

// brokenName starts, then fails to name its one GPU.
func brokenName(...nvml.LibraryOption) nvml.Interface {
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "1", nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) {
			return &mock.Device{
				GetUUIDFunc: func() (string, nvml.Return) { return "GPU-x", nvml.SUCCESS },
				GetNameFunc: func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST },
			}, nvml.SUCCESS
		},
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		lib    func(...nvml.LibraryOption) nvml.Interface
		code   int
		source string
		gpus   int
		stderr string
	}{
		{"mock inventory", []string{"--mock", "2xA100,1xA100:3g.20gb"}, failing, 0, gpuinfo.SourceMock, 3, ""},
		{"no driver", nil, failing, 0, gpuinfo.SourceNone, 0, ""},
		{"driver fails after Init", nil, brokenName, 1, "", 0, "berth-nvml: nvml: GPU 0: GetName: ERROR_GPU_IS_LOST\n"},
		{"bad inventory", []string{"--mock", "eight"}, failing, 2, "", 0, `berth-nvml: --mock: GPU inventory "eight": "eight" is not COUNTxMODEL (e.g. 8xH100)` + "\n"},
		{"argument", []string{"gpus"}, failing, 2, "", 0, "berth-nvml: unexpected argument \"gpus\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr, tc.lib); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if tc.code != 0 {
				if stdout.Len() > 0 {
					t.Errorf("stdout on failure: %s", stdout.String())
				}
				return
			}
			var r gpuinfo.Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("%v: %s", err, stdout.String())
			}
			if r.Source != tc.source || len(r.GPUs) != tc.gpus {
				t.Errorf("report: %+v", r)
			}
			if tc.source == gpuinfo.SourceNone && (r.Code != "ERROR_LIBRARY_NOT_FOUND" || !strings.Contains(r.Why, "no NVIDIA driver")) {
				t.Errorf("report does not say why: %+v", r)
			}
		})
	}
}

// The real library: on a machine without a driver it reports why; on one
// with a driver, the GPUs.
func TestRealLibrary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr, nvml.New); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r gpuinfo.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	switch r.Source {
	case gpuinfo.SourceNone:
		if r.Code == "" || r.Why == "" || r.GPUs == nil {
			t.Errorf("report: %+v", r)
		}
	case gpuinfo.SourceNVML:
		t.Logf("driver %s, %d GPUs: %+v", r.Driver, len(r.GPUs), r.GPUs)
		for _, g := range r.GPUs {
			if !strings.HasPrefix(g.UUID, "GPU-") || g.Name == "" || g.MemoryMiB == 0 {
				t.Errorf("GPU %d: %+v", g.Index, g)
			}
		}
	default:
		t.Errorf("source %q", r.Source)
	}
}

// NVIDIA's own fake DGX A100 goes through the same discovery.
func TestDiscoverDGXA100(t *testing.T) {
	srv := dgxa100.New()
	for i, d := range srv.Devices {
		dev := d.(*dgxa100.Device)
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 42, Memory: 7}, nvml.SUCCESS
		}
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(250000 + i), nvml.SUCCESS }
		dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
		dev.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return 61, nvml.SUCCESS
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
		g.MIGEnabled || g.Utilization != 42 || g.MemoryUtilization != 7 ||
		g.PowerMilliwatts != 250003 || g.PowerLimitMilliwatts != 400000 || g.TemperatureC != 61 {
		t.Errorf("GPU 3: %+v", g)
	}
}

// A GPU in MIG mode has no utilisation, but its power and temperature are
// the board's and are read from it; a board that reports no power keeps
// -1 and the rest of its figures.
func TestSensors(t *testing.T) {
	gpus, err := gpuinfo.Simulated("1xH100,1xA100:3g.20gb*2,1xL4")
	if err != nil {
		t.Fatal(err)
	}
	gpus[1].PowerMilliwatts, gpus[1].TemperatureC = 312000, 67 // busy slices
	gpus[2].PowerMilliwatts, gpus[2].PowerLimitMilliwatts = -1, -1
	var stdout, stderr bytes.Buffer
	lib := func(...nvml.LibraryOption) nvml.Interface { return Mock(gpus) }
	if code := run(nil, &stdout, &stderr, lib); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r gpuinfo.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	type reading struct{ util, mw, limit, c int }
	var got []reading
	for _, g := range r.GPUs {
		got = append(got, reading{g.Utilization, g.PowerMilliwatts, g.PowerLimitMilliwatts, g.TemperatureC})
	}
	want := []reading{{0, 70000, 700000, 31}, {-1, 312000, 400000, 67}, {0, -1, -1, 35}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(reading{})); diff != "" {
		t.Errorf("readings (-want +got):\n%s", diff)
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
		GetUUIDFunc:               func() (string, nvml.Return) { return "GPU-x", nvml.SUCCESS },
		GetNameFunc:               func() (string, nvml.Return) { return "NVIDIA GPU", nvml.SUCCESS },
		GetMemoryInfoFunc:         func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: totalMiB << 20}, nvml.SUCCESS },
		GetUtilizationRatesFunc:   func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED },
		GetPowerUsageFunc:         func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED },
		GetEnforcedPowerLimitFunc: func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED },
		GetTemperatureFunc:        func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED },
		GetMigModeFunc:            func() (int, int, nvml.Return) { return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS },
		GetMaxMigDeviceCountFunc:  func() (int, nvml.Return) { return 1, nvml.SUCCESS },
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
