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

	"github.com/spf13/cobra"

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

// evalPool is the one pool of evaluation processes of this berth: serve's
// engine and its pull-request planner share it.
var evalPool = sync.OnceValue(func() *cue.Pool { return cue.NewPool(2) })

// loadOptions are the options every command loads a repository with: in
// a child process of this binary, bounded by the defaults (cue.Options
// says what they are), keeping results in the evaluation cache cacheDir
// (none when empty).
func loadOptions(cacheDir string) cue.Options {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	opts := cue.Options{Child: []string{exe, evalCommand}, Pool: evalPool(), Profile: profilePrefix}
	if cacheDir != "" {
		opts.CacheDir = cacheDir
		opts.CacheVersion = cacheVersion(exe)
		opts.CacheWarn = func(err error) { fmt.Fprintf(os.Stderr, "berth: warning: %v\n", err) }
	}
	return opts
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

// loadDir loads the repository in dir as the commands that read one do.
func loadDir(dir string) (cue.Result, error) {
	return cue.NewLoader(loadOptions(userCacheDir())).LoadResult(os.DirFS(dir))
}

// evalTimeout is the CPU budget of an evaluation by berth serve's loaders
// (serve's --eval-timeout).
var evalTimeout = 60 * time.Second

// newLoader is the loader of berth serve's engine and pull-request
// planner: isolated, keeping results in cacheDir (serve's state
// directory), logging what it did not read, and trying every tree
// first with a short CPU budget (cue.DefaultFirstTimeout), so that a
// pull request that carries a CPU-only bomb holds a slot of the pool for
// a second, not a minute; a tree that needs more is retried in the pool's
// retry lane.
func newLoader(log *slog.Logger, cacheDir string) *loggingLoader {
	opts := loadOptions(cacheDir)
	opts.CacheWarn = func(err error) { log.Warn("evaluation cache is read-only", "error", err) }
	opts.Timeout = evalTimeout
	opts.FirstTimeout = cue.DefaultFirstTimeout
	return &loggingLoader{l: cue.NewLoader(opts), log: log}
}

// loggingLoader logs the warnings of every load: the engine and the
// planner see only the configuration.
type loggingLoader struct {
	l   *cue.Loader
	log *slog.Logger
}

func (ll *loggingLoader) Load(fsys fs.FS) (*berth.Config, error) {
	r, err := ll.l.LoadResult(fsys)
	for _, w := range r.Warnings {
		ll.log.Warn("file not read", "file", w.Pos.File, "reason", w.Message)
	}
	return r.Config, err
}
