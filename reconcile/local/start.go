package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// testHook, when set by a test, is called at the points of a start where a
// crash matters: "recorded" (the attempt is in the ledger, no pod spawned)
// and "spawned" (pod i's shim runs).
var testHook func(point string, pod int)

// start starts a new attempt of r: it records the attempt (every pod's
// argv, env and devices) before it spawns anything, spawns a shim per pod,
// and records the start. A crash in between leaves Attempt.Starting set,
// and the next Cluster finishes the start from the ledger (recover), so a
// pod is never started twice and never forgotten.
func (c *Cluster) start(r *record, w berth.Workload) error {
	n := r.Attempts + 1
	if r.MasterPort == 0 {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("master port: %w", err)
		}
		r.MasterPort = port
	}
	pods, scratch, err := c.podSpecs(r, w, n)
	if err != nil {
		return err
	}
	r.DropCheckpoints = w.Checkpoint != nil && !w.Checkpoint.Keep
	r.OutputsRetention = 0
	if w.Outputs != nil {
		r.OutputsRetention = w.Outputs.Retention
	}
	if w.Checkpoint != nil {
		if err := os.MkdirAll(filepath.Join(c.opts.StateDir, checkpointDir(r.Workload, r.RunID)), 0o755); err != nil {
			return fmt.Errorf("checkpoint directory: %w", err)
		}
	}
	if w.Image != "" {
		c.log.Info("image not used: no container runtime is configured; the command runs as a process",
			"workload", r.Workload, "image", w.Image)
	}
	if r.Stop != nil && r.Stop.Phase == reconcile.PhasePreempted {
		r.Preemptions++
	}
	r.Attempts = n
	r.Attempt = &attempt{N: n, Pods: pods, Starting: true, Scratch: scratch}
	r.Waiting, r.Stop, r.Ended = false, nil, nil
	if err := c.ledger.put(r); err != nil {
		return err
	}
	if testHook != nil {
		testHook("recorded", -1)
	}
	return c.finishStart(r)
}

// finishStart spawns every pod of r's attempt that has not started and
// records the start. On failure it stops the pods it started and records
// the attempt as failed.
func (c *Cluster) finishStart(r *record) error {
	a := r.Attempt
	var err error
	for i, p := range a.Pods {
		var adopted bool
		if adopted, err = c.spawnPod(p); err != nil {
			err = fmt.Errorf("pod %d: %w", i, err)
			break
		}
		if adopted {
			c.log.Info("pod already started: adopted", "workload", r.Workload, "run", r.RunID, "attempt", a.N, "pod", i)
		}
		if testHook != nil {
			testHook("spawned", i)
		}
	}
	a.Starting = false
	a.StartedAt = c.opts.Now()
	if err != nil {
		r.Stop = &stopRequest{Phase: reconcile.PhaseFailed, Reason: "start failed: " + err.Error(), At: c.opts.Now()}
		c.signalPods(r, map[int]bool{})
	}
	if perr := c.ledger.put(r); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		c.log.Info("run started", "workload", r.Workload, "run", r.RunID, "attempt", a.N, "pods", len(a.Pods))
	}
	return err
}

// localPod is one pod to start: its role (none for a workload without
// roles), its rank within the role, and its placement.
type localPod struct {
	role      string
	roleRank  int
	roleSize  int
	argv      []string
	env       berth.Env
	placement berth.Placement
}

// podsOf lists a run's pods in rank order: a workload's pods, or every
// role's in role order (each role's command, args and env over the
// workload's).
func podsOf(r *record, w berth.Workload) ([]localPod, error) {
	if len(w.Roles) == 0 {
		var argv []string // a notebook without a command: Jupyter, filled in by podSpecs
		switch {
		case len(w.Command) > 0:
			argv = append(append([]string{}, w.Command...), w.Args...)
		case w.Kind != berth.KindNotebook:
			return nil, errors.New("no command: the local backend runs the command as a process and cannot use an image's entrypoint")
		}
		count := len(r.Placements)
		if count == 0 {
			if w.Resources.UsesGPU() {
				return nil, errors.New("no placements: a GPU workload needs the scheduler's placements")
			}
			count = w.Pods()
		}
		out := make([]localPod, count)
		for i := range out {
			out[i] = localPod{roleRank: i, roleSize: count, argv: argv, env: w.Env}
			if i < len(r.Placements) {
				out[i].placement = r.Placements[i]
			}
		}
		return out, nil
	}
	placed := map[string][]berth.Placement{}
	for _, x := range r.Roles {
		placed[x.Role] = x.Placements
	}
	var out []localPod
	for _, name := range w.RoleNames() {
		role := w.Roles[name]
		command, args := w.Command, w.Args
		if role.Command != nil {
			command = role.Command
		}
		if role.Args != nil {
			args = role.Args
		}
		if len(command) == 0 {
			return nil, fmt.Errorf("role %s: no command: the local backend runs the command as a process and cannot use an image's entrypoint", name)
		}
		env := w.Env.With(role.Env)
		ps := placed[name]
		count := len(ps)
		if count == 0 {
			if role.Resources.UsesGPU() {
				return nil, fmt.Errorf("role %s: no placements: a GPU role needs the scheduler's placements", name)
			}
			count = role.Count
		}
		argv := append(append([]string{}, command...), args...)
		for i := range count {
			p := localPod{role: name, roleRank: i, roleSize: count, argv: argv, env: env}
			if i < len(ps) {
				p.placement = ps[i]
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// podSpecs decides every pod's directory, argv, environment and devices,
// and makes the attempt's volumes; it returns the attempt's scratch
// directory.
func (c *Cluster) podSpecs(r *record, w berth.Workload, n int) ([]podSpec, string, error) {
	lp, err := podsOf(r, w)
	if err != nil {
		return nil, "", err
	}
	count := len(lp)
	inUse := c.devicesInUse(r.Key())
	ckptEnv, err := c.checkpointEnv(r, w, n)
	if err != nil {
		return nil, "", err
	}
	vols, err := c.planVolumes(r, w, n)
	if err != nil {
		return nil, "", err
	}
	pipeEnv, err := c.pipelineEnv(r, w, n)
	if err != nil {
		return nil, "", err
	}
	secrets, err := c.secretFiles(r.Workload, lp)
	var se *reconcile.SecretError
	if errors.As(err, &se) {
		se.Locate(nil, w) // the workload's position: the spec here has no others
	}
	if err != nil {
		return nil, "", err
	}
	var note string
	if w.Image != "" {
		note = "image " + w.Image + " not used: no container runtime is configured; the command runs as a process"
	}
	pods := make([]podSpec, count)
	taken := map[int]bool{r.MasterPort: true}
	for i := range count {
		p := lp[i].placement
		if p.Node != "" && p.Node != c.node.Name {
			return nil, "", fmt.Errorf("pod %d is placed on node %q, but this cluster's node is %q", i, p.Node, c.node.Name)
		}
		devices, err := c.devices(p, inUse)
		if err != nil {
			return nil, "", fmt.Errorf("pod %d: %w", i, err)
		}
		berthEnv := rankEnv(r, w, lp, i, n, devices)
		ports, portEnv, err := replicaPorts(w.ServedPorts(), taken)
		if err != nil {
			return nil, "", fmt.Errorf("pod %d: %w", i, err)
		}
		berthEnv = append(berthEnv, portEnv...)
		berthEnv = append(berthEnv, ckptEnv...)
		volEnv, err := c.podVolumeEnv(vols, i)
		if err != nil {
			return nil, "", fmt.Errorf("pod %d: %w", i, err)
		}
		berthEnv = append(berthEnv, volEnv...)
		berthEnv = append(berthEnv, pipeEnv...)
		argv, workDir := lp[i].argv, ""
		if w.Kind == berth.KindNotebook {
			nb, err := c.notebookPod(r.Workload, argv, ports[0])
			if err != nil {
				return nil, "", err
			}
			argv, workDir = nb.argv, nb.dir
			berthEnv = append(berthEnv, nb.env...)
		}
		pods[i] = podSpec{
			Dir:     podDir(r.Workload, r.RunID, n, i),
			Argv:    argv,
			Env:     mergeEnv(c.opts.Env, lp[i].env.Values(), berthEnv),
			Secrets: secrets[i],
			Devices: devices,
			Note:    note,
			Ports:   ports,
			WorkDir: workDir,
		}
	}
	return pods, vols.scratchDir, nil
}

// rankEnv is what pod i of attempt n of r learns of itself: its
// devices, its run, and its rank in the run, in a gang and in its role.
func rankEnv(r *record, w berth.Workload, lp []localPod, i, n int, devices []string) []string {
	visible := strings.Join(devices, ",")
	count := len(lp)
	berthEnv := []string{
		"CUDA_VISIBLE_DEVICES=" + visible,
		"NVIDIA_VISIBLE_DEVICES=" + visible,
		"BERTH_WORKLOAD=" + string(r.Workload),
		"BERTH_RUN_ID=" + r.RunID,
		"BERTH_ATTEMPT=" + strconv.Itoa(n),
		"BERTH_RANK=" + strconv.Itoa(i),
		"BERTH_WORLD_SIZE=" + strconv.Itoa(count),
		"BERTH_MASTER_ADDR=127.0.0.1",
		"BERTH_MASTER_PORT=" + strconv.Itoa(r.MasterPort),
	}
	if w.Kind == berth.KindTraining || len(w.Roles) > 0 {
		// A gang: PyTorch's names, with the values the Kubernetes
		// backend gives them (berth.GangEnv).
		berthEnv = append(berthEnv,
			berth.EnvRank+"="+strconv.Itoa(i),
			berth.EnvWorldSize+"="+strconv.Itoa(count),
			berth.EnvLocalRank+"=0",
			berth.EnvMasterAddr+"=127.0.0.1",
			berth.EnvMasterPort+"="+strconv.Itoa(r.MasterPort),
			berth.EnvWorkerIndex+"="+strconv.Itoa(i))
	}
	if lp[i].role != "" {
		// A workload with roles: the role, the rank within it, and
		// every role's size, so a launcher can find its workers; the
		// pods of the roles before it (the Kubernetes backend cannot
		// always say BERTH_RANK, but always says this).
		berthEnv = append(berthEnv, "BERTH_ROLE="+lp[i].role, "BERTH_ROLE_RANK="+strconv.Itoa(lp[i].roleRank),
			"BERTH_RANK_OFFSET="+strconv.Itoa(i-lp[i].roleRank),
			"BERTH_ROLE_SIZE="+strconv.Itoa(lp[i].roleSize), "BERTH_ROLES="+roleSizes(lp))
	}
	return berthEnv
}

// checkpointEnv is what a pod of attempt n of r learns of its run's
// checkpoints: the directory (one per run, kept across its attempts), and,
// when an earlier attempt left a checkpoint there and the spec resumes,
// BERTH_RESUME=1 with the newest one. It is decided once per attempt and
// recorded with the attempt, so a pod started after a crash of berth reads
// what the others read.
func (c *Cluster) checkpointEnv(r *record, w berth.Workload, n int) ([]string, error) {
	if w.Checkpoint == nil {
		return nil, nil
	}
	dir := filepath.Join(c.opts.StateDir, checkpointDir(r.Workload, r.RunID))
	env := []string{berth.EnvCheckpointDir + "=" + dir}
	if n <= 1 || !w.Checkpoint.Resume {
		return env, nil
	}
	latest, err := latestCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	if latest != "" {
		env = append(env, berth.EnvResume+"=1", berth.EnvResumeFrom+"="+latest)
	}
	return env, nil
}

// latestCheckpoint is the newest entry of dir (a file or a directory; by
// modification time, then by name), or "" when there is none. Names that
// start with "." are left out: a checkpoint being written under a
// temporary name and renamed when complete is never resumed from half
// written.
func latestCheckpoint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var best string
	var bestTime time.Time
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing (a rotation of old checkpoints)
		}
		if err != nil {
			return "", err
		}
		if t := info.ModTime(); best == "" || t.After(bestTime) || (t.Equal(bestTime) && e.Name() > best) {
			best, bestTime = e.Name(), t
		}
	}
	if best == "" {
		return "", nil
	}
	return filepath.Join(dir, best), nil
}

// roleSizes is "launcher=1,worker=8": every role and its pods, in role
// order.
func roleSizes(pods []localPod) string {
	var parts []string
	for _, p := range pods {
		if p.roleRank == 0 {
			parts = append(parts, p.role+"="+strconv.Itoa(p.roleSize))
		}
	}
	return strings.Join(parts, ",")
}

// mergeEnv is base, then the workload's env in key order, then berth's
// variables; a later value of a name replaces an earlier one (berth's own
// win: a workload cannot widen its CUDA_VISIBLE_DEVICES).
func mergeEnv(base []string, spec map[string]string, berthEnv []string) []string {
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	all := append([]string{}, base...)
	for _, k := range keys {
		all = append(all, k+"="+spec[k])
	}
	all = append(all, berthEnv...)
	index := map[string]int{}
	var out []string
	for _, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// devices resolves a placement to device UUIDs: whole GPUs by index, the
// shared GPU for a fraction, and for each MIG slice a MIG device of that
// profile on that GPU that no live pod uses.
func (c *Cluster) devices(p berth.Placement, inUse map[string]bool) ([]string, error) {
	var out []string
	if len(p.MIG) > 0 {
		for _, s := range p.MIG {
			var found string
			for _, m := range c.mig[s.GPU][s.Profile] {
				if !inUse[m.UUID] {
					found = m.UUID
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("no free MIG device %s on GPU %d", s.Profile, s.GPU)
			}
			inUse[found] = true
			out = append(out, found)
		}
		return out, nil
	}
	for _, g := range p.GPUs {
		if g < 0 || g >= len(c.gpus) {
			return nil, fmt.Errorf("GPU %d does not exist (the node has %d)", g, len(c.gpus))
		}
		if c.gpus[g].MIGEnabled && p.GPUFraction == 0 {
			return nil, fmt.Errorf("GPU %d is in MIG mode: it is used through its MIG devices", g)
		}
		out = append(out, c.gpus[g].UUID)
	}
	return out, nil
}

// devicesInUse is the MIG devices held by live pods of runs other than
// skip. (Whole GPUs and fractions are the scheduler's to share out; MIG
// devices are picked here, so here is where they are tracked.)
func (c *Cluster) devicesInUse(skip berth.RunKey) map[string]bool {
	inUse := map[string]bool{}
	for k, r := range c.ledger.runs {
		if k == skip || r.Attempt == nil || r.Ended != nil || r.Waiting {
			continue
		}
		v := c.view(r)
		if !v.live {
			continue
		}
		for i, p := range r.Attempt.Pods {
			if v.pods[i].state == podLive || v.pods[i].state == podNotStarted {
				for _, d := range p.Devices {
					if strings.HasPrefix(d, "MIG-") {
						inUse[d] = true
					}
				}
			}
		}
	}
	return inUse
}

// replicaPorts gives one replica a free port on 127.0.0.1 for each of
// the workload's ports, none of them in taken (which it extends: two
// replicas of one start never share one), and the environment that tells
// the replica: BERTH_PORT_<NAME> for each, and PORT for the first, which
// is what most servers read. The replica listens where berth says, not on
// the declared number, so that replicas and a rollout's new ones beside
// the old never collide; berth's proxy listens on expose.hostPort.
func replicaPorts(declared []berth.Port, taken map[int]bool) ([]int, []string, error) {
	if len(declared) == 0 {
		return nil, nil, nil
	}
	ports := make([]int, len(declared))
	var env []string
	for j, d := range declared {
		for {
			p, err := freePort()
			if err != nil {
				return nil, nil, fmt.Errorf("port %s: %w", berth.PortEnv(d), err)
			}
			if !taken[p] {
				taken[p], ports[j] = true, p
				break
			}
		}
		env = append(env, berth.PortEnv(d)+"="+strconv.Itoa(ports[j]))
	}
	return ports, append(env, "PORT="+strconv.Itoa(ports[0])), nil
}

// freePort is a TCP port free now on the loopback address: the run's
// BERTH_MASTER_PORT, kept in the ledger so every attempt gets the same.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// spawnPod starts a pod's shim, unless the pod has started before (then it
// is adopted: reported true). The lock is taken here, before the shim
// exists, and handed to it as an inherited descriptor: at no moment does a
// started pod look unstarted to another Cluster.
func (c *Cluster) spawnPod(p podSpec) (adopted bool, err error) {
	dir := filepath.Join(c.opts.StateDir, p.Dir)
	st, err := probePod(dir)
	if err != nil {
		return false, err
	}
	if st.state != podNotStarted {
		return true, nil
	}
	for _, d := range []string{dir, p.workDir(c.opts.StateDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return false, err
		}
	}
	if err := c.writeShimSpec(dir, p); err != nil {
		return false, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil // a shim has it
		}
		return false, fmt.Errorf("lock: %w", err)
	}
	// Holding the lock, look again: a shim may have run and ended between
	// the probe and the lock.
	if _, err := os.Stat(filepath.Join(dir, filePID)); err == nil {
		return true, nil
	}
	shimLog, err := os.OpenFile(filepath.Join(dir, fileShim), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer shimLog.Close()
	args := append(append([]string{}, c.opts.ShimCommand[1:]...), dir)
	cmd := exec.Command(c.opts.ShimCommand[0], args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = shimLog, shimLog
	cmd.ExtraFiles = []*os.File{lock} // descriptor 3: lockFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("shim: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it when it ends while berth runs
	lock.Close()
	return false, waitForShim(dir, exited)
}

// writeShimSpec writes what the shim runs (spec.json) into the pod's
// directory.
func (c *Cluster) writeShimSpec(dir string, p podSpec) error {
	spec := shimSpec{
		Argv: p.Argv, Env: p.Env, Secrets: p.Secrets, Dir: p.workDir(c.opts.StateDir),
		GracePeriod: berth.Duration(c.opts.GracePeriod), LogMaxBytes: c.opts.LogMaxBytes, Note: p.Note,
	}
	if r := c.recordOfPod(p.Dir); r != nil {
		spec.MaxDuration = r.MaxDuration
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, fileSpec), append(b, '\n'))
}

// waitForShim waits for the shim to take over (shim.pid), so the start is
// recorded only once the pod really started.
func waitForShim(dir string, exited <-chan struct{}) error {
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(dir, filePID)); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		select {
		case <-exited:
			if _, err := os.Stat(filepath.Join(dir, filePID)); err == nil {
				return nil
			}
			return fmt.Errorf("the shim ended before starting the process: %s", tail(filepath.Join(dir, fileShim)))
		case <-deadline:
			return errors.New("the shim did not start within 30s")
		case <-tick.C:
		}
	}
}

// recordOfPod finds the record whose latest attempt has the pod.
func (c *Cluster) recordOfPod(rel string) *record {
	for _, r := range c.ledger.runs {
		if r.Attempt == nil {
			continue
		}
		for _, p := range r.Attempt.Pods {
			if p.Dir == rel {
				return r
			}
		}
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// signalPods sends SIGTERM to the shim of every live pod of r not yet in
// signalled, and returns signalled with those it reached. The shim passes
// it on to the process group and escalates to SIGKILL after the grace
// period.
func (c *Cluster) signalPods(r *record, signalled map[int]bool) map[int]bool {
	if r.Attempt == nil {
		return signalled
	}
	return c.signalAttempt(r.Attempt, signalled)
}

// recover finishes what a crash interrupted: starts recorded but not
// finished (the pods not yet started are started, the others adopted),
// and stops recorded whose pods still run (signalled again).
func (c *Cluster) recover() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, r := range c.ledger.runs {
		switch {
		case r.Attempt != nil && r.Attempt.Starting:
			r := r.clone()
			c.log.Warn("finishing a start a crash interrupted", "workload", r.Workload, "run", r.RunID, "attempt", r.Attempt.N)
			if err := c.finishStart(r); err != nil {
				errs = append(errs, fmt.Errorf("workload %s run %s: %w", r.Workload, r.RunID, err))
			}
		case r.Retiring != nil:
			// A rollout a crash interrupted: the new attempt may not be
			// ready, but the old one was recorded as going; stop it (the
			// new one is the run's now, and restarts if it fails).
			c.log.Warn("stopping the old replicas of a rollout a crash interrupted", "workload", r.Workload, "run", r.RunID)
			c.signalAttempt(r.Retiring, map[int]bool{})
			r := r.clone()
			r.Retiring = nil
			if err := c.ledger.put(r); err != nil {
				errs = append(errs, err)
			}
		case r.Stop != nil && r.Attempt != nil && r.Ended == nil:
			if c.view(r).live {
				c.log.Warn("stopping again a run a crash interrupted", "workload", r.Workload, "run", r.RunID)
				c.signalPods(r, map[int]bool{})
			}
		}
	}
	return errors.Join(errs...)
}
