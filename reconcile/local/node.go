package local

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/berth-gpu/berth"
)

// Node labels the local node carries, named as NVIDIA's GPU feature
// discovery names them on Kubernetes so flavors' nodeLabels read the same.
const (
	LabelHostname   = "kubernetes.io/hostname"
	LabelGPUProduct = "nvidia.com/gpu.product" // "NVIDIA-H100-80GB-HBM3"
	LabelGPUCount   = "nvidia.com/gpu.count"
	LabelGPUMemory  = "nvidia.com/gpu.memory" // MiB
)

// gpuSource says where the GPU inventory came from.
type gpuSource string

const (
	sourceNVML      gpuSource = "nvml"
	sourceSimulated gpuSource = "simulated"
	sourceNone      gpuSource = "none"
)

// findGPUs discovers the GPUs: with the given or real NVML library, or,
// when it cannot start, with the simulated inventory. It logs once why it
// falls back.
func findGPUs(opts Options) ([]GPU, nvml.Interface, gpuSource, error) {
	lib := opts.NVML
	if lib == nil {
		lib = nvml.New()
	}
	log := opts.Logger
	ret := lib.Init()
	if ret == nvml.SUCCESS {
		gpus, err := discover(lib)
		if err != nil {
			lib.Shutdown()
			return nil, nil, "", err
		}
		if opts.SimulatedGPUs != "" && len(gpus) > 0 {
			log.Info("GPUs found with NVML; the simulated inventory is not used",
				"gpus", len(gpus), "simulatedGPUs", opts.SimulatedGPUs)
		}
		source := sourceNVML
		if _, ok := lib.(*simulated); ok {
			source = sourceSimulated
		}
		return gpus, lib, source, nil
	}
	why := nvmlFailure(ret)
	if opts.SimulatedGPUs == "" {
		log.Warn("NVML is not available ("+why+"): no GPUs; this node runs CPU-only workloads. "+
			"Set simulatedGPUs (e.g. --gpus 8xH100) to simulate GPUs", "nvml", nvml.ErrorString(ret))
		return nil, nil, sourceNone, nil
	}
	sim, err := Simulated(opts.SimulatedGPUs)
	if err != nil {
		return nil, nil, "", err
	}
	if ret := sim.Init(); ret != nvml.SUCCESS {
		return nil, nil, "", nvmlError{"Init (simulated)", ret}
	}
	gpus, err := discover(sim)
	if err != nil {
		return nil, nil, "", err
	}
	log.Warn("NVML is not available ("+why+"): using the simulated GPU inventory "+opts.SimulatedGPUs,
		"nvml", nvml.ErrorString(ret), "gpus", len(gpus))
	return gpus, sim, sourceSimulated, nil
}

func nvmlFailure(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found: no NVIDIA driver on this machine"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA driver is not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to use the NVIDIA driver"
	}
	return "Init: " + nvml.ErrorString(ret)
}

// buildNode is the one node this cluster reports.
func buildNode(name string, gpus []GPU, cpu, mem berth.Quantity, log *slog.Logger) berth.Node {
	n := berth.Node{
		Name:   name,
		Labels: map[string]string{LabelHostname: name},
		Ready:  true,
		CPU:    cpu,
		Memory: mem,
		GPUs:   len(gpus),
		MIG:    []berth.MIGSlices{},
	}
	if len(gpus) == 0 {
		return n
	}
	// A node has one model: the first GPU's, as on Kubernetes, where the
	// product label names one product.
	n.GPUModel = gpus[0].Name
	for _, g := range gpus[1:] {
		if g.Name != n.GPUModel {
			log.Warn("GPUs of more than one model: the node reports the first",
				"model", n.GPUModel, "other", g.Name, "gpu", g.Index)
			break
		}
	}
	n.Labels[LabelGPUProduct] = strings.ReplaceAll(n.GPUModel, " ", "-")
	n.Labels[LabelGPUCount] = strconv.Itoa(len(gpus))
	n.Labels[LabelGPUMemory] = strconv.FormatUint(gpus[0].MemoryMiB, 10)
	migs := migSlices(gpus)
	for _, g := range gpus {
		profiles := slices.Sorted(maps.Keys(migs[g.Index]))
		for _, p := range profiles {
			n.MIG = append(n.MIG, berth.MIGSlices{GPU: g.Index, Profile: p, Count: len(migs[g.Index][p])})
		}
	}
	return n
}

// memTotal is the machine's memory in bytes, from /proc/meminfo (0 where
// there is none).
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	v, _ := parseMemTotal(f)
	return v
}

func parseMemTotal(f *os.File) (int64, error) {
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != "MemTotal" {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo: MemTotal: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("/proc/meminfo: no MemTotal")
}
