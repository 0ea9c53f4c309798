package cue

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/berth-gpu/berth"
)

// Options bound what Load accepts. The zero value means the defaults.
type Options struct {
	// MaxFileSize is the largest .cue file accepted (default 1 MiB).
	MaxFileSize int64
	// MaxTotalSize is the most CUE a repository may hold (default 64 MiB;
	// 10,000 workloads are under 3 MiB). The tree is read into memory
	// before it is evaluated.
	MaxTotalSize int64
	// Timeout bounds the CPU time evaluation may use (default 60 s): a
	// configuration that would make CUE run away is reported as an error,
	// not a hang. It is CPU time, not wall time, so that a loaded machine
	// does not make a large valid repository look like a runaway one.
	// Wall time is bounded too: in a child process at three times
	// Timeout (a child that is that late without having used its CPU
	// time is berth's problem, not the commit's, and the error says so);
	// in this process at ten times Timeout.
	Timeout time.Duration
	// FirstTimeout, when set below Timeout, is the CPU budget of a first
	// try in a child process: a tree whose evaluation passes it is
	// evaluated again with the full Timeout, in the Pool's retry lane (one
	// child at a time), so that trees that need long, bombs that only burn
	// CPU above all, never hold the slots of the trees behind them for
	// their whole budget. A tree that passes its memory bound, or fails
	// any other way, is not retried. Zero: one try with Timeout. berth
	// serve sets it (DefaultFirstTimeout).
	FirstTimeout time.Duration
	// RetryLater makes a load whose first try was not enough return at
	// once with a *Retrying error instead of waiting for its retry, which
	// goes on in the background: a later load of the same tree gets the
	// retry's outcome once Retrying.Done is closed (the same *Retrying
	// before). berth serve's pull-request planner sets it, so that a pull
	// request that waits for the retry lane holds no planner.
	RetryLater bool
	// Tracked marks the Loader of the tracked branch (berth serve's
	// engine): its retries go before any other's in the Pool's retry lane.
	Tracked bool
	// MaxMemory bounds the memory of an evaluation (default
	// DefaultMaxMemory; berth's --eval-memory). In a child process it is
	// the child's memory budget: its garbage collector aims at half of
	// it, and the kernel refuses it address space beyond what it had
	// mapped when it started plus MaxMemory (RLIMIT_AS, limits_linux.go).
	// A process whose Pool runs Pool.Children() children needs that many
	// times MaxMemory besides its own memory (deploy/ says so). In this
	// process only the heap is watched.
	MaxMemory int64
	// Parallelism is how many instances are evaluated at once (default
	// GOMAXPROCS).
	Parallelism int
	// Child, when set, is the command of a child process that evaluates
	// (berth's own binary with its hidden __eval command, which calls
	// ServeChild). The child runs under kernel limits derived from
	// MaxMemory and Timeout and is killed when it passes them, so a
	// runaway configuration costs berth nothing but the child. Empty:
	// evaluate in this process, where a runaway evaluation can only be
	// abandoned, not stopped (the loader's own tests, and fuzzing).
	Child []string
	// Pool bounds how many children run at once, across every Loader
	// given the same Pool (default: a Pool of 2 of this Loader's own).
	Pool *Pool
	// CacheDir, when set, is a directory where results of evaluations
	// are kept across processes, by the content they were computed from
	// (see diskCache): berth's commands use the user's cache directory,
	// berth serve its state directory. Processes may share it.
	CacheDir string
	// CacheVersion is what, besides the files, a cached result depends
	// on: berth's version, so that another berth never reads this one's
	// results.
	CacheVersion string
	// Profile, when set, makes each child process write its CPU profile
	// to Profile.eval-PID.cpu.pprof (berth's --profile).
	Profile string
	// CacheMaxSize bounds the evaluation cache's size on disk (default
	// DefaultCacheMaxSize): when a prune finds more, it removes the
	// entries used longest ago.
	CacheMaxSize int64
	// CacheMaxAge is how long an entry of this berth is kept unused
	// (default DefaultCacheMaxAge); another berth's entries are kept a
	// day unused (see prune).
	CacheMaxAge time.Duration
	// CacheWarn, when set, is told once when the cache cannot be written
	// (a full disk): it is read-only from then on, and loads go on.
	CacheWarn func(error)
}

// DefaultFirstTimeout is the CPU budget of the first try that berth serve
// gives every tree (Options.FirstTimeout). berth's repositories evaluate
// in a fraction of it: the 1,000-workload benchmark repository in about
// 0.3 s; the 10,000-workload one needs a retry.
const DefaultFirstTimeout = time.Second

// DefaultMaxMemory is Options.MaxMemory's default: 512 MiB per child.
const DefaultMaxMemory = 512 << 20

// Retrying is the error of a load whose first try's CPU budget was not
// enough, with Options.RetryLater: the tree is being evaluated again with
// the full budget, and Done is closed when that ended. Neither the commit
// nor berth is at fault yet.
type Retrying struct {
	First, Full time.Duration // the CPU budgets of the first try and of the retry
	Done        <-chan struct{}
}

func (r *Retrying) Error() string {
	return fmt.Sprintf("evaluation needs more than the first-try budget (at most %s of CPU time); retrying with the full budget (%s)", r.First, r.Full)
}

func (o Options) withDefaults() Options {
	if o.MaxFileSize == 0 {
		o.MaxFileSize = 1 << 20
	}
	if o.MaxTotalSize == 0 {
		o.MaxTotalSize = 64 << 20
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.Parallelism <= 0 {
		o.Parallelism = runtime.GOMAXPROCS(0)
	}
	if o.CacheMaxSize <= 0 {
		o.CacheMaxSize = DefaultCacheMaxSize
	}
	if o.CacheMaxAge <= 0 {
		o.CacheMaxAge = DefaultCacheMaxAge
	}
	if len(o.Child) > 0 && o.Pool == nil {
		o.Pool = NewPool(2)
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
// every instance whose files and imports did not change. It is safe for
// concurrent use: loads of the same tree share one evaluation, an invalid
// tree is remembered and never evaluated again, and loads of different
// trees (pull requests) evaluate at once, each in its own child process,
// as many as the Pool allows.
type Loader struct {
	opts  Options
	group singleflight.Group // by tree hash

	// inproc serialises evaluations in this process: their bounds watch
	// the whole process's CPU time and heap.
	inproc  sync.Mutex
	running running // instances being evaluated in this process, for the runaway report

	disk *diskCache // nil without Options.CacheDir

	mu     sync.Mutex
	cache  map[string][]*instanceResult // by instance directory, most recently used first
	seq    uint64                       // loads so far, for evicting unused cache entries
	failed *lru.Cache[[32]byte, Errors] // the errors of the last invalid trees, by hash
	stats  Stats
	// retrying holds the trees being retried in the background
	// (Options.RetryLater), retried their outcomes until a load takes
	// them, by tree hash.
	retrying map[[32]byte]*Retrying
	retried  map[[32]byte]retried
}

// retried is the outcome of a retry in the background.
type retried struct {
	out loaded
	err error
}

// maxRetried bounds the outcomes of background retries no load took yet
// (a pull request closed while its tree was retried).
const maxRetried = 64

// cacheVersions is how many results the cache keeps per instance
// directory: enough for the tracked branch and the pull requests being
// planned against it to reuse each other's evaluations without evicting
// them in turn.
const cacheVersions = 4

// cacheIdle is after how many loads without use a cached result is dropped
// (a directory that only a closed pull request had).
const cacheIdle = 64

// Stats counts the work a Load did.
type Stats struct {
	Instances int  // package instances in the repository
	Evaluated int  // instances evaluated (the rest came from the caches)
	FromDisk  int  // instances whose result came from Options.CacheDir
	Processes int  // child processes started for it (0, 1, or 2 with a retry)
	Retried   bool // the first try's CPU budget was not enough (Options.FirstTimeout)
	// EvaluatedAgain is how many instances the retry evaluated: those
	// the first try had not finished.
	EvaluatedAgain int
}

// Result is what a Load found: the configuration (nil when the repository
// is invalid), the entries it did not read and why, and the work it did.
type Result struct {
	Config   *berth.Config
	Warnings []Warning
	Stats    Stats
}

// NewLoader returns a Loader with an empty cache.
func NewLoader(opts Options) *Loader {
	failed, _ := lru.New[[32]byte, Errors](maxFailures) // errs only for a size under 1
	opts = opts.withDefaults()
	return &Loader{opts: opts, disk: newDiskCache(opts), cache: map[string][]*instanceResult{}, failed: failed,
		retrying: map[[32]byte]*Retrying{}, retried: map[[32]byte]retried{}}
}

// Stats reports what the last Load that finished evaluated.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Load reads and validates the repository in fsys, like the package-level
// Load, evaluating only instances that changed since they were last
// evaluated.
func (l *Loader) Load(fsys fs.FS) (*berth.Config, error) {
	r, err := l.LoadResult(fsys)
	return r.Config, err
}

// LoadResult is Load with the warnings and statistics. The warnings are
// there whether or not the repository is valid.
func (l *Loader) LoadResult(fsys fs.FS) (Result, error) {
	// 1. Read and check every file before CUE sees any.
	t, errs, warns := readTree(fsys, l.opts)
	if len(errs) > 0 {
		return Result{Warnings: warns}, errs.sort()
	}

	// 2. Evaluate, once per tree: concurrent loads of the same tree wait
	// for one evaluation, and an invalid tree's errors are remembered.
	sum := t.hashFiles(t.paths())
	v, err, _ := l.group.Do(string(sum[:]), func() (any, error) {
		return l.loadTree(t, sum)
	})
	o := v.(loaded)
	if o.cfg != nil {
		warns = append(warns, credentialWarnings(o.cfg)...)
	}
	return Result{Config: o.cfg, Warnings: warns, Stats: o.stats}, err
}

// loaded is what loadTree shares between the loads of one tree.
type loaded struct {
	cfg   *berth.Config
	stats Stats
}

func (l *Loader) loadTree(t *tree, sum [32]byte) (loaded, error) {
	l.mu.Lock()
	if errs, ok := l.failed.Get(sum); ok {
		l.stats = Stats{Instances: len(t.dirs)}
		l.mu.Unlock()
		return loaded{stats: l.stats}, errs
	}
	if r, ok := l.retrying[sum]; ok {
		l.mu.Unlock()
		return loaded{stats: Stats{Instances: len(t.dirs)}}, r
	}
	if r, ok := l.retried[sum]; ok {
		delete(l.retried, sum)
		l.mu.Unlock()
		return r.out, r.err
	}
	l.mu.Unlock()

	if !l.opts.RetryLater {
		return l.finishTree(t, sum, escalate)
	}
	out, err := l.finishTree(t, sum, firstOnly)
	var short *firstTryShort
	if !errors.As(err, &short) {
		return out, err
	}
	// The first try was not enough: retry in the background, and say so.
	done := make(chan struct{})
	r := &Retrying{First: l.opts.FirstTimeout, Full: l.opts.Timeout, Done: done}
	l.mu.Lock()
	l.retrying[sum] = r
	l.mu.Unlock()
	go func() {
		defer close(done)
		out, err := l.finishTree(t, sum, retryOnly)
		out.stats.Processes++
		out.stats.Retried = true
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.retrying, sum)
		if len(l.retried) >= maxRetried {
			for k := range l.retried { // the outcome of a tree no one asked for again
				delete(l.retried, k)
				break
			}
		}
		l.retried[sum] = retried{out: out, err: err}
	}()
	return out, r
}

// finishTree evaluates the tree's changed instances with the tries given,
// merges them and checks the references between them.
func (l *Loader) finishTree(t *tree, sum [32]byte, tries tries) (loaded, error) {
	// Evaluate the instances that changed, within the time and memory
	// bounds.
	results, stats, err := l.evaluate(t, tries)
	if err == nil {
		// Merge the instances and check the references between them.
		// Objects that failed validation are remembered, so that a
		// reference to one is not reported as dangling too.
		cfg, invalid, errs := merge(results)
		partial := false
		for _, r := range results {
			partial = partial || r.failed
		}
		errs = append(errs, check(cfg, invalid, partial)...)
		if len(errs) == 0 {
			l.mu.Lock()
			l.stats = stats
			l.mu.Unlock()
			return loaded{cfg: cfg, stats: stats}, nil
		}
		err = errs.sort()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats = stats
	if errs, ok := err.(Errors); ok {
		// The commit is at fault, and will be every time: never evaluate
		// this tree again. Anything else (berth failed) is retried.
		l.failed.Add(sum, errs)
	}
	return loaded{stats: stats}, err
}

// tries says which CPU budgets an evaluation in a child gets.
type tries int

const (
	escalate  tries = iota // the first try's, then, if that was not enough, the full one
	firstOnly              // the first try's only: *firstTryShort when that was not enough
	retryOnly              // the full one, in the retry lane
)

// firstTryShort is the error of a first try whose CPU budget was not
// enough (tries firstOnly).
type firstTryShort struct{ errs Errors }

func (e *firstTryShort) Error() string { return e.errs.Error() }

// evaluate returns one result per instance directory, in directory order,
// evaluating those the caches have no up-to-date result for.
func (l *Loader) evaluate(t *tree, tries tries) ([]*instanceResult, Stats, error) {
	results := make([]*instanceResult, len(t.dirs))
	var todo []int
	l.mu.Lock()
	l.seq++
	for i, dir := range t.dirs {
		if r := l.cached(dir, t); r != nil {
			results[i] = r
			continue
		}
		todo = append(todo, i)
	}
	l.mu.Unlock()
	stats := Stats{Instances: len(t.dirs)}

	// The disk cache's entries are found first (their headers), then read,
	// checked and decoded while a child evaluates the instances that have
	// none: decoding is most of a warm load, and the child needs a core of
	// its own.
	hits, todo := l.lookupDisk(t, todo)
	var bad []int
	var err error
	if len(l.opts.Child) == 0 {
		// In this process the evaluation's bounds watch the whole
		// process's CPU time and heap: decode first.
		bad = l.decodeDisk(hits, results)
		err = l.evaluateSome(t, append(todo, bad...), results, tries, &stats)
	} else {
		decoded := make(chan []int)
		go func() { decoded <- l.decodeDisk(hits, results) }()
		err = l.evaluateSome(t, todo, results, tries, &stats)
		bad = <-decoded
		if err == nil && len(bad) > 0 {
			err = l.evaluateSome(t, bad, results, tries, &stats)
		}
	}
	// An entry that failed its checksum, or passed it but did not decode
	// (berth wrote something it cannot read), was evaluated, and is
	// overwritten.
	todo = append(todo, bad...)
	stats.Evaluated = len(todo)
	stats.FromDisk = len(hits) - len(bad)
	if err != nil {
		return nil, stats, err
	}

	l.writeDisk(t, todo, results)
	if l.disk != nil {
		l.disk.maybePrune(time.Now())
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range append(todo, hitIndexes(hits)...) {
		r := results[i]
		r.used = l.seq
		vs := append([]*instanceResult{r}, l.cache[r.dir]...)
		l.cache[r.dir] = vs[:min(len(vs), cacheVersions)]
	}
	// Drop results no load has used for a while.
	for dir, vs := range l.cache {
		keep := vs[:0]
		for _, r := range vs {
			if l.seq-r.used < cacheIdle {
				keep = append(keep, r)
			}
		}
		if len(keep) == 0 {
			delete(l.cache, dir)
		} else {
			l.cache[dir] = keep
		}
	}
	return results, stats, nil
}

// evaluateSome evaluates the instances at the given indexes, in a child
// process or in this one, into results.
func (l *Loader) evaluateSome(t *tree, todo []int, results []*instanceResult, tries tries, stats *Stats) error {
	if len(todo) == 0 {
		return nil
	}
	if len(l.opts.Child) == 0 {
		return l.evaluateHere(t, todo, results)
	}
	stats.Processes++
	dirs := make([]string, len(todo))
	for k, i := range todo {
		dirs[k] = t.dirs[i]
	}
	rs, err := l.evaluateEscalating(t, dirs, tries, stats)
	if err != nil {
		return err
	}
	for k, i := range todo {
		results[i] = rs[k]
	}
	return nil
}

// diskHit is an instance whose result the disk cache holds.
type diskHit struct {
	i     int // the instance's index in the tree's directories
	entry *cacheEntry
}

func hitIndexes(hits []diskHit) []int {
	out := make([]int, len(hits))
	for k, h := range hits {
		out[k] = h.i
	}
	return out
}

// lookupDisk finds the disk cache's entries for the instances at the
// given indexes, in parallel, and returns them and the indexes it has
// none for.
func (l *Loader) lookupDisk(t *tree, todo []int) ([]diskHit, []int) {
	if l.disk == nil || len(todo) == 0 {
		return nil, todo
	}
	found := make([]*cacheEntry, len(todo))
	parallel(len(todo), l.opts.Parallelism, func(k int) { found[k] = l.disk.lookup(t, t.dirs[todo[k]]) })
	var hits []diskHit
	var misses []int
	for k, i := range todo {
		if found[k] != nil {
			hits = append(hits, diskHit{i: i, entry: found[k]})
		} else {
			misses = append(misses, i)
		}
	}
	return hits, misses
}

// decodeDisk reads, checks and decodes the entries found, in parallel,
// into results, and returns the indexes of those that failed a check or
// did not decode: they are evaluated.
func (l *Loader) decodeDisk(hits []diskHit, results []*instanceResult) []int {
	ok := make([]bool, len(hits))
	// One buffer per worker, handed from entry to entry.
	bufs := make(chan *[]byte, min(l.opts.Parallelism, len(hits)))
	for range cap(bufs) {
		bufs <- new([]byte)
	}
	parallel(len(hits), l.opts.Parallelism, func(k int) {
		buf := <-bufs
		r, err := l.disk.load(hits[k].entry, buf)
		bufs <- buf
		if err == nil {
			results[hits[k].i], ok[k] = r, true
		}
		hits[k].entry = nil
	})
	var bad []int
	for k, h := range hits {
		if !ok[k] {
			bad = append(bad, h.i)
		}
	}
	return bad
}

// parallel calls f(0) to f(n-1) from up to workers goroutines.
func parallel(n, workers int, f func(int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				f(k)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
}

// writeDisk stores the results just evaluated in the disk cache. A child's
// result is stored as the child sent it; one evaluated in this process is
// encoded as a child would have.
func (l *Loader) writeDisk(t *tree, todo []int, results []*instanceResult) {
	for _, i := range todo {
		r := results[i]
		w := r.wire
		r.wire = nil // the memory cache keeps the decoded result only
		if l.disk == nil {
			continue
		}
		if w == nil {
			var err error
			if w, _, err = toWire(r, resultBudget(l.opts)); err != nil || w == nil {
				continue
			}
		}
		l.disk.put(t, r, w)
	}
}

// evaluateEscalating evaluates dirs in a child process: first within
// FirstTimeout of CPU time, and, when that is not enough, again within
// Timeout in the Pool's retry lane (tries says which of the two).
func (l *Loader) evaluateEscalating(t *tree, dirs []string, tries tries, stats *Stats) ([]*instanceResult, error) {
	first := l.opts.FirstTimeout
	if first <= 0 || first >= l.opts.Timeout {
		return l.evaluateInChild(t, dirs, l.opts.Timeout, false)
	}
	first = firstBudget(first, t, dirs)
	if tries == retryOnly {
		return l.evaluateInChild(t, dirs, l.opts.Timeout, true)
	}
	rs, err := l.evaluateInChild(t, dirs, first, false)
	if errs, ok := err.(Errors); !ok || !errs.cpuRunaway(first) {
		return rs, err
	} else if tries == firstOnly {
		return nil, &firstTryShort{errs}
	}
	stats.Processes++
	stats.Retried = true
	// The instances the first try finished (their results came whole
	// before it was stopped) are not evaluated again: a large repository
	// then pays for its first second once, not twice.
	var rest []string
	for k, r := range rs {
		if r == nil {
			rest = append(rest, dirs[k])
		}
	}
	stats.EvaluatedAgain = len(rest)
	if len(rest) == 0 {
		return rs, nil
	}
	more, err := l.evaluateInChild(t, rest, l.opts.Timeout, true)
	if err != nil {
		return nil, err
	}
	for k, j := 0, 0; k < len(rs); k++ {
		if rs[k] == nil {
			rs[k] = more[j]
			j++
		}
	}
	return rs, nil
}

// firstTryCPUPerByte is the first try's CPU budget per byte of CUE it
// evaluates: about four times what berth's repositories need (a
// 270 KB, 1,000-workload repository evaluates in about 0.3 s of the
// child's CPU time).
const firstTryCPUPerByte = 4 * time.Microsecond

// firstBudget is the CPU budget of the first try of dirs: a quarter of
// full (the schema's compilation and a small package fit in it many times
// over), more for more CUE, up to full. Small trees, the usual pull
// request's as the evaluation bombs', are cut off sooner, so that twenty
// bombs ahead of a valid pull request cost it seconds, not twenty
// seconds; a bomb padded to look large gets no more than full.
func firstBudget(full time.Duration, t *tree, dirs []string) time.Duration {
	n := 0
	for _, d := range dirs {
		for _, f := range t.dirFiles(d) {
			n += len(t.files[f])
		}
	}
	return min(full, full/4+time.Duration(n)*firstTryCPUPerByte)
}

// cpuRunaway reports whether errs say that an evaluation used more than
// limit of CPU time (and nothing else: a memory bound is final).
func (errs Errors) cpuRunaway(limit time.Duration) bool {
	msg := cpuMessage(limit)
	for _, e := range errs {
		if !strings.HasPrefix(e.Message, msg) {
			return false
		}
	}
	return len(errs) > 0
}

// cached returns the cached result for dir that is up to date in t, or
// nil. l.mu is held.
func (l *Loader) cached(dir string, t *tree) *instanceResult {
	vs := l.cache[dir]
	for i, r := range vs {
		if r.upToDate(t) {
			r.used = l.seq
			copy(vs[1:i+1], vs[:i]) // most recently used first
			vs[0] = r
			return r
		}
	}
	return nil
}

// maxFailures is how many invalid trees a Loader remembers.
const maxFailures = 256

// evaluateHere evaluates the instances at the given indexes in this
// process, and reports a runaway evaluation when it passes its bounds.
func (l *Loader) evaluateHere(t *tree, todo []int, results []*instanceResult) error {
	l.inproc.Lock()
	defer l.inproc.Unlock()
	done := make(chan struct{})
	var evalErr error
	go func() {
		defer close(done)
		evalErr = evaluateAll(t, todo, l.opts.Parallelism, &l.running, func(i int, r *instanceResult) { results[i] = r })
	}()
	if err := watch(done, t, l.opts, 10*l.opts.Timeout, &l.running); err != nil {
		// The evaluation goroutine cannot be stopped from outside CUE;
		// it is abandoned and its results are never read. berth's
		// commands evaluate in a child process instead.
		return err
	}
	return evalErr
}

// watch waits for done, or reports the evaluation as runaway when it
// exceeds its CPU time, wall time or heap bound, at the comprehensions of
// the instances still being evaluated.
func watch(done <-chan struct{}, t *tree, opts Options, wallLimit time.Duration, run *running) error {
	cpu0, haveCPU := processCPUTime()
	if !haveCPU {
		wallLimit = opts.Timeout
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
			return runaway(t, run.list(), fmt.Sprintf("evaluation took longer than %s", wallLimit))
		case <-tick.C:
			if cpu, ok := processCPUTime(); ok && cpu-cpu0 > opts.Timeout {
				return runaway(t, run.list(), cpuMessage(opts.Timeout))
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 && int64(sample[0].Value.Uint64()) > opts.MaxMemory {
				return runaway(t, run.list(), memoryMessage(opts.MaxMemory))
			}
		}
	}
}

func cpuMessage(limit time.Duration) string {
	return fmt.Sprintf("evaluation used more than %s of CPU time", limit)
}

func memoryMessage(limit int64) string {
	return fmt.Sprintf("evaluation used more than %d MiB", limit>>20)
}

// evaluateAll evaluates the instances at the given indexes with
// parallelism workers, each batch in its own CUE context (a context is not
// safe for concurrent use), and hands each result to emit as soon as its
// batch is done (emit is called from the workers, one call at a time), so
// that a caller that sends results on can let go of them: a child that
// held every result until the end had a live heap that grew with the
// repository, and its collector, which aims at a fixed memory goal, ran
// more and more often (10,000 workloads took 7.4 s of CPU time, 50,000
// more than 60 s).
//
// Work is handed out in batches of about batchBytes of CUE: a batch is
// loaded with one call (see evaluateDirs), so imported packages are
// parsed once per batch; a batch's size in bytes, not in instances, bounds
// what one CUE context holds however large each instance is.
func evaluateAll(t *tree, todo []int, parallelism int, run *running, emit func(i int, r *instanceResult)) error {
	workers := min(parallelism, len(todo))
	next := make(chan []int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fast := newFastEval(t)
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
				// The fast path first (fast.go); CUE evaluates what it
				// gives back.
				var slow []int
				var dirs []string
				for _, i := range idx {
					if r := fast.try(t.dirs[i]); r != nil {
						mu.Lock()
						emit(i, r)
						mu.Unlock()
						continue
					}
					slow = append(slow, i)
					dirs = append(dirs, t.dirs[i])
				}
				if len(slow) == 0 {
					continue
				}
				ev, err := newEvaluator(t)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					continue
				}
				rs, err := ev.evaluateDirsSafely(dirs, run)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				for k, r := range rs {
					emit(slow[k], r)
				}
				mu.Unlock()
			}
		}()
	}
	for _, b := range batches(t, todo, workers) {
		next <- b
	}
	close(next)
	wg.Wait()
	return firstErr
}

// batchBytes is about how much CUE one batch of instances holds. Measured
// on the generated repositories: batches of 16 instances held 800 workloads
// at 10,000 and 4,000 at 50,000; batches of this size hold about 1,000
// either way.
const batchBytes = 256 << 10

// batches splits todo into runs of consecutive instances of about
// batchBytes of CUE each, and at least four per worker while there are
// instances to share, so the workers stay evenly busy.
func batches(t *tree, todo []int, workers int) [][]int {
	total := 0
	size := make([]int, len(todo))
	for k, i := range todo {
		for _, f := range t.dirFiles(t.dirs[i]) {
			size[k] += len(t.files[f])
		}
		total += size[k]
	}
	limit := max(1, min(batchBytes, total/(4*max(1, workers))))
	var out [][]int
	start, n := 0, 0
	for k := range todo {
		if k > start && n+size[k] > limit {
			out = append(out, todo[start:k])
			start, n = k, 0
		}
		n += size[k]
	}
	if start < len(todo) {
		out = append(out, todo[start:])
	}
	return out
}
