package main

import (
	"os"
	"os/exec"
	"path/filepath"
)

// nvmlHelperName is the binary that talks to NVML for the local backend.
// berth does not link NVML itself: see cmd/berth-nvml.
const nvmlHelperName = "berth-nvml"

// nvmlHelper is the command that reports this machine's GPUs: berth-nvml
// beside this executable (make build puts both in bin/, the image both in
// /usr/local/bin), else the first on PATH, else none (the local backend
// then says NVML is not available, and why).
func nvmlHelper() []string {
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), nvmlHelperName)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return []string{p}
			}
		}
	}
	if p, err := exec.LookPath(nvmlHelperName); err == nil {
		return []string{p}
	}
	return nil
}
