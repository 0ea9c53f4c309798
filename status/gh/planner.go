package gh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/redact"
	"github.com/berth-gpu/berth/sources"
	"github.com/berth-gpu/berth/status"
)

// API is what planning a pull request needs of the forge; *Client is one.
type API interface {
	PullRequest(ctx context.Context, number int) (PR, error)
	ChangedFiles(ctx context.Context, number int) ([]string, error)
	Approvers(ctx context.Context, number int, teams []string) ([]policy.Approver, error)
	SetStatuses(ctx context.Context, sha string, sts []status.CommitStatus) error
	UpsertComment(ctx context.Context, pr int, c status.Comment) error
}

// Revisions gives the trees of commits and refs; *sources.Git is one.
type Revisions interface {
	At(ctx context.Context, hash string) (sources.Revision, error)
	Ref(ctx context.Context, ref string) (sources.Revision, error)
}

// Observer gives the observed state of each cluster berth plans for, as
// of now. Clusters it does not report are not planned (whoever runs them
// plans them).
type Observer func(ctx context.Context) (map[string]*berth.Snapshot, error)

// PlannerOptions wire a Planner. API, Git, Loader and Observe are required.
type PlannerOptions struct {
	API     API
	Git     Revisions
	Loader  reconcile.Loader
	Observe Observer
	// Schedule tunes the scheduler (Estimate is set per pull request).
	Schedule schedule.Options
	// Comment bounds comments (the zero value: GitHub's limits).
	Comment status.CommentOptions
	// Sync, when set, is told about merged pull requests so it follows
	// their workloads.
	Sync   *SyncReporter
	Logger *slog.Logger
}

// Planner plans pull requests and writes the outcome back: statuses on the
// head commit and one sticky comment per cluster. It never applies
// anything, whoever the pull request comes from.
type Planner struct {
	opts PlannerOptions
	log  *slog.Logger

	mu      sync.Mutex
	configs *lru.Cache[string, *loaded] // by commit, the last maxConfigs used
	last    map[int]*planned            // by pull request
	// caches keep each cluster's scheduling state between plans, one for
	// the bases and one for the heads: the plans of every pull request
	// start from the same observed cluster, so each costs what its
	// configuration changes since the last plan of its side
	// (schedule.Cache), and a base and its head are planned at once.
	caches map[string]*sides
}

// sides are a cluster's scheduling caches for bases and for heads.
type sides struct{ base, head *schedule.Cache }

type loaded struct {
	cfg *berth.Config
	err error
	fs  fs.FS
}

// planned is the last plan of a pull request: a review re-renders it
// without planning again while the head has not moved.
type planned struct {
	pr    PR
	base  *loaded
	head  *loaded
	files []string
	views []status.PlanView
	// redact replaces the env values of the base and the head.
	redact *redact.Scrubber
}

const maxConfigs = 16

// NewPlanner returns a planner.
func NewPlanner(opts PlannerOptions) *Planner {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	configs, _ := lru.New[string, *loaded](maxConfigs) // errs only for a size under 1
	return &Planner{opts: opts, log: log, configs: configs, last: map[int]*planned{}}
}

// Result is what one plan wrote.
type Result struct {
	PR       PR
	Statuses []status.CommitStatus
	Comments []status.Comment
	// Skipped says why nothing was planned ("closed").
	Skipped string
	// Waiting, when set, says that the plan could not be finished yet: an
	// evaluation needed more than its first try's CPU budget and is
	// retried in the background (cue.Options.RetryLater). berth/validate
	// says so (pending), and the pull request is to be planned again when
	// Waiting is closed; no planner waits for it.
	Waiting <-chan struct{}
	// Stages say how long each stage took, in order ("fetch", "load",
	// "plan", "review", "write").
	Stages []Stage
}

// Stage is one stage's duration.
type Stage struct {
	Name string
	Took time.Duration
}

func (r *Result) stage(name string, since time.Time) time.Time {
	now := time.Now()
	r.Stages = append(r.Stages, Stage{Name: name, Took: now.Sub(since)})
	return now
}

// Plan plans pull request number and posts its statuses and comments.
// An error means berth failed (statuses say "error"); the caller retries.
func (p *Planner) Plan(ctx context.Context, number int) (*Result, error) {
	t := time.Now()
	pr, err := p.opts.API.PullRequest(ctx, number)
	if err != nil {
		return nil, err
	}
	if pr.State == "closed" {
		if pr.Merged && p.opts.Sync != nil {
			p.Merged(ctx, pr)
		}
		return &Result{PR: pr, Skipped: "closed"}, nil
	}
	res := &Result{PR: pr}
	t = res.stage("get", t)

	// 1. Fetch the head and the base, and the changed files, at once.
	var head, base sources.Revision
	var files []string
	var headErr, baseErr, filesErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		head, headErr = p.fetchHead(ctx, pr)
		if headErr == nil {
			base, baseErr = p.fetchBase(ctx, pr)
		}
	}()
	go func() {
		defer wg.Done()
		files, filesErr = p.opts.API.ChangedFiles(ctx, number)
	}()
	wg.Wait()
	t = res.stage("fetch", t)
	if err := errors.Join(headErr, baseErr, filesErr); err != nil {
		st := status.NewCommitStatus(status.ContextValidate, status.StateError, "berth could not fetch the pull request (retrying): "+err.Error())
		res.Statuses = []status.CommitStatus{st}
		return res, errors.Join(err, p.opts.API.SetStatuses(ctx, pr.HeadSHA, res.Statuses))
	}

	// 2. Load both.
	bl, hl := p.load(base), p.load(head)
	t = res.stage("load", t)
	if r := retrying(hl.err, bl.err); r != nil {
		res.Statuses = []status.CommitStatus{status.NewCommitStatus(status.ContextValidate, status.StatePending, r.Error())}
		res.Waiting = r.Done
		return res, p.opts.API.SetStatuses(ctx, pr.HeadSHA, res.Statuses)
	}
	var cerrs cue.Errors
	if hl.err != nil && !errors.As(hl.err, &cerrs) {
		st := status.ValidateStatus(nil, hl.err)
		res.Statuses = []status.CommitStatus{st}
		return res, errors.Join(hl.err, p.opts.API.SetStatuses(ctx, pr.HeadSHA, res.Statuses))
	}
	if bl.err != nil && !errors.As(bl.err, &cerrs) {
		return res, bl.err
	}

	// 3. Plan each cluster berth observes.
	pl := &planned{pr: pr, base: bl, head: hl, files: files, redact: redact.FromConfigs(bl.cfg, hl.cfg)}
	if hl.err == nil {
		views, err := p.planClusters(ctx, pr, bl, hl)
		if err != nil {
			return res, err
		}
		pl.views = views
	}
	res.stage("plan", t)
	p.mu.Lock()
	p.last[number] = pl
	p.mu.Unlock()

	// 4. Review and write.
	return p.write(ctx, pl, res)
}

// retrying is the first of errs that says an evaluation is being retried
// with its full budget, or nil.
func retrying(errs ...error) *cue.Retrying {
	for _, err := range errs {
		var r *cue.Retrying
		if errors.As(err, &r) {
			return r
		}
	}
	return nil
}

// Review re-checks a pull request's policy after a review: the last plan
// is rendered again with the new approvals when the head has not moved;
// otherwise it plans again.
func (p *Planner) Review(ctx context.Context, number int) (*Result, error) {
	p.mu.Lock()
	pl := p.last[number]
	p.mu.Unlock()
	if pl == nil {
		return p.Plan(ctx, number)
	}
	pr, err := p.opts.API.PullRequest(ctx, number)
	if err != nil {
		return nil, err
	}
	if pr.HeadSHA != pl.pr.HeadSHA || pr.BaseSHA != pl.pr.BaseSHA || pr.State != "open" {
		return p.Plan(ctx, number)
	}
	return p.write(ctx, pl, &Result{PR: pr})
}

// write reviews the policy and posts every status and comment.
func (p *Planner) write(ctx context.Context, pl *planned, res *Result) (*Result, error) {
	pr := pl.pr
	t := time.Now()
	review, policyStatus, err := p.review(ctx, pl)
	if err != nil {
		return res, err
	}
	t = res.stage("review", t)
	defer res.stage("write", t)
	opts := p.opts.Comment
	opts.Redact = redact.Merge(opts.Redact, pl.redact)

	res.Statuses = append(res.Statuses, status.ValidateStatus(pl.head.cfg, pl.head.err), policyStatus)
	if pl.head.err != nil {
		for _, cluster := range p.invalidClusters(ctx, pl) {
			c, err := status.InvalidComment(pr.PullRequest, cluster, pl.head.err, review, opts)
			if err != nil {
				return res, err
			}
			res.Comments = append(res.Comments, c)
			res.Statuses = append(res.Statuses, status.NewCommitStatus(status.PlanContext(cluster), status.StateFailure,
				"the configuration does not validate: see berth/validate"))
		}
	}
	for _, v := range pl.views {
		c, err := status.PlanComment(v, review, opts)
		if err != nil {
			return res, err
		}
		res.Comments = append(res.Comments, c)
		res.Statuses = append(res.Statuses, status.PlanStatus(v))
	}

	for i, st := range res.Statuses {
		res.Statuses[i] = st.Scrubbed(opts.Redact)
	}

	// Statuses and comments go out at once; each is idempotent.
	var wg sync.WaitGroup
	var stErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		stErr = p.opts.API.SetStatuses(ctx, pr.HeadSHA, res.Statuses)
	}()
	var cErrs []error
	for _, c := range res.Comments {
		if err := p.opts.API.UpsertComment(ctx, pr.Number, c); err != nil {
			cErrs = append(cErrs, err)
		}
	}
	wg.Wait()
	return res, errors.Join(append(cErrs, stErr)...)
}

// review judges the pull request by the base's rules and the approvals.
func (p *Planner) review(ctx context.Context, pl *planned) (*policy.Review, status.CommitStatus, error) {
	co, err := policy.ReadCodeOwners(pl.base.fs)
	if err != nil {
		st := status.NewCommitStatus(status.ContextPolicy, status.StateFailure, "the base's CODEOWNERS does not parse: "+err.Error())
		return nil, st, nil
	}
	in := policy.ReviewInput{Base: pl.base.cfg, Head: pl.head.cfg, Changed: pl.files, CodeOwners: co, Author: pl.pr.Author}
	if pl.base.cfg == nil {
		// Without valid base rules nothing can be judged: no one is
		// named who could approve.
		st := status.NewCommitStatus(status.ContextPolicy, status.StateFailure,
			"the base does not validate, so its policy cannot be read; fix the base branch first")
		return nil, st, nil
	}
	reqs := policy.Requirements(in)
	approvers, err := p.opts.API.Approvers(ctx, pl.pr.Number, policy.TeamHandles(reqs))
	if err != nil {
		return nil, status.CommitStatus{}, err
	}
	rev := policy.Review{Requirements: policy.Judge(reqs, pl.pr.Author, approvers)}
	if pl.head.cfg == nil {
		// What an invalid head changes is only guessed from its files (the
		// comment lists it); the status waits for a valid head rather than
		// ask for approvals of a guess.
		return &rev, status.NewCommitStatus(status.ContextPolicy, status.StatePending,
			"the configuration does not validate; approvals are checked once it does"), nil
	}
	return &rev, status.PolicyStatus(rev), nil
}

// invalidClusters are the clusters to show an invalid head on: those of
// the base that berth observes.
func (p *Planner) invalidClusters(ctx context.Context, pl *planned) []string {
	obs, err := p.opts.Observe(ctx)
	if err != nil || pl.base.cfg == nil {
		return nil
	}
	var out []string
	for _, name := range pl.base.cfg.ClusterNames() {
		if _, ok := obs[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

func (p *Planner) planClusters(ctx context.Context, pr PR, bl, hl *loaded) ([]status.PlanView, error) {
	obs, err := p.opts.Observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("observed state: %w", err)
	}
	changed := status.ChangedWorkloads(bl.cfg, hl.cfg)
	estimate := map[berth.WorkloadID]bool{}
	for _, c := range changed {
		estimate[c.ID] = true
	}
	var views []status.PlanView
	for _, cluster := range hl.cfg.ClusterNames() {
		snap, ok := obs[cluster]
		if !ok {
			continue
		}
		in := status.PlanInput{PR: pr.PullRequest, Cluster: cluster, Base: bl.cfg, Head: hl.cfg}
		if snap == nil {
			in.Err = fmt.Errorf("cluster %s has not been observed yet", cluster)
			views = append(views, status.NewPlanView(in))
			continue
		}
		s := *snap
		s.Cluster = cluster
		opts := p.opts.Schedule
		opts.Estimate = estimate
		caches := p.cache(cluster)
		var wg sync.WaitGroup
		if bl.cfg != nil {
			if _, ok := bl.cfg.Clusters[cluster]; ok {
				wg.Go(func() {
					in.BasePlan = caches.base.Schedule(schedule.Input{Config: bl.cfg, Snapshot: &s}, p.opts.Schedule)
				})
			}
		}
		in.HeadPlan = caches.head.Schedule(schedule.Input{Config: hl.cfg, Snapshot: &s}, opts)
		wg.Wait()
		views = append(views, status.NewPlanView(in))
	}
	return views, nil
}

// cache is the cluster's scheduling state kept between plans.
func (p *Planner) cache(cluster string) *sides {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caches == nil {
		p.caches = map[string]*sides{}
	}
	c, ok := p.caches[cluster]
	if !ok {
		c = &sides{base: schedule.NewCache(), head: schedule.NewCache()}
		p.caches[cluster] = c
	}
	return c
}

// fetchHead fetches refs/pull/N/head; when it has moved past the head the
// API reported (a push in between), the reported commit is used so the
// statuses land on the commit they describe.
func (p *Planner) fetchHead(ctx context.Context, pr PR) (sources.Revision, error) {
	rev, err := p.opts.Git.Ref(ctx, fmt.Sprintf("refs/pull/%d/head", pr.Number))
	if err != nil {
		return sources.Revision{}, err
	}
	if pr.HeadSHA != "" && rev.Hash != pr.HeadSHA {
		if r, err := p.opts.Git.At(ctx, pr.HeadSHA); err == nil {
			return r, nil
		}
	}
	return rev, nil
}

// fetchBase fetches the base commit, through the base branch when the
// server will not serve a commit by hash.
func (p *Planner) fetchBase(ctx context.Context, pr PR) (sources.Revision, error) {
	rev, err := p.opts.Git.At(ctx, pr.BaseSHA)
	var nf *sources.CommitNotFoundError
	if errors.As(err, &nf) && pr.BaseRef != "" {
		if _, err := p.opts.Git.Ref(ctx, pr.BaseRef); err != nil {
			return sources.Revision{}, err
		}
		return p.opts.Git.At(ctx, pr.BaseSHA)
	}
	return rev, err
}

// load loads a revision's configuration, once per commit.
func (p *Planner) load(rev sources.Revision) *loaded {
	if l, ok := p.configs.Get(rev.Hash); ok {
		return l
	}
	cfg, err := p.opts.Loader.Load(rev.FS)
	l := &loaded{cfg: cfg, err: err, fs: rev.FS}
	var cerrs cue.Errors
	if err != nil && !errors.As(err, &cerrs) {
		return l // berth failed: do not remember it
	}
	p.configs.Add(rev.Hash, l)
	return l
}

// Merged tells the sync reporter to follow a merged pull request's
// workloads: those it added or changed, per cluster.
func (p *Planner) Merged(ctx context.Context, pr PR) {
	if p.opts.Sync == nil || pr.MergeSHA == "" {
		return
	}
	ids, err := p.MergedWorkloads(ctx, pr)
	if err != nil {
		p.log.Warn("cannot tell which workloads a merged pull request changed", "pr", pr.Number, "err", err)
		return
	}
	p.opts.Sync.Track(pr, ids)
}

// MergedWorkloads lists, per cluster, the workloads a merged pull request
// added or changed. Forges disagree on what a merged pull request's base
// is (GitHub keeps the base it was planned against; Gitea reports the
// branch's tip, the merge commit itself), so three comparisons are
// united: the last plan's base and head, the reported base and head, and
// the merge commit against its first parent (what the merge brought to
// the branch). Only workloads the merge commit has are followed.
func (p *Planner) MergedWorkloads(ctx context.Context, pr PR) (map[string][]berth.WorkloadID, error) {
	type pair struct{ base, head *loaded }
	var pairs []pair
	p.mu.Lock()
	if pl := p.last[pr.Number]; pl != nil && pl.head.cfg != nil {
		pairs = append(pairs, pair{pl.base, pl.head})
	}
	p.mu.Unlock()
	if base, err := p.fetchBase(ctx, pr); err == nil {
		if head, err := p.opts.Git.At(ctx, pr.HeadSHA); err == nil {
			pairs = append(pairs, pair{p.load(base), p.load(head)})
		}
	}
	merged := (*loaded)(nil)
	if pr.MergeSHA != "" {
		if rev, err := p.opts.Git.At(ctx, pr.MergeSHA); err == nil {
			merged = p.load(rev)
		}
		if pa, ok := p.opts.API.(interface {
			CommitParents(context.Context, string) ([]string, error)
		}); ok && merged != nil {
			if parents, err := pa.CommitParents(ctx, pr.MergeSHA); err == nil && len(parents) > 0 {
				if rev, err := p.opts.Git.At(ctx, parents[0]); err == nil {
					pairs = append(pairs, pair{p.load(rev), merged})
				}
			}
		}
	}
	final := merged
	if final == nil || final.cfg == nil {
		for _, pp := range pairs {
			if pp.head.cfg != nil {
				final = pp.head
			}
		}
	}
	if final == nil || final.cfg == nil {
		return nil, fmt.Errorf("pull request #%d: no valid configuration of its merge or head", pr.Number)
	}
	ids := map[berth.WorkloadID]bool{}
	for _, pp := range pairs {
		if pp.head.cfg == nil {
			continue
		}
		for _, c := range status.ChangedWorkloads(pp.base.cfg, pp.head.cfg) {
			if _, ok := final.cfg.Workloads[c.ID]; ok {
				ids[c.ID] = true
			}
		}
	}
	out := map[string][]berth.WorkloadID{}
	for _, id := range final.cfg.WorkloadIDs() {
		if ids[id] {
			cl := schedule.ClusterOf(final.cfg, final.cfg.Workloads[id])
			out[cl] = append(out[cl], id)
		}
	}
	return out, nil
}

// ObservedSnapshot is the scheduler's view of a cluster as the engine
// last observed it, as of now: reconcile.Snapshot, what the engine
// decides from.
func ObservedSnapshot(cfg *berth.Config, cluster string, obs *reconcile.Observed, now time.Time) *berth.Snapshot {
	snap := reconcile.Snapshot(cfg, cluster, obs, now)
	return &snap
}
