package cue

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
)

// ServeChild is the child process's side of Options.Child: berth's hidden
// __eval command calls it with its standard input and output. It reads
// the tree and the instances to evaluate, puts itself under its limits
// (see setChildLimits) before any CUE is evaluated, evaluates, and writes
// what it found. It returns the process's exit code.
func ServeChild(in io.Reader, out io.Writer) int {
	w := &answerWriter{w: bufio.NewWriterSize(out, 1<<16)}
	req, t, err := readRequest(in)
	if err != nil {
		w.send(message{Fail: err.Error()})
		return 2
	}
	opts := Options{Timeout: req.Timeout, MaxMemory: req.MaxMemory, Parallelism: req.Parallelism}.withDefaults()
	if err := setChildLimits(opts); err != nil {
		w.send(message{Fail: "set the evaluation's limits: " + err.Error()})
		return 2
	}

	if req.Profile != "" {
		defer startCPUProfile(req.Profile)()
	}
	todo, err := instanceIndexes(t, req.Dirs)
	if err != nil {
		w.send(message{Fail: err.Error()})
		return 2
	}
	run := &running{notify: func(started bool, dirs []string) {
		if started {
			w.send(message{Start: dirs})
		} else {
			w.send(message{Done: dirs})
		}
	}}
	go func() {
		<-cpuLimitReached()
		w.send(message{Runaway: runaway(t, run.list(), cpuMessage(opts.Timeout))})
		os.Exit(0)
	}()
	// Results go out one instance at a time as they are done, within a
	// budget: what CUE computed can be far larger than the files it came
	// from, and a result sent is a result this process can let go of.
	budget, total := resultBudget(opts), resultBudget(opts)
	var encErr error
	done := make(chan struct{})
	var evalErr error
	go func() {
		defer close(done)
		evalErr = evaluateAll(t, todo, opts.Parallelism, run, func(_ int, r *instanceResult) {
			if encErr != nil {
				return
			}
			b, err := encodeResult(t, r, &budget, total)
			if err != nil {
				encErr = err
				return
			}
			w.sendRaw(b)
		})
	}()
	// The wall-clock bound is the parent's: it kills this process.
	if err := watch(done, t, opts, 24*time.Hour, run); err != nil {
		w.send(message{Runaway: err.(Errors)})
		return 0
	}
	if evalErr == nil {
		evalErr = encErr
	}
	if evalErr != nil {
		w.send(message{Fail: evalErr.Error()})
		return 2
	}
	w.send(message{End: true})
	if w.err != nil {
		return 2
	}
	return 0
}

// startCPUProfile writes a CPU profile to PREFIX.eval-PID.cpu.pprof
// until the function it returns is called (best effort: nothing when the
// file cannot be created).
func startCPUProfile(prefix string) (stop func()) {
	f, err := os.Create(fmt.Sprintf("%s.eval-%d.cpu.pprof", prefix, os.Getpid()))
	if err != nil {
		return func() {}
	}
	if pprof.StartCPUProfile(f) != nil {
		return func() { f.Close() }
	}
	// The profile is written, then the file closed (the other way round
	// left it empty).
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// instanceIndexes are the indexes in t of the instances in dirs.
func instanceIndexes(t *tree, dirs []string) ([]int, error) {
	index := make(map[string]int, len(t.dirs))
	for i, d := range t.dirs {
		index[d] = i
	}
	todo := make([]int, 0, len(dirs))
	for _, d := range dirs {
		i, ok := index[d]
		if !ok {
			return nil, fmt.Errorf("no instance %s in the tree", d)
		}
		todo = append(todo, i)
	}
	return todo, nil
}

// resultBudget is how many bytes of results a child may send: a parent
// keeps them, so they are a fraction of the child's memory budget.
func resultBudget(opts Options) int64 { return opts.MaxMemory / 4 }

// encodeResult encodes one instance's result as a message, taking its
// size from *budget (what is left of total); one that does not fit becomes
// an error at the instance's files. Objects are encoded one by one and the encoding stops
// when the budget is spent, so a huge result is never held twice.
func encodeResult(t *tree, r *instanceResult, budget *int64, total int64) ([]byte, error) {
	wr, size, err := toWire(r, *budget)
	if err != nil {
		return nil, err
	}
	var b []byte
	if wr != nil {
		if b, err = json.Marshal(message{Result: wr}); err != nil {
			return nil, err
		}
	}
	if wr == nil || int64(len(b)) > *budget {
		b, err = json.Marshal(message{Result: tooLarge(t, r, max(size, int64(len(b))), total)})
		if err != nil {
			return nil, err
		}
	}
	*budget -= int64(len(b))
	return b, nil
}

// tooLarge replaces the result of an instance whose configuration is
// larger than what is left of the budget.
func tooLarge(t *tree, r *instanceResult, size, total int64) *wireResult {
	e := Error{Message: fmt.Sprintf("this package evaluates to more than %d MiB of configuration, and berth accepts %d MiB from a whole repository; look for a value that grows without bound",
		max(1, size>>20), max(1, total>>20))}
	for _, p := range t.dirFiles(r.dir) {
		e.Positions = append(e.Positions, berth.Pos{File: p})
	}
	return &wireResult{Dir: r.dir, Deps: r.deps, Errs: Errors{e}, Failed: true}
}

// answerWriter writes whole frames, one at a time, from any goroutine.
type answerWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

func (a *answerWriter) send(m message) {
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(message{Fail: "encode the answer: " + err.Error()})
	}
	a.sendRaw(b)
}

func (a *answerWriter) sendRaw(b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return
	}
	if err := writeFrame(a.w, b); err != nil {
		a.err = err
		return
	}
	// Flush every frame: the parent must know what is being evaluated
	// when the kernel kills this process.
	a.err = a.w.Flush()
}
