package local

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/berth-gpu/berth"
)

// Options configure a local Cluster. The zero value is usable: every field
// has a default, and none is read from the environment.
type Options struct {
	// Name is the cluster's name in the repository's clusters.
	Name string
	// StateDir holds the ledger, the run directories and checkpoints.
	// Default: "berth-state" in the working directory.
	StateDir string
	// VolumeRoot is the directory the workloads' volumes live under (the
	// cluster's volumeRoot): datasets and team volumes at their paths
	// relative to it, scratch below scratch/. Default: StateDir/volumes.
	VolumeRoot string
	// SimulatedGPUs is the inventory used when NVML cannot start ("8xH100",
	// "7xH100,1xH100:1g.10gb"; see berth.ParseGPUInventory). Empty: a
	// machine without NVML is a CPU-only node.
	SimulatedGPUs string
	// NVMLCommand runs berth-nvml, which prints this machine's GPUs as
	// JSON (gpuinfo.Report): its path, then any arguments. berth itself
	// does not link NVML (see cmd/berth-nvml). Empty: NVML is not
	// available, and the node has SimulatedGPUs or none; cmd/berth looks
	// for berth-nvml beside its executable, then on PATH.
	NVMLCommand []string
	// NodeName names the node. Default: the host name.
	NodeName string
	// CPU and Memory override what the node offers. Default: the machine's
	// (runtime.NumCPU, MemTotal of /proc/meminfo); with a simulated GPU
	// inventory, a typical GPU server's instead: 16 cpu and 128Gi per GPU
	// (the machine's own would starve the simulation of a GPU box).
	CPU    *berth.Quantity
	Memory *berth.Quantity
	// GracePeriod is how long a stopped process has between SIGTERM and
	// SIGKILL. Default 10 s.
	GracePeriod time.Duration
	// ShimCommand re-executes berth as a shim; the pod directory is
	// appended. Default: this executable with "shim".
	ShimCommand []string
	// Env is the environment every process starts from, before the
	// workload's env and berth's variables. Default: a standard PATH only.
	Env []string
	// LogMaxBytes caps each of a pod's stdout.log and stderr.log; a full
	// file is rotated to .1 (one kept), so a stream never takes more than
	// twice this. Default 16 MiB.
	LogMaxBytes int64
	// Logger receives berth's own notes. Default: discarded.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// ExposeHost is the address berth's proxies listen on for services
	// with expose.hostPort. Default 127.0.0.1 ("0.0.0.0": every
	// interface).
	ExposeHost string
	// ReadyTimeout bounds how long a rolling update waits for the new
	// replicas to pass readiness before it gives up and keeps the old
	// ones. Default 2 minutes.
	ReadyTimeout time.Duration
	// NotebookCommand is the Jupyter server a notebook without a command
	// of its own runs, before the arguments berth adds (port, base URL,
	// directory): ["jupyter-lab"], ["python3", "-m", "jupyter_server"].
	// Empty: FindNotebookCommand's.
	NotebookCommand []string
	// FindNotebookCommand finds the Jupyter server on this machine; it is
	// called once, when the first notebook without a command starts and
	// NotebookCommand is empty (finding it runs Python). Nil, or nothing
	// found: such a notebook fails to start with ErrNoJupyter.
	FindNotebookCommand func() []string
	// IdleCheckEvery is how often the notebooks with an idle limit are
	// asked for their last activity. Default 30 s.
	IdleCheckEvery time.Duration
}

const (
	defaultGrace    = 10 * time.Second
	defaultLogBytes = 16 << 20
	defaultPath     = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// simulatedServer sizes the node of a simulated inventory like a GPU
// server, unless the caller said otherwise.
func (o Options) simulatedServer(cpuSet, memSet bool, gpus int) Options {
	if !cpuSet {
		q := berth.MilliQuantity(int64(16*gpus) * 1000)
		o.CPU = &q
	}
	if !memSet {
		q := berth.MilliQuantity(int64(128*gpus) << 30 * 1000)
		o.Memory = &q
	}
	return o
}

func (o Options) withDefaults() (Options, error) {
	if o.StateDir == "" {
		o.StateDir = "berth-state"
	}
	abs, err := filepath.Abs(o.StateDir)
	if err != nil {
		return o, err
	}
	o.StateDir = abs
	if o.VolumeRoot == "" {
		o.VolumeRoot = filepath.Join(o.StateDir, "volumes")
	}
	if o.VolumeRoot, err = filepath.Abs(o.VolumeRoot); err != nil {
		return o, err
	}
	if o.NodeName == "" {
		if o.NodeName, err = os.Hostname(); err != nil || o.NodeName == "" {
			o.NodeName = "localhost"
		}
	}
	if o.CPU == nil {
		q := berth.MilliQuantity(int64(runtime.NumCPU()) * 1000)
		o.CPU = &q
	}
	if o.Memory == nil {
		q := berth.MilliQuantity(memTotal() * 1000)
		o.Memory = &q
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = defaultGrace
	}
	if len(o.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return o, err
		}
		o.ShimCommand = []string{exe, "shim"}
	}
	if o.Env == nil {
		o.Env = []string{defaultPath}
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = defaultLogBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ExposeHost == "" {
		o.ExposeHost = "127.0.0.1"
	}
	if o.IdleCheckEvery <= 0 {
		o.IdleCheckEvery = 30 * time.Second
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	return o, nil
}
