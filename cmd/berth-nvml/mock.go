package main

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
)

// Mock is an NVML library, built from go-nvml's mock devices, whose
// devices are the given GPUs: discovery through it answers what a driver
// would for those GPUs (a MIG device's profile in its name, no
// utilisation in MIG mode, power and temperature from the GPU, never from
// a MIG device).
func Mock(gpus []gpuinfo.GPU) nvml.Interface {
	devices := make([]nvml.Device, len(gpus))
	for i, g := range gpus {
		devices[i] = mockGPU(g)
	}
	return &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) {
			return "mock", nvml.SUCCESS
		},
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devices), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devices) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devices[i], nvml.SUCCESS
		},
	}
}

func mockGPU(g gpuinfo.GPU) nvml.Device {
	mode := nvml.DEVICE_MIG_DISABLE
	if g.MIGEnabled {
		mode = nvml.DEVICE_MIG_ENABLE
	}
	migs := make([]nvml.Device, len(g.MIG))
	for j, m := range g.MIG {
		migs[j] = mockMIG(g.Name, m)
	}
	return &mock.Device{
		GetUUIDFunc:  func() (string, nvml.Return) { return g.UUID, nvml.SUCCESS },
		GetNameFunc:  func() (string, nvml.Return) { return g.Name, nvml.SUCCESS },
		GetIndexFunc: func() (int, nvml.Return) { return g.Index, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			total := g.MemoryMiB << 20
			return nvml.Memory{Total: total, Free: total}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			if g.Utilization < 0 {
				return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED // as on a real GPU in MIG mode
			}
			return nvml.Utilization{Gpu: uint32(g.Utilization), Memory: uint32(g.MemoryUtilization)}, nvml.SUCCESS
		},
		GetPowerUsageFunc:         func() (uint32, nvml.Return) { return sensor(g.PowerMilliwatts) },
		GetEnforcedPowerLimitFunc: func() (uint32, nvml.Return) { return sensor(g.PowerLimitMilliwatts) },
		GetTemperatureFunc: func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return sensor(g.TemperatureC)
		},
		GetMigModeFunc: func() (int, int, nvml.Return) { return mode, mode, nvml.SUCCESS },
		GetMaxMigDeviceCountFunc: func() (int, nvml.Return) {
			return max(7, len(migs)), nvml.SUCCESS
		},
		GetMigDeviceHandleByIndexFunc: func(j int) (nvml.Device, nvml.Return) {
			if j < 0 || j >= len(migs) {
				return nil, nvml.ERROR_NOT_FOUND
			}
			return migs[j], nvml.SUCCESS
		},
	}
}

// sensor is a reading as NVML answers it: -1 is a GPU that does not
// report it.
func sensor(v int) (uint32, nvml.Return) {
	if v < 0 {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return uint32(v), nvml.SUCCESS
}

func mockMIG(parent string, m gpuinfo.MIGDevice) nvml.Device {
	slices := uint32(gpuinfo.ProfileSlices(m.Profile))
	return &mock.Device{
		GetUUIDFunc:           func() (string, nvml.Return) { return m.UUID, nvml.SUCCESS },
		GetNameFunc:           func() (string, nvml.Return) { return parent + " MIG " + m.Profile, nvml.SUCCESS },
		IsMigDeviceHandleFunc: func() (bool, nvml.Return) { return true, nvml.SUCCESS },
		GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
			return nvml.DeviceAttributes{
				GpuInstanceSliceCount:     slices,
				ComputeInstanceSliceCount: slices,
				MemorySizeMB:              m.MemoryMiB,
			}, nvml.SUCCESS
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			total := m.MemoryMiB << 20
			return nvml.Memory{Total: total, Free: total}, nvml.SUCCESS
		},
	}
}
