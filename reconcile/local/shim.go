package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-gpu/berth"
)

// shimSpec is spec.json: what one pod's shim runs.
type shimSpec struct {
	Argv        []string       `json:"argv"`
	Env         []string       `json:"env"`
	Secrets     []secretFile   `json:"secrets,omitempty"` // read at start, set over Env
	Dir         string         `json:"dir"`               // the working directory
	MaxDuration berth.Duration `json:"maxDuration,omitempty"`
	GracePeriod berth.Duration `json:"gracePeriod"`
	LogMaxBytes int64          `json:"logMaxBytes"`
	// Note is written to shim.log first (the image that is not used).
	Note string `json:"note,omitempty"`
}

// lockFD is the descriptor the shim inherits its pod's locked lock file
// on: berth takes the lock before it starts the shim, so there is no moment
// when a started pod looks unstarted.
const lockFD = 3

// RunShim is `berth shim DIR`: it runs the pod in DIR to its end and
// returns the shim's exit code (not the process's: that goes to
// exit.json). Notes go to stderr, which berth points at DIR/shim.log.
//
// In order: hold the pod's lock for the shim's whole life; refuse a pod
// that already started (a pod runs at most once); write shim.pid; start the
// process in its own process group with stdout and stderr captured to
// capped files; on maxDuration or SIGTERM send SIGTERM to the group, and
// SIGKILL after the grace period; write exit.json atomically.
func RunShim(dir string, stderr io.Writer) int {
	notef := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s shim: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	}
	lock, err := shimLock(dir)
	if err != nil {
		notef("%v", err)
		return 1
	}
	defer lock.Close()
	if _, err := os.Stat(filepath.Join(dir, fileExit)); err == nil {
		notef("pod already ended (exit.json exists): not starting it again")
		return 0
	}
	if _, err := os.Stat(filepath.Join(dir, filePID)); err == nil {
		notef("pod already started once (shim.pid exists): not starting it again")
		return 1
	}
	var spec shimSpec
	b, err := os.ReadFile(filepath.Join(dir, fileSpec))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		notef("spec: %v", err)
		return 1
	}
	// From here on the pod counts as started: it is never started again,
	// and it ends with an exit.json.
	if err := writeFileAtomic(filepath.Join(dir, filePID), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		notef("pid file: %v", err)
		return 1
	}
	if spec.Note != "" {
		notef("%s", spec.Note)
	}
	e := runPod(dir, spec, notef)
	notef("ended: exitCode %d, signal %q, reason %q", e.ExitCode, e.Signal, e.Reason)
	out, _ := json.MarshalIndent(e, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, fileExit), append(out, '\n')); err != nil {
		notef("exit.json: %v", err)
		return 1
	}
	return 0
}

// shimLock returns the pod's lock file, locked: the inherited descriptor
// when berth passed one, else the file opened and locked here (a shim run
// by hand).
func shimLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, fileLock)
	want, err := os.Stat(path)
	if err == nil {
		var st syscall.Stat_t
		if syscall.Fstat(lockFD, &st) == nil {
			if ws, ok := want.Sys().(*syscall.Stat_t); ok && ws.Ino == st.Ino && ws.Dev == st.Dev {
				syscall.CloseOnExec(lockFD) // the process must not hold the pod's lock
				f := os.NewFile(lockFD, path)
				if err := syscall.Flock(lockFD, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
					f.Close()
					return nil, fmt.Errorf("lock %s: %w", path, err)
				}
				return f, nil
			}
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: another shim runs this pod", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// runPod starts the process and waits for it, enforcing maxDuration and
// forwarding SIGTERM.
func runPod(dir string, spec shimSpec, notef func(string, ...any)) Exit {
	started := time.Now().UTC()
	fail := func(err error) Exit {
		return Exit{ExitCode: 127, Reason: "start failed: " + err.Error(), StartedAt: started, FinishedAt: time.Now().UTC()}
	}
	if len(spec.Argv) == 0 {
		return fail(errors.New("no command"))
	}
	maxBytes := spec.LogMaxBytes
	if maxBytes <= 0 {
		maxBytes = defaultLogBytes
	}
	stdout, err := openCappedLog(filepath.Join(dir, fileStdout), maxBytes)
	if err != nil {
		return fail(err)
	}
	defer stdout.Close()
	stderr, err := openCappedLog(filepath.Join(dir, fileStderr), maxBytes)
	if err != nil {
		return fail(err)
	}
	defer stderr.Close()
	cmd, err := podCommand(spec)
	if err != nil {
		return fail(err)
	}

	// Signals are caught before the process starts, so a stop that comes
	// at once is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	p, err := startPodProcess(cmd, stdout, stderr)
	if err != nil {
		return fail(err)
	}
	notef("started pid %d: %s", p.pgid, strings.Join(spec.Argv, " "))
	reason, waitErr := p.supervise(spec, sigs, notef)
	p.drain()
	return podExit(started, waitErr, reason)
}

// podProcess is a started pod's process group and the copies of its
// output into the logs.
type podProcess struct {
	cmd        *exec.Cmd
	pgid       int
	outR, errR *os.File
	copying    sync.WaitGroup
}

// podCommand is the pod's command, its secrets read into its
// environment, to run in a process group of its own.
func podCommand(spec shimSpec) (*exec.Cmd, error) {
	env, err := withSecrets(spec.Env, spec.Secrets)
	if err != nil {
		return nil, err
	}
	path, err := lookPath(spec.Argv[0], spec.Env, spec.Dir)
	if err != nil {
		return nil, err
	}
	return &exec.Cmd{Path: path, Args: spec.Argv, Env: env, Dir: spec.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}, nil
}

// startPodProcess starts cmd, its output copied into stdout and stderr.
func startPodProcess(cmd *exec.Cmd, stdout, stderr io.Writer) (*podProcess, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		outW.Close()
		errW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	outW.Close()
	errW.Close()
	p := &podProcess{cmd: cmd, pgid: cmd.Process.Pid, outR: outR, errR: errR}
	p.copying.Add(2)
	go func() { defer p.copying.Done(); io.Copy(stdout, outR) }()
	go func() { defer p.copying.Done(); io.Copy(stderr, errR) }()
	return p, nil
}

// supervise waits for the process, terminating its group at
// maxDuration or on a signal to the shim (SIGTERM, then SIGKILL after
// the grace period). reason says why it was terminated ("" when it
// ended by itself).
func (p *podProcess) supervise(spec shimSpec, sigs <-chan os.Signal, notef func(string, ...any)) (reason string, waitErr error) {
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var deadline <-chan time.Time
	if spec.MaxDuration > 0 {
		t := time.NewTimer(spec.MaxDuration.D())
		defer t.Stop()
		deadline = t.C
	}
	grace := spec.GracePeriod.D()
	if grace <= 0 {
		grace = defaultGrace
	}
	var kill <-chan time.Time
	terminate := func(why string) {
		if reason != "" {
			return
		}
		reason = why
		notef("%s: SIGTERM to process group %d, SIGKILL in %s", why, p.pgid, grace)
		syscall.Kill(-p.pgid, syscall.SIGTERM)
		kill = time.After(grace)
	}
	for {
		select {
		case waitErr = <-done:
			return reason, waitErr
		case <-deadline:
			terminate("killed: maxDuration " + spec.MaxDuration.String() + " exceeded")
		case s := <-sigs:
			notef("received %s", signalName(s.(syscall.Signal)))
			terminate("terminated")
		case <-kill:
			notef("grace period over: SIGKILL to process group %d", p.pgid)
			syscall.Kill(-p.pgid, syscall.SIGKILL)
		}
	}
}

// drain kills what the process left behind in its group, as a
// container's processes go with it; then the pipes close and the copies
// end.
func (p *podProcess) drain() {
	syscall.Kill(-p.pgid, syscall.SIGKILL)
	finished := make(chan struct{})
	go func() { p.copying.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		// A process outside the group still holds the pipes open.
		p.outR.Close()
		p.errR.Close()
		<-finished
	}
	p.outR.Close()
	p.errR.Close()
}

// podExit is how the pod ended: its exit code or signal, and why.
func podExit(started time.Time, waitErr error, reason string) Exit {
	e := Exit{StartedAt: started, FinishedAt: time.Now().UTC()}
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			e.Signal = signalName(ws.Signal())
			e.ExitCode = 128 + int(ws.Signal())
		default:
			e.ExitCode = ws.ExitStatus()
		}
	default:
		e.ExitCode = -1
		e.Reason = "wait: " + waitErr.Error()
	}
	switch {
	case reason != "":
		e.Reason = reason
	case e.Signal != "":
		e.Reason = "killed by signal " + e.Signal
	case e.ExitCode != 0 && e.Reason == "":
		e.Reason = "exit code " + strconv.Itoa(e.ExitCode)
	}
	return e
}

// lookPath finds a command as a shell would with the process's own PATH,
// not the shim's.
func lookPath(name string, env []string, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return name, nil
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, pathVar)
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL", syscall.SIGINT: "SIGINT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGXCPU: "SIGXCPU",
}

func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}
