package berth

import (
	"fmt"
	"strconv"
	"strings"
)

// GPUGroup is a number of identical GPUs: Count GPUs of Model, each whole,
// or each carved into MIGCount slices of MIGProfile.
type GPUGroup struct {
	Count      int
	Model      string
	MIGProfile string
	MIGCount   int
}

// ParseGPUInventory parses a simulated GPU inventory: groups separated by
// commas, each "COUNTxMODEL" for whole GPUs or "COUNTxMODEL:PROFILE" for
// GPUs in MIG mode, optionally "COUNTxMODEL:PROFILE*SLICES" (default: as
// many slices of the profile as one GPU holds). Examples: "8xH100",
// "7xH100,1xH100:1g.10gb", "4xA100-SXM4-40GB:3g.20gb*2".
func ParseGPUInventory(s string) ([]GPUGroup, error) {
	var out []GPUGroup
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, rest, ok := strings.Cut(part, "x")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 1 {
			return nil, fmt.Errorf("GPU inventory %q: %q is not COUNTxMODEL (e.g. 8xH100)", s, part)
		}
		g := GPUGroup{Count: count, Model: rest}
		if model, mig, ok := strings.Cut(rest, ":"); ok {
			g.Model = model
			profile, slices, hasCount := strings.Cut(mig, "*")
			g.MIGProfile = profile
			g.MIGCount = MIGSlicesPerGPU(profile)
			if hasCount {
				if g.MIGCount, err = strconv.Atoi(slices); err != nil || g.MIGCount < 1 {
					return nil, fmt.Errorf("GPU inventory %q: %q: slice count %q is not a positive number", s, part, slices)
				}
			}
			if g.MIGCount == 0 {
				return nil, fmt.Errorf("GPU inventory %q: %q: unknown MIG profile %q", s, part, profile)
			}
		}
		if g.Model == "" {
			return nil, fmt.Errorf("GPU inventory %q: %q names no model", s, part)
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("GPU inventory %q: no GPUs", s)
	}
	return out, nil
}

// MIGSlicesPerGPU is how many slices of a MIG profile one GPU holds (0 for
// an unknown profile): seven 1g slices, three 2g, two 3g, one 4g or 7g.
// Profiles with more memory per compute slice hold fewer (1g.20gb: 4 on an
// H100 80GB).
func MIGSlicesPerGPU(profile string) int {
	switch profile {
	case "1g.20gb", "1g.23gb", "1g.24gb", "1g.35gb", "1g.45gb", "1g.47gb":
		return 4
	}
	g, _, ok := strings.Cut(profile, "g.")
	if !ok {
		return 0
	}
	switch g {
	case "1":
		return 7
	case "2":
		return 3
	case "3":
		return 2
	case "4", "7":
		return 1
	}
	return 0
}

// Inventory returns the GPUs of a node built from groups, in index order:
// the GPU count, the (first) model, and the MIG slices.
func Inventory(groups []GPUGroup) (gpus int, model string, mig []MIGSlices) {
	for _, g := range groups {
		if model == "" {
			model = g.Model
		}
		for range g.Count {
			if g.MIGProfile != "" {
				mig = append(mig, MIGSlices{GPU: gpus, Profile: g.MIGProfile, Count: g.MIGCount})
			}
			gpus++
		}
	}
	return gpus, model, mig
}
