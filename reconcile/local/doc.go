// Package local is the Cluster of this machine, berth's embedded default
// backend: it finds the GPUs with NVML (through berth-nvml), runs each pod of a
// workload run as a process under its own shim, and keeps the run ledger in
// an embedded bbolt database under a state directory.
//
// What it owns:
//   - Running GPU discovery: berth-nvml (cmd/berth-nvml, the one binary
//     that links go-nvml) prints the GPUs as JSON (gpuinfo.Report); the
//     backend runs it at start and to sample utilisation. Where NVML cannot
//     start (no helper, no driver), the node has the simulated inventory
//     (gpuinfo.Simulated, "7xH100,1xH100:1g.10gb": what NVML discovery
//     reports for those GPUs) or none.
//   - The node it reports: one berth.Node with the GPUs, MIG slices, cpu and
//     memory of this machine.
//   - Processes: every pod runs under `berth shim` (RunShim), re-executed in
//     its own session so it outlives berth. The shim holds an flock on its
//     pod directory for its life (liveness without trusting pids), captures
//     stdout and stderr into capped, rotated files, enforces maxDuration and
//     writes exit.json atomically when the process ends.
//   - The ledger: what Apply decided (queued since, attempts, placements,
//     devices, stop requests). Exits come from exit.json and liveness from
//     the flocks, so Observe reads and never writes. A damaged ledger file
//     is a *DamagedError, never a panic (ledger_check.go), and
//     RebuildLedger makes a new one from the runs' record files.
//   - Services' traffic: each replica's own ports (PORT, BERTH_PORT_<NAME>),
//     and a traffic.Router fed with the live pods after every Apply and
//     Observe, which probes them and proxies expose.hostPort; a restart
//     of a running service is a rollout (rollout.go): new attempt beside
//     the old, traffic moved once it is ready, old stopped last.
//
// What it does not own: deciding (reconcile/schedule), diffing and retries
// policy (reconcile), images (there is no container runtime here: the image
// field is noted and ignored), and reading the ledger from another process
// (bbolt lets one process open it; `berth logs` uses the plain files that
// LatestLogs finds).
//
// On disk, under Options.StateDir:
//
//	berth.db                                    the ledger (bbolt)
//	runs/<team>/<name>/<runID>/run.json         the run's ledger record (for `berth ledger rebuild`)
//	runs/<team>/<name>/<runID>/attempt-<n>/pod-<i>/
//	    spec.json    what the shim runs (argv, env, limits)
//	    lock         flocked by the shim for its whole life
//	    shim.pid     written once the shim took over: the pod has started
//	    shim.log     the shim's own notes
//	    stdout.log, stdout.log.1, stderr.log, stderr.log.1
//	    exit.json    how the process ended, written last and atomically
//	    work/        the process's working directory
//	checkpoints/<team>/<name>/<runID>/          BERTH_CHECKPOINT_DIR, kept across attempts;
//	                                            its newest entry is BERTH_RESUME_FROM; removed
//	                                            when the run succeeds or is stopped for good,
//	                                            unless checkpoint.keep
//	outputs/<team>/<name>/<runID>/              BERTH_OUTPUT_DIR of a pipeline step, removed once
//	                                            its retention has passed after the run succeeded
//	runs/.../attempt-<n>/inputs/<step>          BERTH_INPUTS_DIR: a link to each read step's outputs
//	volumes/                                    the default volume root (Options.VolumeRoot;
//	                                            volumes.go says what lives under it)
package local
