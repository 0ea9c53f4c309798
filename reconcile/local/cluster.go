package local

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/local/traffic"
)

// Cluster is this machine as a reconcile.Cluster.
type Cluster struct {
	opts   Options
	log    *slog.Logger
	source gpuSource
	gpus   []GPU
	mig    map[int]map[string][]MIGDevice
	node   berth.Node

	mu     sync.Mutex // serialises Observe and Apply
	ledger *ledger
	// ended caches pods that have ended (exit.json or lost), by directory
	// relative to the state directory: an end never changes.
	ended map[string]podStatus
	// router probes the pods of services and proxies their host ports.
	router *traffic.Router
	// secretsDir is the cluster's secretsDir in the configuration Apply
	// was last given (see secret.go).
	secretsDir string
	// idleLimits are the notebooks' idle limits of the configuration
	// Observe was last given (under mu).
	idleLimits map[berth.WorkloadID]time.Duration
	idleFrom   *berth.Config // the configuration idleLimits are of
	// cfg is the configuration Apply was last given (under mu): a
	// pipeline step's inputs are the current runs of the steps it names.
	cfg *berth.Config
	// autoscale are the services autoscaled on their request rate, as the
	// configuration Observe was last given says, and scalers what their
	// autoscalers keep between Observes (autoscale.go; under mu).
	autoscale map[berth.WorkloadID]berth.Autoscale
	scalers   map[berth.WorkloadID]*scaler
	// utilisation is the GPUs' latest reading (GPUs, NoteGPUs): what a
	// service autoscaled on GPU utilisation is measured by.
	utilisation gpuReading

	// The idle checks of notebooks (notebook.go): one at a time, under
	// idleMu, which guards lastActivity (by run and attempt).
	findJupyter  sync.Once // Options.FindNotebookCommand, under mu
	idleMu       sync.Mutex
	lastActivity map[string]time.Time
	idleClient   *http.Client
	endIdle      context.CancelFunc
	idleDone     chan struct{}
}

var _ reconcile.Cluster = (*Cluster)(nil)

// New opens the state directory, discovers the GPUs, and finishes what a
// previous berth left half done (a start or a stop interrupted by a crash).
func New(opts Options) (*Cluster, error) {
	cpuSet, memSet := opts.CPU != nil, opts.Memory != nil
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("local cluster %s: %w", opts.Name, err)
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("local cluster %s: state directory: %w", opts.Name, err)
	}
	log := opts.Logger.With("cluster", opts.Name)
	led, err := openLedger(opts.StateDir, log.Warn)
	if err != nil {
		return nil, fmt.Errorf("local cluster %s: %w", opts.Name, err)
	}
	opts.Logger = log
	gpus, source, err := findGPUs(context.Background(), opts)
	if err != nil {
		led.close()
		return nil, fmt.Errorf("local cluster %s: GPUs: %w", opts.Name, err)
	}
	if source == sourceSimulated && len(gpus) > 0 {
		opts = opts.simulatedServer(cpuSet, memSet, len(gpus))
	}
	c := &Cluster{
		opts: opts, log: log, source: source, gpus: gpus, mig: migSlices(gpus),
		node:   buildNode(opts.NodeName, gpus, *opts.CPU, *opts.Memory, log),
		ledger: led, ended: map[string]podStatus{}, scalers: map[berth.WorkloadID]*scaler{},
	}
	c.router = traffic.NewRouter(traffic.RouterOptions{Log: log, ListenHost: opts.ExposeHost, Unhealthy: c.unhealthy})
	c.lastActivity, c.idleClient, c.idleDone = map[string]time.Time{}, newIdleClient(), make(chan struct{})
	var idleCtx context.Context
	idleCtx, c.endIdle = context.WithCancel(context.Background())
	go func() { defer close(c.idleDone); c.watchIdle(idleCtx) }()
	c.log.Info("local cluster ready", "node", c.node.Name, "gpus", len(gpus), "gpuModel", c.node.GPUModel,
		"gpuSource", string(source), "stateDir", opts.StateDir, "runs", len(led.runs))
	if err := c.recover(); err != nil {
		c.Close()
		return nil, fmt.Errorf("local cluster %s: recover: %w", opts.Name, err)
	}
	return c, nil
}

// Close closes the ledger. Running pods go on: their shims do not
// need berth, and the next Cluster on the state directory adopts them.
func (c *Cluster) Close() error {
	c.endIdle()
	<-c.idleDone
	c.mu.Lock()
	defer c.mu.Unlock()
	c.router.Close()
	return c.ledger.close()
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.opts.Name }

// Node is the node this cluster reports.
func (c *Cluster) Node() berth.Node { return c.node }

// Simulated reports whether the GPUs are the simulated inventory.
func (c *Cluster) Simulated() bool { return c.source == sourceSimulated }

// StateDir is the absolute state directory.
func (c *Cluster) StateDir() string { return c.opts.StateDir }

// GPUs discovers the GPUs again, with their current utilisation: berth-nvml
// runs once more. A simulated inventory is idle; a CPU-only node has none.
// The reading is kept for the GPU-utilisation autoscaler (NoteGPUs):
// `berth serve` takes one every 10 s for its history.
func (c *Cluster) GPUs(ctx context.Context) ([]GPU, error) {
	if c.source != sourceNVML {
		gpus := slices.Clone(c.gpus)
		c.NoteGPUs(gpus, c.opts.Now())
		return gpus, nil
	}
	r, err := probeGPUs(ctx, c.opts.NVMLCommand)
	if err != nil {
		return nil, err
	}
	c.NoteGPUs(r.GPUs, c.opts.Now())
	return r.GPUs, nil
}

// Observe reports the node, the runs and the queue. It writes nothing: it
// reads the ledger's in-memory copy, the exit.json of pods whose end it has
// not seen yet, and the locks of pods that may be live.
//
// What it reports:
//   - Snapshot.Running: runs with a live pod (including runs being stopped:
//     they still hold their GPUs until their processes end).
//   - Snapshot.Queue: runs waiting to start, since they were first queued:
//     queued runs, preempted runs, failed run-once runs with retries left
//     (Attempts <= the retries recorded when they were started), and
//     services, inference and notebooks whose processes all ended (they
//     are to be started again).
//   - Snapshot.Finished: run-once (batch, training) runs that are over:
//     succeeded, stopped, or failed with no retry left.
//   - Runs: every run in the ledger, with its phase, reason, attempts,
//     times and, in Note, its latest attempt's directory (the logs).
//
// Of the configuration it reads only the notebooks' idle limits (a
// change of the limit alone restarts nothing); cfg may be nil.
func (c *Cluster) Observe(ctx context.Context, cfg *berth.Config) (*reconcile.Observed, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obs := &reconcile.Observed{
		Snapshot: berth.Snapshot{
			Cluster:  c.opts.Name,
			Time:     c.opts.Now(),
			Nodes:    []berth.Node{c.node},
			Running:  []berth.RunningWorkload{},
			Queue:    []berth.QueuedWorkload{},
			Finished: []berth.FinishedRun{},
		},
		Runs: make([]reconcile.RunState, 0, len(c.ledger.runs)),
	}
	snap := &obs.Snapshot
	c.noteIdleLimits(cfg)
	c.noteAutoscale(cfg)
	c.syncTraffic()
	for _, r := range c.ledger.runs {
		v := c.view(r)
		obs.Runs = append(obs.Runs, c.runState(r, v))
		switch {
		case v.phase.Holds():
			snap.Running = append(snap.Running, berth.RunningWorkload{
				Workload: r.Workload, RunID: r.RunID, Kind: r.Kind, Priority: r.Priority, Flavor: r.Flavor,
				Since: v.startedAt, QueuedSince: r.QueuedSince, Resources: r.Resources, Placements: r.Placements,
				MaxDuration: r.MaxDuration, Roles: r.Roles,
			})
			if len(r.Roles) > 0 {
				run := &snap.Running[len(snap.Running)-1]
				run.Resources, run.Placements = berth.Resources{}, []berth.Placement{}
			}
		case r.Stop != nil && r.Stop.Idle && v.phase.Final():
			// A notebook stopped for being idle is over, like a finished
			// batch run: it starts again when its runId changes.
			snap.Finished = append(snap.Finished, berth.FinishedRun{
				Workload: r.Workload, RunID: r.RunID, Succeeded: true, Reason: v.reason, At: v.finishedAt,
			})
		case waitsToStart(r, v):
			since := r.QueuedSince
			if since.IsZero() {
				since = v.finishedAt
			}
			snap.Queue = append(snap.Queue, berth.QueuedWorkload{Workload: r.Workload, RunID: r.RunID, Since: since})
		case r.Kind.RunsOnce() && v.phase.Final():
			snap.Finished = append(snap.Finished, berth.FinishedRun{
				Workload: r.Workload, RunID: r.RunID, Succeeded: v.phase == reconcile.PhaseSucceeded,
				Reason: v.reason, At: v.finishedAt,
			})
		}
	}
	c.askReplicas(snap)
	snap.Sort()
	slices.SortFunc(obs.Runs, func(a, b reconcile.RunState) int {
		return cmp.Or(
			cmp.Compare(a.Workload, b.Workload),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
	return obs, nil
}

// waitsToStart reports whether a run that holds nothing is waiting to be
// (re)started.
func waitsToStart(r *record, v runView) bool {
	switch v.phase {
	case reconcile.PhaseQueued, reconcile.PhasePreempted:
		return true
	case reconcile.PhaseFailed:
		return !r.Kind.RunsOnce() || r.Attempts-r.Preemptions <= r.Retries
	case reconcile.PhaseSucceeded:
		return !r.Kind.RunsOnce()
	}
	return false
}

func (c *Cluster) runState(r *record, v runView) reconcile.RunState {
	s := reconcile.RunState{RunRecord: r.RunRecord, Phase: v.phase, Reason: v.reason, StartedAt: v.startedAt, FinishedAt: v.finishedAt}
	if v.phase == reconcile.PhasePreempted {
		s.Preemptions++ // the latest attempt's, counted at its next start
	}
	if r.Attempt != nil {
		s.Note = c.opts.StateDir + string(filepath.Separator) + attemptDir(r.Workload, r.RunID, r.Attempt.N)
	}
	if v.live {
		s.URL = c.url(r)
	}
	s.Over = r.Stop != nil && r.Stop.Idle && v.phase.Final()
	if v.live && len(v.pods) > 0 {
		s.Pods = len(v.pods)
		for _, p := range v.pods {
			if p.state == podLive {
				s.PodsRunning++
			}
		}
		if s.PodsRunning < s.Pods && v.podFailed != "" {
			s.PodFailed = v.podFailed
		}
	}
	return s
}

// runView is a run as it is now: the ledger's record with its pods' states.
type runView struct {
	phase      reconcile.Phase
	reason     string
	startedAt  time.Time
	finishedAt time.Time
	// live: some pod runs, or is still to be started by an unfinished
	// start; the run holds its capacity.
	live bool
	// allLive: every pod runs.
	allLive bool
	// podFailed says why the first pod that failed did, while others run.
	podFailed string
	pods      []podStatus
}

// view derives a run's phase from its record and its pods.
func (c *Cluster) view(r *record) runView {
	var v runView
	switch {
	case r.Waiting:
		v.phase = reconcile.PhaseQueued
		return v
	case r.Attempt == nil:
		v.phase = reconcile.PhaseQueued
		if r.Stop != nil {
			v.phase, v.reason, v.finishedAt = r.Stop.Phase, r.Stop.Reason, r.Stop.At
		}
		return v
	}
	a := r.Attempt
	v.startedAt = a.StartedAt
	if r.Ended != nil && !a.Starting {
		v.phase, v.reason, v.finishedAt = r.Ended.Phase, r.Ended.Reason, r.Ended.FinishedAt
		return v
	}
	live, pending := c.probePods(&v, a)
	failed := -1
	for i, p := range v.pods {
		if p.state == podLost || (p.state == podNotStarted && !a.Starting) || (p.state == podExited && !p.exit.Succeeded()) {
			failed = i
			break
		}
	}
	if live > 0 || pending > 0 {
		v.live = true
		v.allLive = live == len(v.pods)
		v.finishedAt = time.Time{}
		v.phase = reconcile.PhaseRunning
		if live == 0 {
			v.phase = reconcile.PhaseAdmitted
		}
		if failed >= 0 {
			v.podFailed = v.podReason(failed)
		}
		switch {
		case r.Stop != nil:
			v.reason = "stopping: " + r.Stop.Reason
		case failed >= 0:
			v.reason = v.podFailed
		}
		return v
	}
	if v.finishedAt.IsZero() {
		v.finishedAt = a.StartedAt
	}
	switch {
	case r.Stop != nil:
		v.phase, v.reason = r.Stop.Phase, r.Stop.Reason
		if v.finishedAt.IsZero() {
			v.finishedAt = r.Stop.At
		}
	case failed >= 0:
		v.phase, v.reason = reconcile.PhaseFailed, v.podReason(failed)
	default:
		v.phase = reconcile.PhaseSucceeded
	}
	return v
}

// probePods probes the attempt's pods into v, with the last time one
// ended; it counts those live and those still starting.
func (c *Cluster) probePods(v *runView, a *attempt) (live, pending int) {
	v.pods = make([]podStatus, len(a.Pods))
	for i, p := range a.Pods {
		v.pods[i] = c.podStatus(p.Dir)
		switch v.pods[i].state {
		case podLive:
			live++
		case podNotStarted:
			if a.Starting {
				pending++
			}
		}
		if e := v.pods[i].exit.FinishedAt; e.After(v.finishedAt) {
			v.finishedAt = e
		}
	}
	return live, pending
}

// podReason is why pod i ended, named when the run has several.
func (v *runView) podReason(i int) string {
	var why string
	switch p := v.pods[i]; p.state {
	case podExited:
		why = p.exit.Reason
	default:
		why = reasonLost
	}
	if len(v.pods) > 1 {
		why = "pod " + strconv.Itoa(i) + ": " + why
	}
	return why
}

// podStatus probes a pod, or returns the end it has already seen.
func (c *Cluster) podStatus(rel string) podStatus {
	if s, ok := c.ended[rel]; ok {
		return s
	}
	s, err := probePod(filepath.Join(c.opts.StateDir, rel))
	if err != nil {
		// Counted live: a pod we cannot see may hold its GPUs.
		c.log.Warn("cannot read a pod's state", "pod", rel, "err", err)
		return podStatus{state: podLive}
	}
	if s.state == podExited || s.state == podLost {
		c.ended[rel] = s
	}
	return s
}

// Paths, relative to the state directory.
// (Joined by hand: the elements are path-safe, and Observe builds one per
// run.)
func runDir(id berth.WorkloadID, runID string) string {
	return "runs/" + pathSafe(id.Team()) + "/" + pathSafe(id.Name()) + "/" + pathSafe(runID)
}

func attemptDir(id berth.WorkloadID, runID string, n int) string {
	return runDir(id, runID) + "/attempt-" + strconv.Itoa(n)
}

func podDir(id berth.WorkloadID, runID string, n, pod int) string {
	return filepath.Join(attemptDir(id, runID, n), "pod-"+strconv.Itoa(pod))
}

func checkpointDir(id berth.WorkloadID, runID string) string {
	return filepath.FromSlash(berth.LocalCheckpointDir(id, runID))
}

// askReplicas writes into the snapshot what the autoscaler of each
// autoscaled service's run asks for now (Snapshot.Scale); the replicas
// that run are that run's pods and its replicas' runs
// (berth.ScaleRunID: "1.replica-2").
func (c *Cluster) askReplicas(snap *berth.Snapshot) {
	if len(c.autoscale) == 0 {
		return
	}
	running := map[berth.WorkloadID]int{}
	gpus := map[berth.WorkloadID][]int{}
	for _, rw := range snap.Running {
		if _, ok := c.autoscale[rw.Workload]; ok {
			running[rw.Workload] += max(len(rw.Placements), 1)
			for _, p := range rw.Placements {
				gpus[rw.Workload] = append(gpus[rw.Workload], p.GPUs...)
			}
		}
	}
	for i := range snap.Running {
		rw := &snap.Running[i]
		if _, _, replica := berth.ParseScaleRunID(rw.RunID); replica || running[rw.Workload] == 0 {
			continue
		}
		snap.Scale = append(snap.Scale, berth.ScaleWant{Workload: rw.Workload, RunID: rw.RunID,
			Replicas: c.desiredReplicas(rw.Workload, running[rw.Workload], gpus[rw.Workload], snap.Time)})
	}
}

// ReadyReplicas is how many pods of a service pass readiness; ok is false
// for a service berth does not route (no ports: no probe results).
func (c *Cluster) ReadyReplicas(id berth.WorkloadID) (n int, ok bool) {
	if !slices.Contains(c.router.Services(), id) {
		return 0, false
	}
	return len(c.router.Ready(id)), true
}
