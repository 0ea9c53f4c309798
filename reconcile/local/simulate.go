package local

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/berth-gpu/berth"
)

// product is what the driver reports for a GPU model.
type product struct {
	name      string
	memoryMiB uint64
}

// products maps the short names people write in a simulated inventory to
// the names and memory NVML reports for the real parts, so flavors and
// labels look as they will on the real machine.
var products = map[string]product{
	"H100":      {"NVIDIA H100 80GB HBM3", 81559},
	"H100-PCIE": {"NVIDIA H100 PCIe", 81559},
	"H200":      {"NVIDIA H200", 143771},
	"A100":      {"NVIDIA A100-SXM4-40GB", 40960},
	"A100-40GB": {"NVIDIA A100-SXM4-40GB", 40960},
	"A100-80GB": {"NVIDIA A100-SXM4-80GB", 81920},
	"L40S":      {"NVIDIA L40S", 46068},
	"L4":        {"NVIDIA L4", 23034},
	"A10":       {"NVIDIA A10", 23028},
	"T4":        {"Tesla T4", 15360},
}

// productOf resolves a model as written in an inventory. Models it does
// not know keep their name.
func productOf(model string) product {
	if p, ok := products[strings.ToUpper(model)]; ok {
		return p
	}
	return product{name: model}
}

// SimulatedUUID is the UUID a simulated GPU gets: derived from its index so
// tests and demos see the same devices on every run.
func SimulatedUUID(gpu int) string { return fmt.Sprintf("GPU-00000000-0000-4000-8000-%012x", gpu) }

// SimulatedMIGUUID is the UUID of MIG device dev of simulated GPU gpu.
func SimulatedMIGUUID(gpu, dev int) string {
	return fmt.Sprintf("MIG-00000000-0000-4000-8000-%06x%06x", gpu, dev)
}

// Simulated builds an NVML library for a simulated inventory ("8xH100",
// "7xH100,1xH100:1g.10gb") out of go-nvml's mock devices. Discovery runs
// against it exactly as against the real library.
func Simulated(inventory string) (nvml.Interface, error) {
	groups, err := berth.ParseGPUInventory(inventory)
	if err != nil {
		return nil, err
	}
	var devices []nvml.Device
	for _, g := range groups {
		p := productOf(g.Model)
		for range g.Count {
			devices = append(devices, simulatedGPU(len(devices), p, g))
		}
	}
	lib := &simulated{mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) {
			return "simulated", nvml.SUCCESS
		},
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devices), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devices) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devices[i], nvml.SUCCESS
		},
	}}
	return lib, nil
}

// simulated marks a library built by Simulated.
type simulated struct{ mock.Interface }

func simulatedGPU(index int, p product, g berth.GPUGroup) nvml.Device {
	mode := nvml.DEVICE_MIG_DISABLE
	var migs []nvml.Device
	if g.MIGProfile != "" {
		mode = nvml.DEVICE_MIG_ENABLE
		slices, memGB := parseProfile(g.MIGProfile)
		for j := range g.MIGCount {
			migs = append(migs, simulatedMIG(p.name, SimulatedMIGUUID(index, j), g.MIGProfile, slices, memGB))
		}
	}
	return &mock.Device{
		GetUUIDFunc:  func() (string, nvml.Return) { return SimulatedUUID(index), nvml.SUCCESS },
		GetNameFunc:  func() (string, nvml.Return) { return p.name, nvml.SUCCESS },
		GetIndexFunc: func() (int, nvml.Return) { return index, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			total := p.memoryMiB << 20
			return nvml.Memory{Total: total, Free: total}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			if mode == nvml.DEVICE_MIG_ENABLE {
				return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED // as on a real GPU in MIG mode
			}
			return nvml.Utilization{}, nvml.SUCCESS
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

func simulatedMIG(parent, uuid, profile string, slices, memGB int) nvml.Device {
	return &mock.Device{
		GetUUIDFunc:           func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
		GetNameFunc:           func() (string, nvml.Return) { return parent + " MIG " + profile, nvml.SUCCESS },
		IsMigDeviceHandleFunc: func() (bool, nvml.Return) { return true, nvml.SUCCESS },
		GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
			return nvml.DeviceAttributes{
				GpuInstanceSliceCount:     uint32(slices),
				ComputeInstanceSliceCount: uint32(slices),
				MemorySizeMB:              uint64(memGB) * 1024,
			}, nvml.SUCCESS
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			total := uint64(memGB) << 30
			return nvml.Memory{Total: total, Free: total}, nvml.SUCCESS
		},
	}
}

// parseProfile reads "1g.10gb" (or "1g.10gb+me") as 1 compute slice and
// 10 GB.
func parseProfile(p string) (slices, memGB int) {
	p, _, _ = strings.Cut(p, "+")
	fmt.Sscanf(p, "%dg.%dgb", &slices, &memGB)
	return slices, memGB
}
