package cue

import (
	"fmt"
	"io/fs"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
)

// Options bound what Load accepts. The zero value means the defaults.
type Options struct {
	// MaxFileSize is the largest .cue file accepted (default 1 MiB).
	MaxFileSize int64
	// MaxTotalSize is the most CUE a repository may hold (default 256 MiB).
	MaxTotalSize int64
	// Timeout bounds the CPU time evaluation may use (default 60 s): a
	// configuration that would make CUE run away is reported as an error,
	// not a hang. It is CPU time, not wall time, so that a loaded machine
	// does not make a large valid repository look like a runaway one;
	// wall time is bounded too, at ten times Timeout. (Where the process's
	// CPU time cannot be read, Timeout bounds wall time.)
	Timeout time.Duration
	// MaxMemory bounds the heap while evaluating (default 2 GiB).
	MaxMemory int64
	// Parallelism is how many instances are evaluated at once (default
	// GOMAXPROCS).
	Parallelism int
}

func (o Options) withDefaults() Options {
	if o.MaxFileSize == 0 {
		o.MaxFileSize = 1 << 20
	}
	if o.MaxTotalSize == 0 {
		o.MaxTotalSize = 256 << 20
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 2 << 30
	}
	if o.Parallelism <= 0 {
		o.Parallelism = runtime.GOMAXPROCS(0)
	}
	return o
}

// Load reads and validates the repository in fsys. When the repository is
// invalid the error is Errors (the commit is wrong); any other error means
// berth itself failed.
func Load(fsys fs.FS, opts Options) (*berth.Config, error) {
	return NewLoader(opts).Load(fsys)
}

// Loader loads revisions of one repository and reuses the evaluation of
// every instance whose files and imports did not change. It is safe for use
// by one goroutine at a time.
type Loader struct {
	opts    Options
	running running // instances being evaluated, for the runaway report
	mu      sync.Mutex
	cache   map[string]*instanceResult // by instance directory
	stats   Stats
}

// Stats counts the work the last Load did.
type Stats struct {
	Instances int // package instances in the repository
	Evaluated int // instances evaluated (the rest came from the cache)
}

// NewLoader returns a Loader with an empty cache.
func NewLoader(opts Options) *Loader {
	return &Loader{opts: opts.withDefaults(), cache: map[string]*instanceResult{}}
}

// Stats reports what the last Load evaluated.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Load reads and validates the repository in fsys, like the package-level
// Load, evaluating only instances that changed since the previous call.
func (l *Loader) Load(fsys fs.FS) (*berth.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()

	// 1. Read and check every file before CUE sees any.
	t, errs := readTree(fsys, l.opts)
	if len(errs) > 0 {
		return nil, errs.sort()
	}

	// 2. Evaluate the instances that changed, in parallel, within the
	// time and memory bounds.
	results, err := l.evaluate(t)
	if err != nil {
		return nil, err
	}

	// 3. Merge the instances and check the references between them.
	// Objects that failed validation are remembered, so that a reference to
	// one is not reported as dangling too.
	cfg, invalid, errs := merge(results)
	partial := false
	for _, r := range results {
		partial = partial || r.failed
	}
	errs = append(errs, check(cfg, invalid, partial)...)
	if len(errs) > 0 {
		return nil, errs.sort()
	}
	return cfg, nil
}

// evaluate returns one result per instance directory, in directory order.
func (l *Loader) evaluate(t *tree) ([]*instanceResult, error) {
	results := make([]*instanceResult, len(t.dirs))
	var todo []int
	for i, dir := range t.dirs {
		if r, ok := l.cache[dir]; ok && r.upToDate(t) {
			results[i] = r
			continue
		}
		todo = append(todo, i)
	}
	l.stats = Stats{Instances: len(t.dirs), Evaluated: len(todo)}

	if len(todo) > 0 {
		done := make(chan struct{})
		var evalErr error
		go func() {
			defer close(done)
			evalErr = l.evaluateAll(t, todo, results)
		}()
		if err := l.watch(done, t); err != nil {
			// The evaluation goroutine cannot be stopped from outside CUE;
			// it is abandoned and its results are never read. Callers that
			// run for long (berth serve) evaluate in a child process.
			return nil, err
		}
		if evalErr != nil {
			return nil, evalErr
		}
	}
	// Drop cache entries of directories that no longer exist.
	live := make(map[string]bool, len(t.dirs))
	for i, dir := range t.dirs {
		live[dir] = true
		l.cache[dir] = results[i]
	}
	for dir := range l.cache {
		if !live[dir] {
			delete(l.cache, dir)
		}
	}
	return results, nil
}

// watch waits for done, or reports the evaluation as runaway when it
// exceeds the time or memory bound, at the comprehensions of the instances
// still being evaluated.
func (l *Loader) watch(done <-chan struct{}, t *tree) error {
	cpu0, haveCPU := processCPUTime()
	wallLimit := l.opts.Timeout
	if haveCPU {
		wallLimit *= 10
	}
	timer := time.NewTimer(wallLimit)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for {
		select {
		case <-done:
			return nil
		case <-timer.C:
			return runaway(t, l.running.list(), fmt.Sprintf("evaluation took longer than %s", wallLimit))
		case <-tick.C:
			if cpu, ok := processCPUTime(); ok && cpu-cpu0 > l.opts.Timeout {
				return runaway(t, l.running.list(), fmt.Sprintf("evaluation used more than %s of CPU time", l.opts.Timeout))
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 && int64(sample[0].Value.Uint64()) > l.opts.MaxMemory {
				return runaway(t, l.running.list(), fmt.Sprintf("evaluation used more than %d MiB", l.opts.MaxMemory>>20))
			}
		}
	}
}

// evaluateAll evaluates the instances at the given indexes with
// opts.Parallelism workers, each batch in its own CUE context (a context
// is not safe for concurrent use). Work is handed out in small batches: a batch is
// loaded with one call (see evaluateDirs), and small batches keep the
// workers evenly busy.
func (l *Loader) evaluateAll(t *tree, todo []int, results []*instanceResult) error {
	workers := min(l.opts.Parallelism, len(todo))
	batch := max(1, min(16, len(todo)/(4*workers)))
	next := make(chan []int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range next {
				// A fresh context per batch: a CUE context keeps every
				// instance built in it, so one per worker held the whole
				// repository's evaluation (peak RSS 450 MiB for 10,000
				// workloads, 150 MiB this way, for one schema compile per
				// batch).
				ev, err := newEvaluator(t)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					continue
				}
				dirs := make([]string, len(idx))
				for k, i := range idx {
					dirs[k] = t.dirs[i]
				}
				rs, err := ev.evaluateDirsSafely(dirs, &l.running)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				for k, r := range rs {
					results[idx[k]] = r
				}
			}
		}()
	}
	for len(todo) > 0 {
		n := min(batch, len(todo))
		next <- todo[:n]
		todo = todo[n:]
	}
	close(next)
	wg.Wait()
	return firstErr
}
