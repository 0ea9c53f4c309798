package reconcile

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/redact"
)

// Revision is one state of the repository to reconcile.
type Revision struct {
	// Name is how people and statuses refer to it: "main@sha1:<hash>".
	Name string
	// Commit is the commit's hash, empty for a working directory.
	Commit string
	Time   time.Time
	// Subject is the commit's first line and Author its author ("Name
	// <email>"): the history reads the pull request and who merged it
	// from them.
	Subject string
	Author  string
	FS      fs.FS
}

// Source gives the revision to reconcile.
type Source interface {
	Latest(ctx context.Context) (Revision, error)
}

// Loader turns a revision's tree into a configuration; cue.Loader is one.
// An invalid tree is an error the commit is to blame for (cue.Errors).
type Loader interface {
	Load(fsys fs.FS) (*berth.Config, error)
}

// Reporter tells people what a reconcile did: logs, commit statuses, pull
// request comments.
type Reporter interface {
	Report(ctx context.Context, r Report) error
}

// Report is the outcome of one reconcile.
type Report struct {
	Revision Revision
	// Invalid is set when the revision's configuration is invalid (the
	// commit is wrong): nothing was applied from it.
	Invalid error
	// Err is set when berth or a source failed (retried).
	Err error
	// Applied is the revision whose configuration was applied: the one
	// reconciled, or, when it is invalid, the last valid one.
	Applied  Revision
	Clusters []ClusterReport
}

// ClusterReport is what one cluster saw and did.
type ClusterReport struct {
	Name     string
	Plan     *berth.Plan
	Observed *Observed
	Changes  []Change
	Results  []Result
	// Err is set when the cluster failed to observe or apply (retried).
	Err error
	// Took is how long the cluster's part took, observe to apply, on the
	// engine's clock.
	Took time.Duration
}

// Writes counts the changes that changed something.
func (c ClusterReport) Writes() int {
	n := 0
	for _, r := range c.Results {
		if r.Outcome != OutcomeUnchanged {
			n++
		}
	}
	return n
}

// Options wire an Engine. Clusters and Loader are required.
type Options struct {
	// Clusters are the clusters this berth acts on, by name. Workloads of
	// clusters not listed here are planned by whoever runs them.
	Clusters []Cluster
	Loader   Loader
	Reporter Reporter
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Schedule tunes the decision step (its Backoff and TickDeadline
	// included), as every other caller of schedule.Schedule may.
	Schedule schedule.Options
	// Redact is set to the scrubber of the env values of the configuration
	// being reconciled and the last valid one, each time one loads, so that
	// whoever prints while they change (serve's log handler) scrubs the
	// same values (default: the engine's own).
	Redact *redact.Live
}

// Engine reconciles revisions. It keeps only caches and the last valid
// configuration: everything else is re-derived each time.
type Engine struct {
	opts Options

	mu        sync.Mutex
	lastGood  *goodConfig
	lastBad   *badRevision
	lastPlans map[string]ClusterReport
	// caches keep each cluster's scheduling state between reconciles, so
	// a cycle costs what changed (schedule.Cache).
	caches map[string]*schedule.Cache
}

type goodConfig struct {
	rev Revision
	cfg *berth.Config
}

// badRevision remembers the last revision that did not load, so resyncs
// do not evaluate it again (a runaway configuration would run away once
// per resync).
type badRevision struct {
	name, commit string
	err          error
}

// New returns an engine.
func New(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Redact == nil {
		opts.Redact = &redact.Live{}
	}
	opts.Logger = slog.New(redact.NewHandler(opts.Logger.Handler(), opts.Redact))
	return &Engine{opts: opts, lastPlans: map[string]ClusterReport{}, caches: map[string]*schedule.Cache{}}
}

// Last returns the last report of each cluster (for status and explain).
func (e *Engine) Last() map[string]ClusterReport {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]ClusterReport, len(e.lastPlans))
	for k, v := range e.lastPlans {
		out[k] = v
	}
	return out
}

// LastConfig is the last valid configuration and its revision.
func (e *Engine) LastConfig() (*berth.Config, Revision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastGood == nil {
		return nil, Revision{}, false
	}
	return e.lastGood.cfg, e.lastGood.rev, true
}

// Scrubber replaces the env values of the configurations in force; every
// error of a Report has been through it.
func (e *Engine) Scrubber() *redact.Scrubber { return e.opts.Redact.Get() }

// Reconcile fetches the source's latest revision and reconciles it.
func (e *Engine) Reconcile(ctx context.Context, src Source) Report {
	// 1. Fetch.
	rev, err := src.Latest(ctx)
	if err != nil {
		r := Report{Err: e.Scrubber().Err(fmt.Errorf("fetch: %w", err))}
		e.report(ctx, r)
		return r
	}
	return e.ReconcileRevision(ctx, rev)
}

// ReconcileRevision reconciles one revision.
func (e *Engine) ReconcileRevision(ctx context.Context, rev Revision) Report {
	rep := Report{Revision: rev}

	// 2. Load. An invalid revision changes nothing that runs: the last
	// valid configuration goes on being reconciled (so runs finish,
	// pipelines advance, ticks fire) and the revision is reported invalid.
	// Errors leave the engine scrubbed of env values: a log line, the
	// status API, a commit status or a comment may show them.
	cfg, good, err := e.load(rev)
	scrub := e.Scrubber()
	if err != nil {
		rep.Invalid = scrub.Err(err)
		if good == nil {
			e.report(ctx, rep)
			return rep
		}
	}
	rep.Applied = good.rev

	// 3 to 6, per cluster: observe, decide, diff, apply.
	for _, c := range e.opts.Clusters {
		start := e.opts.Now()
		cr := e.reconcileCluster(ctx, cfg, good.rev, c)
		cr.Took = e.opts.Now().Sub(start)
		cr.Err = scrub.Err(cr.Err)
		for i := range cr.Results {
			cr.Results[i].Err = scrub.Err(cr.Results[i].Err)
		}
		rep.Clusters = append(rep.Clusters, cr)
		if cr.Err == nil {
			e.mu.Lock()
			e.lastPlans[cr.Name] = cr
			e.mu.Unlock()
		}
	}

	// 7. Report.
	e.report(ctx, rep)
	return rep
}

// load returns the revision's configuration, or the last valid one with
// the revision's error.
func (e *Engine) load(rev Revision) (*berth.Config, *goodConfig, error) {
	e.mu.Lock()
	last, bad := e.lastGood, e.lastBad
	e.mu.Unlock()
	if last != nil && rev.Commit != "" && rev.Commit == last.rev.Commit && rev.Name == last.rev.Name {
		return last.cfg, last, nil
	}
	if bad != nil && rev.Commit != "" && rev.Commit == bad.commit && rev.Name == bad.name {
		if last == nil {
			return nil, nil, bad.err
		}
		return last.cfg, last, bad.err
	}
	cfg, err := e.opts.Loader.Load(rev.FS)
	if err != nil {
		if rev.Commit != "" {
			e.mu.Lock()
			e.lastBad = &badRevision{name: rev.Name, commit: rev.Commit, err: err}
			e.mu.Unlock()
		}
		if last == nil {
			return nil, nil, err
		}
		return last.cfg, last, err
	}
	good := &goodConfig{rev: rev, cfg: cfg}
	var lastCfg *berth.Config
	if last != nil {
		lastCfg = last.cfg
	}
	// The values of both: an error of this reconcile may quote the
	// configuration it replaces (a running workload's spec).
	e.opts.Redact.Set(redact.FromConfigs(cfg, lastCfg))
	e.mu.Lock()
	e.lastGood = good
	e.mu.Unlock()
	return cfg, good, nil
}

func (e *Engine) reconcileCluster(ctx context.Context, cfg *berth.Config, rev Revision, c Cluster) ClusterReport {
	cr := ClusterReport{Name: c.Name()}
	if _, ok := cfg.Clusters[c.Name()]; !ok {
		cr.Err = &ClusterNotInRepoError{Cluster: c.Name(), Known: cfg.ClusterNames()}
		return cr
	}

	// 3. Observe.
	obs, err := c.Observe(ctx, cfg)
	if err != nil {
		cr.Err = fmt.Errorf("cluster %s: observe: %w", c.Name(), err)
		return cr
	}
	cr.Observed = obs

	// 4. Decide: the one step every plan is made by.
	snap := Snapshot(cfg, c.Name(), obs, e.opts.Now())
	cr.Plan = e.cache(c.Name()).Schedule(schedule.Input{Config: cfg, Snapshot: &snap}, e.opts.Schedule)

	// 5. Diff.
	cr.Changes = Diff(cfg, cr.Plan, obs, rev.Name)
	if len(cr.Changes) == 0 && obs.Prunable == 0 {
		return cr
	}

	// 6. Apply (also with no change, when the backend has the storage of
	// ended runs to delete).
	results, err := c.Apply(ctx, cfg, cr.Changes)
	cr.Results = results
	if err != nil {
		cr.Err = fmt.Errorf("cluster %s: apply: %w", c.Name(), err)
	}
	for _, r := range results {
		if r.Err != nil {
			e.opts.Logger.Warn("apply failed", "cluster", c.Name(), "op", r.Change.Op,
				"workload", r.Change.Workload.ID(), "run", r.Change.RunID, "err", r.Err)
		}
	}
	return cr
}

func (e *Engine) report(ctx context.Context, r Report) {
	if e.opts.Reporter == nil {
		return
	}
	if err := e.opts.Reporter.Report(ctx, r); err != nil {
		e.opts.Logger.Warn("report failed", "revision", r.Revision.Name, "err", err)
	}
}

// ClusterNotInRepoError says berth was told to run a cluster the
// repository does not define.
type ClusterNotInRepoError struct {
	Cluster string
	Known   []string
}

func (e *ClusterNotInRepoError) Error() string {
	return fmt.Sprintf("cluster %s is not defined in the repository (its clusters: %v)", e.Cluster, e.Known)
}

// Normalize derives the queue and the finished runs from the ledger's runs
// (when the cluster reports them), the same way for every backend and for
// every caller (the engine, `berth snapshot`, pull-request plans):
//   - waiting are runs queued or preempted, runs that failed with a retry
//     left, and services whose process ended (they restart), each with its
//     failures so far and when the last one failed (the scheduler's
//     prepare step holds them back for their backoff);
//   - finished are run-once runs that succeeded, were stopped, or failed
//     with no retry left, and runs the backend says are over (a notebook
//     stopped for being idle).
//
// cfg may be nil (nothing is in Git).
func Normalize(cfg *berth.Config, obs *Observed) berth.Snapshot {
	snap := obs.Snapshot
	if len(obs.Runs) == 0 {
		return snap
	}
	snap.Queue = nil
	snap.Finished = nil
	snap.Running = withQueuedSince(snap.Running, obs.Runs)
	for i := range obs.Runs {
		r := &obs.Runs[i]
		switch r.Phase {
		case PhaseQueued, PhasePreempted, PhaseSucceeded, PhaseFailed, PhaseStopped:
		default:
			// Admitted or running: it neither waits nor has finished.
			// (Looking its workload up, a large struct, for each of
			// 10,000 running runs cost more than the cycle's decisions.)
			continue
		}
		var w berth.Workload
		inGit := false
		if cfg != nil {
			w, inGit = cfg.Workloads[r.Workload]
		}
		runsOnce := r.Kind.RunsOnce()
		if inGit {
			runsOnce = w.Kind.RunsOnce()
		}
		since := r.QueuedSince
		if since.IsZero() {
			since = r.StartedAt
		}
		waiting := berth.QueuedWorkload{Workload: r.Workload, RunID: r.RunID, Since: since, Failures: r.Failures()}
		ended := r.Phase == PhaseFailed || (r.Phase == PhaseSucceeded && !runsOnce)
		if ended {
			waiting.FailedAt, waiting.Failure = r.FinishedAt, r.Reason
			if r.Phase == PhaseSucceeded {
				waiting.Failure = "exited"
			}
		}
		switch {
		case r.Phase == PhaseQueued || r.Phase == PhasePreempted:
			snap.Queue = append(snap.Queue, waiting)
		case ended && !runsOnce && inGit:
			snap.Queue = append(snap.Queue, waiting)
		case r.Phase == PhaseFailed && runsOnce && inGit && r.Failures() <= w.Retries:
			snap.Queue = append(snap.Queue, waiting)
		case (runsOnce || r.Over) && (r.Phase == PhaseSucceeded || r.Phase == PhaseFailed || r.Phase == PhaseStopped):
			snap.Finished = append(snap.Finished, berth.FinishedRun{Workload: r.Workload, RunID: r.RunID,
				Succeeded: r.Phase == PhaseSucceeded, Reason: r.Reason, Attempts: r.Attempts - r.Preemptions, At: r.FinishedAt})
		}
	}
	return snap
}

// withQueuedSince is running with each run's QueuedSince taken from the
// ledger's runs where the cluster did not report it. It indexes the
// ledger and copies the list only when a run lacks it (the backends
// report it, so the list, 10,000 runs on a large cluster, is shared); the
// cluster's report is never changed.
func withQueuedSince(running []berth.RunningWorkload, ledger []RunState) []berth.RunningWorkload {
	var out []berth.RunningWorkload
	var queued map[berth.RunKey]time.Time
	for i := range running {
		rw := &running[i]
		if !rw.QueuedSince.IsZero() {
			continue
		}
		if queued == nil {
			queued = make(map[berth.RunKey]time.Time, len(ledger))
			for _, r := range ledger {
				if !r.QueuedSince.IsZero() {
					queued[r.Key()] = r.QueuedSince
				}
			}
		}
		t, ok := queued[rw.Key()]
		if !ok {
			continue
		}
		if out == nil {
			out = slices.Clone(running)
		}
		out[i].QueuedSince = t
	}
	if out == nil {
		return running
	}
	return out
}

// nonNil is list, or an empty list for nil.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// cache is the cluster's scheduling state kept between reconciles.
func (e *Engine) cache(cluster string) *schedule.Cache {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.caches[cluster]
	if !ok {
		c = schedule.NewCache()
		e.caches[cluster] = c
	}
	return c
}

// Plan is the decision a cluster gets from what it reported, at time now:
// the ledger's runs normalized into a snapshot (Normalize), then the one
// decision step (schedule.Schedule). The engine decides the same through
// the schedule.Cache it keeps for the cluster; `berth plan` and the
// pull-request planner call this (or schedule.Schedule on a snapshot
// Normalize wrote) to predict it.
func Plan(cfg *berth.Config, cluster string, obs *Observed, now time.Time, opts schedule.Options) *berth.Plan {
	snap := Snapshot(cfg, cluster, obs, now)
	return schedule.Schedule(schedule.Input{Config: cfg, Snapshot: &snap}, opts)
}

// Snapshot is the scheduler's view of a cluster as it reported itself, as
// of time now: what `berth snapshot` writes and every plan starts from. Its
// lists are sorted and never nil, so its encoding is canonical. It may
// share lists with obs: neither is changed afterwards (a schedule.Cache
// compares the next snapshot with it).
func Snapshot(cfg *berth.Config, cluster string, obs *Observed, now time.Time) berth.Snapshot {
	snap := Normalize(cfg, obs)
	snap.Cluster = cluster
	snap.Time = now
	snap.Nodes = nonNil(snap.Nodes)
	snap.Running = nonNil(snap.Running)
	snap.Queue = nonNil(snap.Queue)
	snap.Finished = nonNil(snap.Finished)
	if snap.Sorted() {
		// The lists the cluster reported in order (the backends sort
		// theirs) are shared: the snapshot is read, never written.
		return snap
	}
	// Copies: sorting must not reorder what the cluster reported.
	snap.Nodes = slices.Clone(snap.Nodes)
	snap.Running = slices.Clone(snap.Running)
	snap.Queue = slices.Clone(snap.Queue)
	snap.Finished = slices.Clone(snap.Finished)
	snap.Scale = slices.Clone(snap.Scale)
	snap.Sort()
	return snap
}
