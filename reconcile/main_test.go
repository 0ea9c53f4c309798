package reconcile_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-gpu/berth/reconcile/local"
)

// TestMain lets the test binary be the local backend's shim (its default
// shim command is this executable with "shim").
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "shim" {
		os.Exit(local.RunShim(os.Args[2], os.Stderr))
	}
	os.Exit(m.Run())
}

// killRuns ends every workload process a local cluster started under
// stateDir: each shim leads its own session.
func killRuns(stateDir string) {
	filepath.WalkDir(stateDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "shim.pid" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			// The shim's session holds it and the workload's process group.
			exec.Command("pkill", "-KILL", "-s", strconv.Itoa(pid)).Run()
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	})
}
