package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
)

// evalCommand is the hidden subcommand the loader re-executes berth with.
const evalCommand = "__eval"

// newEvalCmd is `berth __eval`, hidden: every command that loads a
// repository evaluates its CUE in a child process of this binary, under
// kernel limits (see cue.ServeChild). People never run it.
func newEvalCmd() *cobra.Command {
	return &cobra.Command{
		Use:    evalCommand,
		Short:  "Evaluate a repository's CUE for a parent berth (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := cue.ServeChild(os.Stdin, os.Stdout); code != 0 {
				return reportedError{code}
			}
			return nil
		},
	}
}

// evalSlots is how many first tries the evaluation Pool runs at once;
// with its retry lane, evalPool().Children() children run at most.
const evalSlots = 2

// evalPool is the one pool of evaluation processes of this berth: serve's
// engine and its pull-request planner share it.
var evalPool = sync.OnceValue(func() *cue.Pool { return cue.NewPool(evalSlots) })

// serveOwnMemory is what berth serve needs besides its evaluation
// children (it peaks under 100 MiB with 20 bomb pull requests; the rest
// is headroom). deploy/'s memory limit is serveOwnMemory plus
// evalPool().Children() times --eval-memory (TestDeployMemoryLimit).
const serveOwnMemory = 512 << 20

// evalSettings are the bounds of every evaluation, the same for serve,
// plan and validate: --eval-timeout and --eval-memory.
type evalSettings struct {
	timeout time.Duration // the full CPU budget; the first try gets cue.DefaultFirstTimeout
	memory  int64         // per child: its RLIMIT_AS beyond what it mapped at start
}

// evalBounds are this process's evaluation bounds, set by the flags of
// the command that runs.
var evalBounds = evalSettings{timeout: 60 * time.Second, memory: cue.DefaultMaxMemory}

// register adds --eval-timeout and --eval-memory.
func (e *evalSettings) register(f *pflag.FlagSet) {
	f.DurationVar(&e.timeout, "eval-timeout", e.timeout,
		fmt.Sprintf("CPU time a revision's evaluation may use; every revision is first tried with %s, and retried with this, one at a time, when that is not enough", cue.DefaultFirstTimeout))
	f.Var((*memoryValue)(&e.memory), "eval-memory",
		fmt.Sprintf("memory one evaluation process may use (its address space beyond what it starts with); berth serve runs up to %d at once", evalPool().Children()))
}

// memoryValue is a flag of bytes written as a quantity ("512Mi", "1Gi").
type memoryValue int64

func (m *memoryValue) String() string {
	return berth.MilliQuantity(int64(*m) * 1000).String()
}

func (m *memoryValue) Set(s string) error {
	q, err := berth.ParseQuantity(s)
	if err != nil {
		return err
	}
	if q.Value() < 64<<20 {
		return fmt.Errorf("%s is under 64Mi: too little for any evaluation", s)
	}
	*m = memoryValue(q.Value())
	return nil
}

func (m *memoryValue) Type() string { return "quantity" }

// loadRole says who loads: it decides how a load waits for a retry with
// the full CPU budget, and whose retries go first.
type loadRole int

const (
	// loadOnce is a command that loads once (validate, plan, snapshot,
	// ledger): it waits for its retry.
	loadOnce loadRole = iota
	// loadTracked is serve's engine: it waits for its retry, which goes
	// before any pull request's.
	loadTracked
	// loadPullRequests is serve's pull-request planner: a retry goes on
	// in the background, and the pull request is planned again when it
	// ended (cue.Options.RetryLater), so no planner waits for it.
	loadPullRequests
)

// evalLoader is the one way berth makes a loader: in a child process of
// this binary, in the shared Pool, first within cue.DefaultFirstTimeout
// of CPU time and, when that is not enough, again within --eval-timeout,
// each child bounded by --eval-memory. Every command gets the same
// budgets; role only says how a retry is waited for. Results are kept in
// the evaluation cache cacheDir (none when empty); warn is told when it
// cannot be written.
func evalLoader(role loadRole, cacheDir string, warn func(error)) *cue.Loader {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	opts := cue.Options{
		Child:        []string{exe, evalCommand},
		Pool:         evalPool(),
		Timeout:      evalBounds.timeout,
		FirstTimeout: cue.DefaultFirstTimeout,
		MaxMemory:    evalBounds.memory,
		Tracked:      role == loadTracked,
		RetryLater:   role == loadPullRequests,
		Profile:      profilePrefix,
	}
	if cacheDir != "" {
		opts.CacheDir = cacheDir
		opts.CacheVersion = cacheVersion(exe)
		opts.CacheWarn = warn
	}
	return cue.NewLoader(opts)
}

// cacheEnv names the evaluation cache's directory; "off" turns it off.
const cacheEnv = "BERTH_CACHE_DIR"

// userCacheDir is where the commands a person or CI runs keep evaluation
// results: $BERTH_CACHE_DIR, or berth/eval in the user's cache directory
// (~/.cache/berth/eval on Linux). Empty: no cache.
func userCacheDir() string {
	switch d := os.Getenv(cacheEnv); d {
	case "off":
		return ""
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(base, "berth", "eval")
	default:
		return d
	}
}

// serveCacheDir is berth serve's evaluation cache, in its state
// directory, shared by its engine and its pull-request planner.
func serveCacheDir(stateDir string) string { return filepath.Join(stateDir, "eval-cache") }

// cacheVersion is what a cached evaluation depends on besides the files:
// this berth. A released berth is its version; a build from a tree with
// changes (or with no version) is also the size and time of its binary,
// so that a rebuilt berth does not read its predecessor's results.
func cacheVersion(exe string) string {
	v := berth.Version
	if v == "dev" || strings.HasSuffix(v, "-dirty") {
		if fi, err := os.Stat(exe); err == nil {
			v += fmt.Sprintf("+%d.%d", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return v
}

// warnStderr prints a warning on standard error.
func warnStderr(err error) { fmt.Fprintf(os.Stderr, "berth: warning: %v\n", err) }

// loadDir loads the repository in dir as the commands that read one do.
func loadDir(dir string) (cue.Result, error) {
	return commandLoader().LoadResult(os.DirFS(dir))
}

// commandLoader is the loader of a command a person or CI runs, keeping
// its results in the user's evaluation cache.
func commandLoader() *cue.Loader { return evalLoader(loadOnce, userCacheDir(), warnStderr) }

// evalPackages counts the packages berth serve's loaders took in, by
// loader (engine, pull-requests) and by where each result came from:
// "evaluated" in a child process, or "disk", the evaluation cache in the
// state directory (written by this serve, the other loader, or a serve
// before it). Packages a loader still held in memory are not counted.
var evalPackages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_eval_packages_total",
	Help: "CUE packages loaded by serve's engine and pull-request planner, by where the result came from: evaluated, or the evaluation cache on disk."},
	[]string{"loader", "source"})

// String names a loader in logs and metrics.
func (r loadRole) String() string {
	switch r {
	case loadTracked:
		return "engine"
	case loadPullRequests:
		return "pull-requests"
	default:
		return "command"
	}
}

// newLoader is a loader of berth serve (or of `plan --github-pr`) that
// logs what it did not read, keeping results in cacheDir.
func newLoader(log *slog.Logger, role loadRole, cacheDir string) *loggingLoader {
	return &loggingLoader{l: evalLoader(role, cacheDir, func(err error) {
		log.Warn("evaluation cache is read-only", "error", err)
	}), log: log, role: role}
}

// loggingLoader logs the warnings of every load and what each load took
// from where: the engine and the planner see only the configuration.
type loggingLoader struct {
	l    *cue.Loader
	log  *slog.Logger
	role loadRole
}

func (ll *loggingLoader) Load(fsys fs.FS) (*berth.Config, error) {
	r, err := ll.l.LoadResult(fsys)
	for _, w := range r.Warnings {
		if w.Code == cue.WarnCredential {
			ll.log.Warn("env value in Git looks like a credential", "path", w.Path, "pos", w.Pos.String(), "reason", w.Message)
			continue
		}
		ll.log.Warn("file not read", "file", w.Pos.File, "reason", w.Message)
	}
	if st := r.Stats; st.Evaluated+st.FromDisk > 0 {
		ll.log.Info("loaded", "loader", ll.role.String(), "packages", st.Instances, "evaluated", st.Evaluated, "from-disk-cache", st.FromDisk)
		evalPackages.WithLabelValues(ll.role.String(), "evaluated").Add(float64(st.Evaluated))
		evalPackages.WithLabelValues(ll.role.String(), "disk").Add(float64(st.FromDisk))
	}
	return r.Config, err
}
