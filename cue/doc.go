// Package cue turns a repository tree into a validated berth.Config.
//
// It is the only package that imports cuelang.org/go. It reads the tree
// from an fs.FS (a directory on disk or a Git revision's tree), checks every
// file before CUE sees it (size, UTF-8, a package clause, symlinks that
// leave the tree), loads every directory with .cue files as a CUE package
// instance (imports resolve through the repository's cue.mod), unifies each
// instance's top-level fields with the embedded schema object by object, so
// one bad workload does not hide the rest, merges the instances, and checks
// the references between them. It never writes into the tree. What it does
// not read although it could hold CUE (a .cue file CUE ignores for its
// name, a fifo, a symlink it does not follow) comes back as Warnings.
//
// Every problem is an Error with the CUE path (empty when a whole file is
// the problem) and every position in the repository CUE knows, and Load
// returns them all, sorted, as Errors: the commit is wrong. Any other error
// means berth failed.
//
// # Evaluation in a child process
//
// A repository, a pull request from a fork included, is untrusted input,
// and CUE cannot be stopped once it evaluates: a string doubled forty times
// or nested comprehensions grow until the process dies. So berth's
// commands evaluate in a child process (Options.Child: berth's hidden
// __eval command, which calls ServeChild) that the kernel bounds before it
// evaluates anything: address space (RLIMIT_AS: what the child had mapped
// at start plus Options.MaxMemory, default 512 MiB) and CPU time
// (RLIMIT_CPU, just over Options.Timeout, default 60 s); the parent bounds
// wall time and kills the child's process group. The child tells its
// parent which instances it is evaluating as it goes, so when a limit kills
// it the parent reports Errors at those instances' comprehensions, list
// builtins and concatenations (runaway.go) rather than a crash. A child
// that is killed for another reason, or is late without having used its CPU
// time, is berth's error, not the commit's.
//
// # The fast path
//
// Most of a repository is plain data: workload files that write concrete
// values, at most unified with a template of a shared package
// (templates.#Training & {...}). For an instance made only of such files,
// the child does not run CUE's evaluator: it parses the files with CUE's
// parser, evaluates the few forms it knows (literals, "*default | type",
// "&" of those and of definitions built the same way) and checks each team
// and workload against the schema's rules written in Go (fastschema.go),
// with the defaults and positions CUE gives. Anything it does not know or
// that the rules refuse sends the instance to CUE as before, so every
// error a user sees is CUE's. TestFastPathAgrees (every fixture and
// generated repository through both paths), TestFastPathMutations and
// FuzzFastPath (an instance changed in thousands of ways: where the fast
// path answers, CUE must answer the same) and TestFastFieldsCoverTheSchema
// (every field of the schema is checked or refused) hold the two to each
// other. It made a cold `berth validate` of 10,000 workloads about five
// times cheaper.
//
// The cache stays in the parent: a Loader keeps the result of each instance
// keyed by the content of its files and imports, and sends a child only the
// instances that changed (with the whole tree, for imports); the child
// evaluates them and streams their results back, bounded in size. The
// alternative, a long-lived worker child that keeps the cache, was not
// taken: a worker that reaches a limit dies with the whole cache, and its
// heap holds every evaluation it ever did; a fresh child per evaluation
// starts from nothing each time (about 30 ms for berth) and costs nothing
// when it is killed. Re-validating after one changed file evaluates one
// instance in one child.
//
// With Options.CacheDir the results also go to disk, so that the next
// process (berth validate in CI, a restarted berth serve) evaluates only
// what changed since any process evaluated it. An entry is found by
// berth's version and the content of the instance's own files, and used
// only when the content of everything it imports is what it was; it is
// written whole or not at all (a rename) and checked (a checksum) when it
// is read, so a damaged or foreign entry is evaluated again, never
// trusted. Reading one decodes the data a child wrote; nothing from disk
// is evaluated in the parent. A cache that cannot be written (a full
// disk) warns once and is read-only from then on (diskcache.go).
//
// Loads of the same tree share one evaluation (singleflight, by the hash of
// every file), an invalid tree's Errors are remembered so that it is never
// evaluated again, and children run at most as many at a time as their
// Pool allows (berth serve's engine and pull-request planner share one of
// two). Every berth command escalates (Options.FirstTimeout): every tree
// is first evaluated within DefaultFirstTimeout (1 s) of CPU time, and
// only a tree that used all of it is evaluated again with the full
// Timeout, in the Pool's retry lane of one child, which first tries never
// wait for and which serves the tracked branch (Options.Tracked) first,
// then the retries in the order they came. So a bomb that only burns CPU
// holds a first-try slot for a second, and a valid pull request behind
// twenty of them waits seconds, not twenty minutes; the bombs' retries
// queue behind each other. With
// Options.RetryLater (berth serve's planner) a load does not wait for its
// retry: it returns *Retrying, and the retry's outcome is what the next
// load of the tree gets. A tree that passed its memory bound is not
// retried (the bound is the same), and the outcome of the last try is
// what is remembered by the tree's hash. With both lanes full,
// Pool.Children() children run: berth serve's memory limit must hold that
// many times MaxMemory and serve itself (deploy/ sets 2 GiB for three of
// 512 MiB and serve's own 512 MiB). Without Options.Child, evaluation happens in this process, bounded
// only by watching its CPU time and heap: a runaway evaluation is reported
// the same way but abandoned, still running. That mode is for the loader's
// own tests and fuzzing. Instances are evaluated in parallel, each batch in
// a fresh CUE context.
package cue
