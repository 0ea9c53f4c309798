package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
)

// nvmlError is an NVML call that failed, with its return code.
type nvmlError struct {
	call string
	ret  nvml.Return
}

func (e nvmlError) Error() string {
	return fmt.Sprintf("nvml: %s: %s", e.call, nvml.ErrorString(e.ret))
}

// discover lists the GPUs of an initialised NVML library. It is the only
// discovery code: the driver and go-nvml's mocks both go through it.
func discover(lib nvml.Interface) ([]gpuinfo.GPU, error) {
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, nvmlError{"DeviceGetCount", ret}
	}
	gpus := make([]gpuinfo.GPU, 0, n)
	for i := range n {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, nvmlError{fmt.Sprintf("DeviceGetHandleByIndex(%d)", i), ret}
		}
		g, err := describe(i, dev)
		if err != nil {
			return nil, err
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

func describe(i int, dev nvml.Device) (gpuinfo.GPU, error) {
	g := gpuinfo.GPU{Index: i, Utilization: -1, MemoryUtilization: -1,
		PowerMilliwatts: -1, PowerLimitMilliwatts: -1, TemperatureC: -1}
	var ret nvml.Return
	if g.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		return g, nvmlError{fmt.Sprintf("GPU %d: GetUUID", i), ret}
	}
	if g.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
		return g, nvmlError{fmt.Sprintf("GPU %d: GetName", i), ret}
	}
	if mem, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		g.MemoryMiB = mem.Total / (1 << 20)
	}
	if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		g.Utilization, g.MemoryUtilization = int(u.Gpu), int(u.Memory)
	}
	readSensors(&g, dev)
	// Not every GPU supports MIG: NOT_SUPPORTED means MIG is off.
	current, _, ret := dev.GetMigMode()
	if ret != nvml.SUCCESS || current != nvml.DEVICE_MIG_ENABLE {
		return g, nil
	}
	g.MIGEnabled = true
	max, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return g, nvmlError{fmt.Sprintf("GPU %d: GetMaxMigDeviceCount", i), ret}
	}
	for j := range max {
		mig, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // an index with no MIG device created
		}
		if ret != nvml.SUCCESS {
			return g, nvmlError{fmt.Sprintf("GPU %d: GetMigDeviceHandleByIndex(%d)", i, j), ret}
		}
		m := gpuinfo.MIGDevice{Index: j}
		if m.UUID, ret = mig.GetUUID(); ret != nvml.SUCCESS {
			return g, nvmlError{fmt.Sprintf("GPU %d MIG %d: GetUUID", i, j), ret}
		}
		attr, attrRet := mig.GetAttributes()
		if attrRet == nvml.SUCCESS {
			m.MemoryMiB = attr.MemorySizeMB
		}
		// The driver names a MIG device "<product> MIG 1g.10gb"; older
		// drivers do not, so the profile is derived from the attributes as
		// NVIDIA's device plugin does.
		if name, ret := mig.GetName(); ret == nvml.SUCCESS {
			if _, p, ok := strings.Cut(name, " MIG "); ok {
				m.Profile = strings.TrimSpace(p)
			}
		}
		if m.Profile == "" && attrRet == nvml.SUCCESS {
			m.Profile = fmt.Sprintf("%dg.%dgb", attr.GpuInstanceSliceCount, migMemoryGB(g.MemoryMiB<<20, attr.MemorySizeMB))
		}
		if m.Profile == "" {
			return g, nvmlError{fmt.Sprintf("GPU %d MIG %d: GetAttributes", i, j), attrRet}
		}
		g.MIG = append(g.MIG, m)
	}
	return g, nil
}

// readSensors reads a GPU's power draw, power limit and temperature. They
// are the board's, so a GPU in MIG mode has them while its MIG devices do
// not; a GPU that does not report one (NOT_SUPPORTED, as some boards
// answer for power) keeps -1 and is not an error.
func readSensors(g *gpuinfo.GPU, dev nvml.Device) {
	if mw, ret := dev.GetPowerUsage(); ret == nvml.SUCCESS {
		g.PowerMilliwatts = int(mw)
	}
	if mw, ret := dev.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
		g.PowerLimitMilliwatts = int(mw)
	}
	if c, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		g.TemperatureC = int(c)
	}
}

// migMemoryGB is the memory in a MIG profile's name: the device's share of
// the GPU's memory rounded up to eighths, times the GPU's memory in GB.
func migMemoryGB(totalBytes, migMB uint64) uint64 {
	if totalBytes == 0 {
		return (migMB + 1023) / 1024
	}
	const gb = 1 << 30
	frac := float64(migMB<<20) / float64(totalBytes)
	frac = math.Ceil(frac*8) / 8
	return uint64(math.Round(frac * float64((totalBytes+gb-1)/gb)))
}
