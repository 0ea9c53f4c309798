package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
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

// findGPUs discovers the GPUs with berth-nvml or, when NVML cannot start
// (no helper, no driver), with the simulated inventory. It logs once why
// it falls back.
func findGPUs(ctx context.Context, opts Options) ([]GPU, gpuSource, error) {
	log := opts.Logger
	r, err := probeGPUs(ctx, opts.NVMLCommand)
	if err != nil {
		return nil, "", err
	}
	if r.Source != gpuinfo.SourceNone {
		if opts.SimulatedGPUs != "" && len(r.GPUs) > 0 {
			log.Info("GPUs found with NVML; the simulated inventory is not used",
				"gpus", len(r.GPUs), "simulatedGPUs", opts.SimulatedGPUs)
		}
		source := sourceNVML
		if r.Source == gpuinfo.SourceMock {
			source = sourceSimulated
		}
		return r.GPUs, source, nil
	}
	if opts.SimulatedGPUs == "" {
		log.Warn("NVML is not available ("+r.Why+"): no GPUs; this node runs CPU-only workloads. "+
			"Set simulatedGPUs (e.g. --gpus 8xH100) to simulate GPUs", "nvml", r.Code)
		return nil, sourceNone, nil
	}
	gpus, err := gpuinfo.Simulated(opts.SimulatedGPUs)
	if err != nil {
		return nil, "", err
	}
	log.Warn("NVML is not available ("+r.Why+"): using the simulated GPU inventory "+opts.SimulatedGPUs,
		"nvml", r.Code, "gpus", len(gpus))
	return gpus, sourceSimulated, nil
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
