package local

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
)

// GPU is one GPU as NVML reports it (through berth-nvml).
type GPU = gpuinfo.GPU

// MIGDevice is one MIG device (a GPU instance with its compute instance).
type MIGDevice = gpuinfo.MIGDevice

// SimulatedUUID is the UUID a simulated GPU gets: derived from its index so
// tests and demos see the same devices on every run.
func SimulatedUUID(gpu int) string { return gpuinfo.SimulatedUUID(gpu) }

// SimulatedMIGUUID is the UUID of MIG device dev of simulated GPU gpu.
func SimulatedMIGUUID(gpu, dev int) string { return gpuinfo.SimulatedMIGUUID(gpu, dev) }

// probeTimeout bounds one run of berth-nvml: NVML answers in well under a
// second; a driver that hangs must not hang berth.
const probeTimeout = 30 * time.Second

// probeOutputLimit bounds what berth reads of berth-nvml's stdout and
// stderr: a report of 16 GPUs with 7 MIG devices each is about 20 KB.
const probeOutputLimit = 1 << 20

// probeGPUs runs berth-nvml (command, with its arguments) and reads its
// report. No command, or one that cannot be started, is NVML that is not
// available, with why; a command that ran and failed is an error: NVML
// started and could not list the GPUs.
func probeGPUs(ctx context.Context, command []string) (gpuinfo.Report, error) {
	if len(command) == 0 {
		return gpuinfo.Report{Source: gpuinfo.SourceNone, Code: "no berth-nvml",
			Why: "berth-nvml (berth's NVML helper) was not found beside berth or on PATH"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = probeOutputLimit, probeOutputLimit
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return gpuinfo.Report{Source: gpuinfo.SourceNone, Code: "no berth-nvml",
			Why: fmt.Sprintf("berth-nvml cannot start: %v", err)}, nil
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = fmt.Sprintf("no answer in %s", probeTimeout)
		}
		if msg == "" {
			msg = err.Error()
		}
		return gpuinfo.Report{}, fmt.Errorf("%s: %s", command[0], msg)
	}
	if stdout.full {
		return gpuinfo.Report{}, fmt.Errorf("%s: report larger than %d bytes", command[0], probeOutputLimit)
	}
	var r gpuinfo.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return gpuinfo.Report{}, fmt.Errorf("%s: report: %w", command[0], err)
	}
	switch r.Source {
	case gpuinfo.SourceNVML, gpuinfo.SourceMock, gpuinfo.SourceNone:
	default:
		return gpuinfo.Report{}, fmt.Errorf("%s: report: unknown source %q", command[0], r.Source)
	}
	return r, nil
}

// limitedBuffer keeps the first max bytes written to it and notes that
// more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	full bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.full = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// migSlices groups a GPU list's MIG devices per GPU and profile, in GPU
// then profile order, as a snapshot's node lists them.
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
