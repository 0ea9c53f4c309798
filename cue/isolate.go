package cue

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pool bounds how many child processes evaluate at once. Loaders that share
// a Pool (berth serve's engine and its pull-request planner) share its
// slots; an evaluation waits for a free one, in the order they came.
//
// A Pool has two lanes: n slots for first tries, and one slot of its own
// for retries with the full CPU budget (Options.FirstTimeout), so that a
// tree that needs its full budget, a CPU-only evaluation bomb above all,
// never keeps another tree's first try waiting. At most n+1 children run
// at once (Children). The retry lane serves the tracked branch first
// (Options.Tracked), then the retries in the order they were asked for.
type Pool struct {
	slots   chan struct{}
	retries retryLane
	started atomic.Int64

	mu            sync.Mutex
	busy, busiest int
}

// NewPool returns a Pool of n slots (at least one).
func NewPool(n int) *Pool {
	return &Pool{slots: make(chan struct{}, max(1, n))}
}

// Children is the most child processes the Pool runs at once: its slots
// and the retry lane's one. A process that evaluates with the Pool needs
// memory for this many times Options.MaxMemory besides its own.
func (p *Pool) Children() int { return cap(p.slots) + 1 }

// Started is how many child processes the Pool has started.
func (p *Pool) Started() int { return int(p.started.Load()) }

// Busiest is the most child processes that ran at once.
func (p *Pool) Busiest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busiest
}

// acquire waits for a free slot: a first try's, or the retry lane's (for
// the tracked branch before any other).
func (p *Pool) acquire(retry, tracked bool) {
	if retry {
		p.retries.acquire(tracked)
	} else {
		p.slots <- struct{}{}
	}
	p.started.Add(1)
	p.mu.Lock()
	p.busy++
	p.busiest = max(p.busiest, p.busy)
	p.mu.Unlock()
}

func (p *Pool) release(retry bool) {
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	if retry {
		p.retries.release()
	} else {
		<-p.slots
	}
}

// retryLane is one slot, handed to its waiters in a set order: the
// tracked branch's before the others, each group in the order it came. A
// channel cannot do that: its blocked senders proceed in no promised
// order.
type retryLane struct {
	mu      sync.Mutex
	busy    bool
	seq     uint64
	waiting []*retryWaiter // in the order they are served
}

type retryWaiter struct {
	tracked bool
	seq     uint64
	ready   chan struct{}
}

// before reports whether w is served before x.
func (w *retryWaiter) before(x *retryWaiter) bool {
	if w.tracked != x.tracked {
		return w.tracked
	}
	return w.seq < x.seq
}

func (r *retryLane) acquire(tracked bool) {
	r.mu.Lock()
	if !r.busy {
		r.busy = true
		r.mu.Unlock()
		return
	}
	w := &retryWaiter{tracked: tracked, seq: r.seq, ready: make(chan struct{})}
	r.seq++
	i := sort.Search(len(r.waiting), func(i int) bool { return w.before(r.waiting[i]) })
	r.waiting = slices.Insert(r.waiting, i, w)
	r.mu.Unlock()
	<-w.ready
}

// release hands the slot to the first waiter, or frees it.
func (r *retryLane) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) == 0 {
		r.busy = false
		return
	}
	w := r.waiting[0]
	r.waiting = r.waiting[1:]
	close(w.ready) // the slot stays busy: it is w's now
}

// waitingRetries is how many retries wait for the lane (for tests).
func (p *Pool) waitingRetries() int {
	p.retries.mu.Lock()
	defer p.retries.mu.Unlock()
	return len(p.retries.waiting)
}

// evaluateInChild evaluates the instances in dirs in a child process with
// a CPU budget of timeout, and returns their results in the same order
// (when the evaluation ran away: with the results of the instances that
// were finished before, nil for the others). A retry waits for the
// Pool's retry lane.
func (l *Loader) evaluateInChild(t *tree, dirs []string, timeout time.Duration, retry bool) ([]*instanceResult, error) {
	l.opts.Pool.acquire(retry, l.opts.Tracked)
	defer l.opts.Pool.release(retry)

	what := "evaluate " + describeDirs(dirs)
	c, err := l.startChild(what)
	if err != nil {
		return nil, err
	}

	// The wall-clock bound: the child's CPU time and memory are bounded by
	// the kernel; this catches a child that neither computes nor exits.
	// It is generous, because on a busy machine a child may get a tenth
	// of a core (seen: 45 s of CPU in 3 minutes).
	wall := 10 * l.opts.Timeout
	timer := time.AfterFunc(wall, func() { c.kill(true) })
	defer timer.Stop()

	go func() {
		// A failed write shows as the child's failure below.
		writeRequest(c.stdin, request{Timeout: timeout, MaxMemory: l.opts.MaxMemory, Parallelism: l.opts.Parallelism, Profile: l.opts.Profile, Dirs: dirs}, t, t.requestFiles(dirs))
		c.stdin.Close()
	}()
	a := readAnswer(c.stdout, t, dirs, resultBudget(l.opts))
	if !a.complete() {
		// Whatever the child is doing now, its answer is no longer read.
		c.kill(false)
	}
	io.Copy(io.Discard, c.stdout)
	waitErr := c.wait()

	switch {
	case a.runaway != nil:
		return a.results, a.runaway
	case a.fail != "":
		return nil, fmt.Errorf("%s: %s", what, a.fail)
	case a.end && waitErr == nil:
		return a.results, nil
	}
	return l.childDied(c, a, t, what, timeout, wall)
}

// childProcess is a started evaluation process.
type childProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tailBuffer

	mu       sync.Mutex
	waited   bool // the child is reaped: its process group id may be reused
	killed   bool // by evaluateInChild, not by a limit
	timedOut bool
}

// startChild starts the evaluation process in a process group of its
// own, with pipes to its stdin and stdout and the tail of its stderr kept.
func (l *Loader) startChild(what string) (*childProcess, error) {
	cmd := exec.Command(l.opts.Child[0], l.opts.Child[1:]...)
	cmd.Env = childEnv(os.Environ())
	ownProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start the evaluation process: %w", what, err)
	}
	return &childProcess{cmd: cmd, stdin: stdin, stdout: stdout, stderr: stderr}, nil
}

// kill kills the child's process group unless it is reaped already.
func (c *childProcess) kill(timeout bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.waited {
		c.killed = true
		c.timedOut = c.timedOut || timeout
		killProcessGroup(c.cmd)
	}
}

func (c *childProcess) wait() error {
	err := c.cmd.Wait()
	c.mu.Lock()
	c.waited = true
	c.mu.Unlock()
	return err
}

// childDied says why the child died without answering, and where it
// was: a runaway evaluation (CPU time or memory, the commit's doing) or
// berth's or the machine's failure.
func (l *Loader) childDied(c *childProcess, a *answer, t *tree, what string, timeout, wall time.Duration) ([]*instanceResult, error) {
	st := c.cmd.ProcessState
	cpu := st.UserTime() + st.SystemTime()
	at := a.running()
	sig := exitSignal(st)
	switch {
	case c.timedOut && cpu >= timeout:
		return a.results, runaway(t, at, cpuMessage(timeout))
	case c.timedOut:
		// CUE neither sleeps nor waits: a child that used little CPU in
		// all that time was starved or stuck, which is not the commit's
		// doing. Not remembered: the next load tries again.
		return nil, fmt.Errorf("%s: the evaluation process took longer than %s with %s of CPU time: this machine is overloaded, or berth is stuck",
			what, wall, cpu.Round(time.Millisecond))
	case sig == "SIGXCPU" || (sig == "SIGKILL" && !c.killed && cpu >= timeout/2):
		// RLIMIT_CPU: SIGXCPU at its soft limit, SIGKILL at its hard one
		// (by the kernel's count, which can run ahead of the exact time
		// read here). A SIGKILL early in the evaluation is someone else's
		// (the OOM killer's): berth's problem.
		return a.results, runaway(t, at, cpuMessage(timeout))
	case outOfMemory(c.stderr.String()):
		return nil, runaway(t, at, memoryMessage(l.opts.MaxMemory))
	case a.err != nil:
		return nil, fmt.Errorf("%s: read the evaluation process's answer: %w (%s)%s", what, a.err, st, c.stderr.lastLines(5))
	default:
		return nil, fmt.Errorf("%s: the evaluation process failed (%s)%s", what, st, c.stderr.lastLines(5))
	}
}

// childEnv is the environment a child gets: the Go runtime's settings,
// nothing else. CUE cannot read the environment, but a child evaluates
// untrusted input, and berth's environment holds its tokens and secrets.
func childEnv(env []string) []string {
	out := []string{} // not nil: a nil Env is the parent's
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", "GOCOVERDIR":
			out = append(out, kv)
		}
	}
	return out
}

// outOfMemory reports whether the Go runtime's last words (its standard
// error) say it could not get memory: how a child that reached its
// address-space limit ends. The runtime has no other way to say so.
func outOfMemory(stderr string) bool {
	for _, s := range []string{
		"fatal error: runtime: out of memory",
		"fatal error: out of memory",
		"runtime: out of memory",
		"cannot allocate memory",
		"failed to create new OS thread",
		"goroutine stack exceeds",
	} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// answer is what a parent read from its child.
type answer struct {
	results []*instanceResult // by the index of their instance in the request
	end     bool
	runaway Errors
	fail    string
	err     error          // reading or decoding failed
	inside  map[string]int // instances being evaluated, from Start and Done
}

func (a *answer) complete() bool { return a.end || a.runaway != nil || a.fail != "" }

// running lists the instances the child was evaluating when it stopped.
func (a *answer) running() []string {
	var out []string
	for d, n := range a.inside {
		if n > 0 {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// readAnswer reads a child's answer, at most budget bytes of results.
func readAnswer(r io.Reader, t *tree, dirs []string, budget int64) *answer {
	a := &answer{inside: map[string]int{}, results: make([]*instanceResult, len(dirs))}
	index := make(map[string]int, len(dirs))
	for k, d := range dirs {
		index[d] = k
	}
	got := 0
	br := bufio.NewReaderSize(r, 1<<16)
	// Start and Done frames are small; a Result frame may use what is
	// left of the budget, and the child keeps to it.
	for {
		b, err := readFrame(br, max(budget, 0)+1<<20)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				a.err = err
			}
			return a
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			a.err = fmt.Errorf("decode: %w", err)
			return a
		}
		for _, d := range m.Start {
			a.inside[d]++
		}
		for _, d := range m.Done {
			a.inside[d]--
		}
		switch {
		case m.Result != nil:
			// Results come as the child finishes them, in any order.
			k, ok := index[m.Result.Dir]
			if !ok || a.results[k] != nil {
				a.err = fmt.Errorf("unexpected result for %s", m.Result.Dir)
				return a
			}
			budget -= int64(len(b))
			r, err := fromWire(m.Result, t)
			if err != nil {
				a.err = err
				return a
			}
			r.wire = m.Result
			a.results[k] = r
			got++
		case m.End:
			if got != len(dirs) {
				a.err = fmt.Errorf("%d results for %d instances", got, len(dirs))
				return a
			}
			a.end = true
			return a
		case len(m.Runaway) > 0:
			a.runaway = m.Runaway
			return a
		case m.Fail != "":
			a.fail = m.Fail
			return a
		}
	}
}

// describeDirs names the instances an evaluation is of, in a message.
func describeDirs(dirs []string) string {
	if len(dirs) <= 3 {
		return "instances " + strings.Join(dirs, ", ")
	}
	return fmt.Sprintf("instances %s and %d more", strings.Join(dirs[:3], ", "), len(dirs)-3)
}

// tailBuffer keeps the first and the last max bytes written to it: the
// Go runtime says why it died first, then dumps every goroutine.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	head  []byte
	b     []byte
	total int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += len(p)
	if n := min(len(p), t.max-len(t.head)); n > 0 {
		t.head = append(t.head, p[:n]...)
		return len(p), nil
	}
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.head) + string(t.b)
}

// lastLines is the last n lines written, indented under a message, or
// nothing.
func (t *tailBuffer) lastLines(n int) string {
	lines := strings.Split(strings.TrimSpace(t.String()), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	lines = lines[max(0, len(lines)-n):]
	return "\n    " + strings.Join(lines, "\n    ")
}
