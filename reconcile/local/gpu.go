package local

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// GPU is one GPU as NVML reports it.
type GPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Name      string `json:"name"` // the product name, e.g. "NVIDIA H100 80GB HBM3"
	MemoryMiB uint64 `json:"memoryMiB"`
	// MIGEnabled is the current MIG mode; MIG lists its MIG devices.
	MIGEnabled bool        `json:"migEnabled"`
	MIG        []MIGDevice `json:"mig,omitempty"`
	// Utilization is the GPU's busy percentage over NVML's last sample
	// period, or -1 where NVML does not report one (MIG mode).
	Utilization       int `json:"utilization"`
	MemoryUtilization int `json:"memoryUtilization"`
}

// MIGDevice is one MIG device (a GPU instance with its compute instance).
type MIGDevice struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Profile   string `json:"profile"` // "1g.10gb"
	MemoryMiB uint64 `json:"memoryMiB"`
}

// nvmlError is an NVML call that failed, with its return code.
type nvmlError struct {
	call string
	ret  nvml.Return
}

func (e nvmlError) Error() string {
	return fmt.Sprintf("nvml: %s: %s", e.call, nvml.ErrorString(e.ret))
}

// discover lists the GPUs of an initialised NVML library. It is the only
// discovery code: the real library and the simulated inventory both go
// through it.
func discover(lib nvml.Interface) ([]GPU, error) {
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, nvmlError{"DeviceGetCount", ret}
	}
	gpus := make([]GPU, 0, n)
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

func describe(i int, dev nvml.Device) (GPU, error) {
	g := GPU{Index: i, Utilization: -1, MemoryUtilization: -1}
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
		m := MIGDevice{Index: j}
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

// migInventory groups a GPU list's MIG devices per GPU and profile, in
// GPU then profile order, as a snapshot's node lists them.
func migSlices(gpus []GPU) map[int]map[string][]MIGDevice {
	out := map[int]map[string][]MIGDevice{}
	for _, g := range gpus {
		for _, m := range g.MIG {
			if out[g.Index] == nil {
				out[g.Index] = map[string][]MIGDevice{}
			}
			out[g.Index][m.Profile] = append(out[g.Index][m.Profile], m)
		}
	}
	for _, byProfile := range out {
		for _, ms := range byProfile {
			slices.SortFunc(ms, func(a, b MIGDevice) int {
				return cmp.Compare(a.Index, b.Index)
			})
		}
	}
	return out
}
