package berth

// The environment every pod of a gang gets on every backend, so the same
// torchrun or DeepSpeed command runs unchanged on one machine and on
// Kubernetes. The PyTorch names are what its launchers and
// init_process_group read; berth's own names say the same for scripts that
// read those. Each pod is one node to PyTorch: it sees only its own GPUs
// (CUDA_VISIBLE_DEVICES on one machine, its container on Kubernetes), so
// LOCAL_RANK is 0 on both backends.
const (
	EnvRank        = "RANK"        // the pod's global rank, 0 .. WORLD_SIZE-1
	EnvWorldSize   = "WORLD_SIZE"  // the pods of the gang as admitted
	EnvLocalRank   = "LOCAL_RANK"  // always 0: one pod, one node
	EnvMasterAddr  = "MASTER_ADDR" // where rank 0 listens
	EnvMasterPort  = "MASTER_PORT" // the port rank 0 listens on
	EnvWorkerIndex = "BERTH_WORKER_INDEX"

	// EnvCheckpointDir is the run's checkpoint directory: it lives as long
	// as the run (workload and runId), across preemptions and retries.
	EnvCheckpointDir = "BERTH_CHECKPOINT_DIR"
	// EnvResume is "1" when an attempt of a run starts after an earlier one
	// of the same run (a preemption or a retry) and the spec asks to resume.
	EnvResume = "BERTH_RESUME"
	// EnvResumeFrom is the newest entry of the checkpoint directory when
	// EnvResume is set and the backend can see it (one machine).
	EnvResumeFrom = "BERTH_RESUME_FROM"
)

// GangEnv lists the names every pod of a gang (a training run, or a
// workload with roles) gets on every backend, in the order the README's
// table gives them.
var GangEnv = []string{EnvRank, EnvWorldSize, EnvLocalRank, EnvMasterAddr, EnvMasterPort, EnvWorkerIndex}
