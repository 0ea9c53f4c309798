package gh

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/redact"
	"github.com/berth-gpu/berth/status"
)

// SyncAPI is what following merged pull requests needs of the forge.
type SyncAPI interface {
	SetStatuses(ctx context.Context, sha string, sts []status.CommitStatus) error
	UpsertComment(ctx context.Context, pr int, c status.Comment) error
	PullRequestsOfCommit(ctx context.Context, sha string) ([]PR, error)
}

// SyncOptions wire a SyncReporter. API is required.
type SyncOptions struct {
	API SyncAPI
	// Workloads lists, per cluster, the workloads a merged pull request
	// added or changed (Planner.MergedWorkloads). Without it only pull
	// requests given to Track are followed.
	Workloads func(ctx context.Context, pr PR) (map[string][]berth.WorkloadID, error)
	// MaxAge is how long a merged pull request is followed at most
	// (default 7 days); MaxTracked how many at once (default 100).
	MaxAge     time.Duration
	MaxTracked int
	Comment    status.CommentOptions
	// Redact, when set, gives the scrubber of the configurations in force
	// (reconcile.Engine.Scrubber): statuses and comments are scrubbed with
	// it (the reports' errors already are).
	Redact func() *redact.Scrubber
	Now    func() time.Time
	Logger *slog.Logger
}

// SyncReporter is the reconcile.Reporter that keeps a merged pull
// request's berth/sync: <cluster> statuses (on the merge commit) and its
// sticky comments current as its workloads move: queued, admitted,
// running, succeeded, failed (with the reason), preempted (by whom).
//
// Report never blocks the engine: it hands the report to Run's goroutine,
// which keeps only the latest. A pull request is found when the engine
// applies its merge commit (or through Track, from a webhook), and
// followed until every workload of it has finished (or, for services,
// runs), or MaxAge passed.
type SyncReporter struct {
	opts SyncOptions
	log  *slog.Logger
	in   chan reconcile.Report

	mu      sync.Mutex
	tracked map[int]*trackedPR
	seen    *lru.Cache[string, struct{}] // the last maxSeenCommits applied commits already asked about
}

// maxSeenCommits is how many applied commits a SyncReporter remembers having
// asked the forge about (a commit the tracked branch left long ago does not
// come back).
const maxSeenCommits = 256

type trackedPR struct {
	pr      PR
	ids     map[string][]berth.WorkloadID
	active  bool
	since   time.Time
	history map[berth.WorkloadID][]status.Transition
	done    map[string]bool // clusters whose workloads all ended
}

// NewSyncReporter returns a reporter; start Run to make it work.
func NewSyncReporter(opts SyncOptions) *SyncReporter {
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = 100
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seen, _ := lru.New[string, struct{}](maxSeenCommits) // errs only for a size under 1
	return &SyncReporter{opts: opts, log: log, in: make(chan reconcile.Report, 1),
		tracked: map[int]*trackedPR{}, seen: seen}
}

// Report hands a reconcile's report to Run. It never blocks: a report not
// yet taken is replaced by the newer one.
func (s *SyncReporter) Report(ctx context.Context, r reconcile.Report) error {
	for {
		select {
		case s.in <- r:
			return nil
		default:
		}
		select {
		case <-s.in: // drop the older report
		default:
		}
	}
}

// Run syncs each report handed to Report until ctx is done.
func (s *SyncReporter) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.in:
			if err := s.Sync(ctx, r); err != nil {
				s.log.Warn("sync to github failed; retried with the next reconcile", "err", err)
			}
		}
	}
}

// Track follows a merged pull request's workloads (per cluster).
func (s *SyncReporter) Track(pr PR, ids map[string][]berth.WorkloadID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) == 0 {
		s.log.Info("merged pull request changed no workload; nothing to follow", "pr", pr.Number)
		return
	}
	if t, ok := s.tracked[pr.Number]; ok {
		t.pr, t.ids = pr, ids
		return
	}
	if len(s.tracked) >= s.opts.MaxTracked {
		// Forget the one followed longest.
		oldest, at := 0, time.Time{}
		for n, t := range s.tracked {
			if oldest == 0 || t.since.Before(at) {
				oldest, at = n, t.since
			}
		}
		delete(s.tracked, oldest)
	}
	s.tracked[pr.Number] = &trackedPR{pr: pr, ids: ids, since: s.opts.Now(),
		history: map[berth.WorkloadID][]status.Transition{}, done: map[string]bool{}}
}

// Tracked lists the pull requests followed, sorted.
func (s *SyncReporter) Tracked() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for n := range s.tracked {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Sync writes what one report says about the merged pull requests.
func (s *SyncReporter) Sync(ctx context.Context, r reconcile.Report) error {
	if r.Applied.Commit == "" {
		return nil
	}
	s.discover(ctx, r.Applied)
	now := s.opts.Now()

	s.mu.Lock()
	var work []*trackedPR
	for n, t := range s.tracked {
		if now.Sub(t.since) > s.opts.MaxAge {
			delete(s.tracked, n)
			continue
		}
		if !t.active && (t.pr.MergeSHA == r.Applied.Commit ||
			(!t.pr.MergedAt.IsZero() && !r.Applied.Time.Before(t.pr.MergedAt))) {
			t.active = true
		}
		if t.active {
			work = append(work, t)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(work, func(a, b *trackedPR) int {
		return cmp.Compare(a.pr.Number, b.pr.Number)
	})

	var errs []error
	for _, t := range work {
		finished, err := s.syncPR(ctx, t, r, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if finished {
			s.mu.Lock()
			delete(s.tracked, t.pr.Number)
			s.mu.Unlock()
			s.log.Info("merged pull request finished on every cluster; no longer followed", "pr", t.pr.Number)
		}
	}
	return errors.Join(errs...)
}

// discover asks the forge which merged pull requests an applied commit
// came from, once per commit.
func (s *SyncReporter) discover(ctx context.Context, rev reconcile.Revision) {
	known, _ := s.seen.ContainsOrAdd(rev.Commit, struct{}{})
	if known || s.opts.Workloads == nil {
		return
	}
	prs, err := s.opts.API.PullRequestsOfCommit(ctx, rev.Commit)
	if err != nil {
		s.log.Warn("cannot find the pull request of an applied commit", "commit", short(rev.Commit), "err", err)
		s.seen.Remove(rev.Commit) // ask again next time
		return
	}
	for _, pr := range prs {
		s.mu.Lock()
		_, tracked := s.tracked[pr.Number]
		s.mu.Unlock()
		if tracked {
			continue
		}
		ids, err := s.opts.Workloads(ctx, pr)
		if err != nil {
			s.log.Warn("cannot tell which workloads a merged pull request changed", "pr", pr.Number, "err", err)
			continue
		}
		if pr.MergeSHA == "" {
			pr.MergeSHA = rev.Commit
		}
		s.Track(pr, ids)
		s.mu.Lock()
		if t, ok := s.tracked[pr.Number]; ok {
			t.active = true
		}
		s.mu.Unlock()
	}
}

// syncPR writes one pull request's statuses and comments for every
// cluster the report covers. It reports whether all its workloads ended.
func (s *SyncReporter) syncPR(ctx context.Context, t *trackedPR, r reconcile.Report, now time.Time) (bool, error) {
	byName := map[string]reconcile.ClusterReport{}
	for _, c := range r.Clusters {
		byName[c.Name] = c
	}
	var errs []error
	var statuses []status.CommitStatus
	clusters := make([]string, 0, len(t.ids))
	for c := range t.ids {
		clusters = append(clusters, c)
	}
	slices.Sort(clusters)
	for _, cluster := range clusters {
		cr, ok := byName[cluster]
		if !ok {
			continue // not a cluster this berth runs
		}
		v := status.SyncView{PR: t.pr.PullRequest, Cluster: cluster, MergeSHA: t.pr.MergeSHA}
		if cr.Err != nil {
			v.Err = cr.Err
		} else {
			var runs []reconcile.RunState
			if cr.Observed != nil {
				runs = cr.Observed.Runs
			}
			v.Workloads = status.SyncWorkloads(cluster, cr.Plan, runs, t.ids[cluster])
			final := true
			s.mu.Lock()
			for i, w := range v.Workloads {
				h := t.history[w.ID]
				if len(h) == 0 || h[len(h)-1].State != w.State {
					tr := status.Transition{State: w.State, At: now}
					if w.State == status.SyncPreempted || w.State == status.SyncFailed {
						// "preempted 10:32 (by x/y: ...)": the state is
						// not said twice.
						tr.Note = strings.TrimPrefix(w.Reason, w.State+" ")
					}
					h = append(h, tr)
					t.history[w.ID] = h
				}
				v.Workloads[i].History = append([]status.Transition(nil), h...)
				final = final && w.Final()
			}
			t.done[cluster] = final && len(v.Workloads) > 0
			s.mu.Unlock()
		}
		copts := s.opts.Comment
		if s.opts.Redact != nil {
			copts.Redact = redact.Merge(copts.Redact, s.opts.Redact())
		}
		statuses = append(statuses, status.SyncStatus(v).Scrubbed(copts.Redact))
		c, err := status.SyncComment(v, copts)
		if err != nil {
			return false, err
		}
		if err := s.opts.API.UpsertComment(ctx, t.pr.Number, c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(statuses) > 0 {
		if err := s.opts.API.SetStatuses(ctx, t.pr.MergeSHA, statuses); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	finished := len(errs) == 0
	for _, c := range clusters {
		if _, ok := byName[c]; ok && !t.done[c] {
			finished = false
		}
	}
	return finished, errors.Join(errs...)
}
