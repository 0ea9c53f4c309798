// Package gpuinfo is what berth-nvml reports about a machine's GPUs: the
// JSON it prints on stdout and the local backend reads, and the simulated
// inventory the local backend uses where NVML cannot start.
//
// It owns the report's types and the simulated inventory ("8xH100",
// "7xH100,1xH100:1g.10gb"). It does not talk to NVML: that is
// cmd/berth-nvml, the only binary that links go-nvml (go-nvml's optional
// symbols cannot be bound at start-up, and berth links Go's plugin package
// through fluxcd/pkg/ssa, which binds every symbol at start-up).
package gpuinfo

import (
	"fmt"
	"strings"

	"github.com/berth-gpu/berth"
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
	// PowerMilliwatts is the board's power draw now and
	// PowerLimitMilliwatts the limit the driver enforces; TemperatureC is
	// the GPU die's temperature in degrees Celsius. In MIG mode they are
	// the whole GPU's (a MIG device has none of its own). -1 where NVML
	// gives none.
	PowerMilliwatts      int `json:"powerMilliwatts"`
	PowerLimitMilliwatts int `json:"powerLimitMilliwatts"`
	TemperatureC         int `json:"temperatureC"`
}

// MIGDevice is one MIG device (a GPU instance with its compute instance).
type MIGDevice struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Profile   string `json:"profile"` // "1g.10gb"
	MemoryMiB uint64 `json:"memoryMiB"`
}

// Where a report's GPUs came from.
const (
	SourceNVML = "nvml" // the NVIDIA driver
	SourceMock = "mock" // go-nvml's mock devices (berth-nvml --mock), for tests
	SourceNone = "none" // NVML could not start: Code and Why say why
)

// Report is what berth-nvml prints: one JSON object on stdout. NVML that
// cannot start is a report (Source "none"), not a failure: a machine
// without an NVIDIA driver is a CPU-only machine. berth-nvml exits non-zero
// only when NVML started and then failed (its message on stderr).
type Report struct {
	Source string `json:"source"`
	// Code is NVML's return code from Init ("ERROR_LIBRARY_NOT_FOUND") and
	// Why what it means, when Source is "none".
	Code string `json:"code,omitempty"`
	Why  string `json:"why,omitempty"`
	// Driver is the driver's version, when Source is not "none".
	Driver string `json:"driver,omitempty"`
	GPUs   []GPU  `json:"gpus"`
}

// product is what the driver reports for a GPU model: its name, memory,
// and an idle board's power draw, power limit (watts) and temperature.
type product struct {
	name            string
	memoryMiB       uint64
	idleW, limitW   int
	idleTemperature int
}

// products maps the short names people write in a simulated inventory to
// the names and memory NVML reports for the real parts, so flavors and
// labels look as they will on the real machine.
var products = map[string]product{
	"H100":      {"NVIDIA H100 80GB HBM3", 81559, 70, 700, 31},
	"H100-PCIE": {"NVIDIA H100 PCIe", 81559, 48, 350, 33},
	"H200":      {"NVIDIA H200", 143771, 76, 700, 30},
	"A100":      {"NVIDIA A100-SXM4-40GB", 40960, 54, 400, 30},
	"A100-40GB": {"NVIDIA A100-SXM4-40GB", 40960, 54, 400, 30},
	"A100-80GB": {"NVIDIA A100-SXM4-80GB", 81920, 62, 400, 31},
	"L40S":      {"NVIDIA L40S", 46068, 36, 350, 34},
	"L4":        {"NVIDIA L4", 23034, 16, 72, 35},
	"A10":       {"NVIDIA A10", 23028, 21, 150, 36},
	"T4":        {"Tesla T4", 15360, 10, 70, 38},
}

// productOf resolves a model as written in an inventory. Models it does
// not know keep their name, and have no power or temperature figures.
func productOf(model string) product {
	if p, ok := products[strings.ToUpper(model)]; ok {
		return p
	}
	return product{name: model, idleW: -1, limitW: -1, idleTemperature: -1}
}

// milliwatts is watts in NVML's unit, -1 staying unknown.
func milliwatts(w int) int {
	if w < 0 {
		return -1
	}
	return w * 1000
}

// SimulatedUUID is the UUID a simulated GPU gets: derived from its index so
// tests and demos see the same devices on every run.
func SimulatedUUID(gpu int) string { return fmt.Sprintf("GPU-00000000-0000-4000-8000-%012x", gpu) }

// SimulatedMIGUUID is the UUID of MIG device dev of simulated GPU gpu.
func SimulatedMIGUUID(gpu, dev int) string {
	return fmt.Sprintf("MIG-00000000-0000-4000-8000-%06x%06x", gpu, dev)
}

// Simulated is the GPU list of a simulated inventory ("8xH100",
// "7xH100,1xH100:1g.10gb"; see berth.ParseGPUInventory): what NVML
// discovery reports on a machine with those GPUs, idle (the idle power
// draw and temperature of the real part, where berth knows it). berth-nvml's tests
// hold it to that: discovery through go-nvml's mock devices built from this
// list gives this list back.
func Simulated(inventory string) ([]GPU, error) {
	groups, err := berth.ParseGPUInventory(inventory)
	if err != nil {
		return nil, err
	}
	var gpus []GPU
	for _, g := range groups {
		p := productOf(g.Model)
		for range g.Count {
			i := len(gpus)
			gpu := GPU{Index: i, UUID: SimulatedUUID(i), Name: p.name, MemoryMiB: p.memoryMiB,
				PowerMilliwatts: milliwatts(p.idleW), PowerLimitMilliwatts: milliwatts(p.limitW), TemperatureC: p.idleTemperature}
			if g.MIGProfile != "" {
				// NVML reports no utilisation in MIG mode.
				gpu.MIGEnabled, gpu.Utilization, gpu.MemoryUtilization = true, -1, -1
				_, memGB := parseProfile(g.MIGProfile)
				for j := range g.MIGCount {
					gpu.MIG = append(gpu.MIG, MIGDevice{
						Index: j, UUID: SimulatedMIGUUID(i, j), Profile: g.MIGProfile, MemoryMiB: uint64(memGB) * 1024,
					})
				}
			}
			gpus = append(gpus, gpu)
		}
	}
	return gpus, nil
}

// ProfileSlices is the number of compute slices in a MIG profile's name
// ("3g.20gb": 3).
func ProfileSlices(profile string) int {
	s, _ := parseProfile(profile)
	return s
}

// parseProfile reads "1g.10gb" (or "1g.10gb+me") as 1 compute slice and
// 10 GB.
func parseProfile(p string) (slices, memGB int) {
	p, _, _ = strings.Cut(p, "+")
	fmt.Sscanf(p, "%dg.%dgb", &slices, &memGB)
	return slices, memGB
}
