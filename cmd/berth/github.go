package main

// The GitHub integration's flags and wiring: `berth serve --github` (a
// webhook endpoint or polling, pull-request plans, and the sync reporter
// of merged pull requests) and `berth plan --github-pr N` (CI mode: plan
// one pull request and post the same statuses and comment). The work is
// in status/gh and sources/webhook.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/redact"
	"github.com/berth-gpu/berth/sources"
	"github.com/berth-gpu/berth/sources/webhook"
	"github.com/berth-gpu/berth/status"
	"github.com/berth-gpu/berth/status/gh"
)

// githubOptions are the flags that reach GitHub (or Gitea).
type githubOptions struct {
	enabled bool
	// transport, when set, carries the API's requests (serve's counts them).
	transport      http.RoundTripper
	repo           string
	apiURL         string
	forge          string
	tokenEnv       string
	appID          int64
	installationID int64
	appKeyFile     string
	secretEnv      string
	poll           time.Duration
	gitURL         string
	botLogin       string
	webhookMaxBody int64
}

// registerServe adds serve's --github flags.
func (g *githubOptions) registerServe(f *pflag.FlagSet) {
	f.BoolVar(&g.enabled, "github", false, "plan pull requests and write statuses and comments to GitHub (or Gitea)")
	f.StringVar(&g.repo, "github-repo", "", "the repository on GitHub, owner/name")
	f.StringVar(&g.apiURL, "github-api-url", "", "REST API base URL (default https://api.github.com/; Gitea: http://HOST/api/v1/)")
	f.StringVar(&g.forge, "github-forge", "github", "github or gitea")
	f.StringVar(&g.tokenEnv, "github-token-env", "GITHUB_TOKEN", "environment variable holding a personal access token")
	f.Int64Var(&g.appID, "github-app-id", 0, "authenticate as this GitHub App (with --github-installation-id and --github-app-key)")
	f.Int64Var(&g.installationID, "github-installation-id", 0, "the GitHub App's installation on the repository")
	f.StringVar(&g.appKeyFile, "github-app-key", "", "the GitHub App's private key (PEM file)")
	f.StringVar(&g.secretEnv, "github-webhook-secret-env", "BERTH_WEBHOOK_SECRET", "environment variable holding the webhook secret; unset: poll instead of serving POST /webhook")
	f.DurationVar(&g.poll, "github-poll", time.Minute, "how often to poll open pull requests when no webhook secret is set")
	f.StringVar(&g.gitURL, "github-git-url", "", "where to fetch pull requests' refs from (default: --repo)")
	f.StringVar(&g.botLogin, "github-bot-login", "", "the login berth comments as (default: asked from the API; needed for a GitHub App: APP[bot])")
	f.Int64Var(&g.webhookMaxBody, "github-webhook-max-body", webhook.DefaultMaxBody, "largest webhook body accepted, in bytes (larger: 413 without reading it)")
}

// client makes the API client. Credentials come from the environment
// (the token) or a file (the App's key), never from a flag's value.
func (g *githubOptions) client(log *slog.Logger, outbox string) (*gh.Client, error) {
	if g.repo == "" {
		return nil, usageError{errors.New("--github needs the repository: --github-repo owner/name (in CI: --repo, or $GITHUB_REPOSITORY)")}
	}
	opts := gh.Options{Repo: g.repo, BaseURL: g.apiURL, Forge: gh.Forge(g.forge), BotLogin: g.botLogin, Logger: log, OutboxFile: outbox}
	if g.transport != nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: g.transport}
	}
	switch {
	case g.appID != 0:
		key, err := os.ReadFile(g.appKeyFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--github-app-key: %w", err)}
		}
		opts.App = &gh.AppAuth{AppID: g.appID, InstallationID: g.installationID, PrivateKey: key}
	default:
		opts.Token = os.Getenv(g.tokenEnv)
		if opts.Token == "" {
			return nil, usageError{fmt.Errorf("no GitHub token: set $%s (or use a GitHub App with --github-app-id)", g.tokenEnv)}
		}
	}
	c, err := gh.New(opts)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// gitSource opens the clone pull requests' refs are fetched into, with the
// API's credentials.
func gitSource(url, cacheDir string, c *gh.Client, log *slog.Logger) (*sources.Git, error) {
	auth := sources.GitAuth{}
	if strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://") {
		auth.TokenFunc = c.Token
	}
	return sources.NewGit(sources.GitOptions{URL: url, CacheDir: cacheDir, Auth: auth, Logger: log})
}

// githubServe is serve's GitHub integration. A nil *githubServe (no
// --github) does nothing.
type githubServe struct {
	opts    githubOptions
	log     *slog.Logger
	client  *gh.Client
	planner *gh.Planner
	sync    *gh.SyncReporter
	recv    *webhook.Receiver
	seen    *webhook.Store
	engine  *reconcile.Engine
	served  []string
	trigger func()
}

// newGitHubServe sets the integration up from serve's options; nil when
// --github is off.
func newGitHubServe(o serveOptions, log *slog.Logger) (*githubServe, error) {
	g := o.github
	if !g.enabled {
		return nil, nil
	}
	log = log.With("component", "github")
	c, err := g.client(log, filepath.Join(o.stateDir, "github-outbox.json"))
	if err != nil {
		return nil, err
	}
	url := g.gitURL
	if url == "" {
		url = o.repo
	}
	git, err := gitSource(url, filepath.Join(o.stateDir, "git-pulls"), c, log)
	if err != nil {
		return nil, err
	}
	s := &githubServe{opts: g, log: log, client: c}
	s.sync = gh.NewSyncReporter(gh.SyncOptions{API: c, Logger: log,
		Redact: func() *redact.Scrubber { return s.engine.Scrubber() }, // set by attach before the engine runs
		Workloads: func(ctx context.Context, pr gh.PR) (map[string][]berth.WorkloadID, error) {
			return s.planner.MergedWorkloads(ctx, pr)
		}})
	s.planner = gh.NewPlanner(gh.PlannerOptions{API: c, Git: git, Loader: newLoader(log, loadPullRequests, serveCacheDir(o.stateDir)), Observe: s.observe,
		Sync: s.sync, Logger: log})
	if secret := os.Getenv(g.secretEnv); secret != "" {
		// Deliveries and the work they asked for, kept across restarts so
		// that a replay plans nothing twice.
		s.seen, err = webhook.OpenStore(filepath.Join(o.stateDir, "webhook-deliveries.db"), webhook.StoreOptions{})
		if err != nil {
			return nil, err
		}
		s.recv, err = webhook.New(webhook.Options{Secret: []byte(secret), Repo: g.repo, Branch: o.branch, Logger: log,
			Handler: gh.Handler{Planner: s.planner, OnPush: s.push, Logger: log}, MaxBody: g.webhookMaxBody, Seen: s.seen,
			Workers: plannerWorkers})
		if err != nil {
			s.seen.Close()
			return nil, err
		}
	}
	return s, nil
}

// close closes the deliveries' store.
func (s *githubServe) close() {
	if s != nil && s.seen != nil {
		s.seen.Close()
	}
}

// reporter adds the sync reporter to serve's own.
func (s *githubServe) reporter(base reconcile.Reporter) reconcile.Reporter {
	if s == nil {
		return base
	}
	return reporters{base, s.sync}
}

// attach gives the integration the engine whose observed state pull
// requests are planned against, and the clusters it runs.
func (s *githubServe) attach(e *reconcile.Engine, clusters []string) {
	if s != nil {
		s.engine, s.served = e, clusters
	}
}

// webhook is POST /webhook's handler, nil when webhooks are not served.
func (s *githubServe) webhook() http.Handler {
	if s == nil || s.recv == nil {
		return nil
	}
	return s.recv
}

// start runs the webhook workers (or the poller), the sync reporter and
// the outbox; trigger makes the engine look at the branch now.
func (s *githubServe) start(ctx context.Context, trigger func()) {
	if s == nil {
		return
	}
	s.trigger = trigger
	go s.sync.Run(ctx)
	if s.recv != nil {
		go s.recv.Run(ctx)
		go func() { // the outbox, while webhooks do the rest
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := s.client.Flush(ctx); err != nil {
						s.log.Warn("outbox: some writes still fail", "err", err)
					}
				}
			}
		}()
		s.log.Info("github: serving POST /webhook", "repo", s.opts.repo)
		return
	}
	p := &gh.Poller{Client: s.client, Planner: s.planner, Interval: s.opts.poll, Logger: s.log}
	go p.Run(ctx)
	s.log.Info("github: no webhook secret; polling pull requests", "repo", s.opts.repo, "every", s.opts.poll.String(), "secret-env", s.opts.secretEnv)
}

func (s *githubServe) push() {
	if s.trigger != nil {
		s.trigger()
	}
}

// observe is each served cluster's state as the engine last observed it,
// as of now; nil for one not observed yet.
func (s *githubServe) observe(ctx context.Context) (map[string]*berth.Snapshot, error) {
	if s.engine == nil {
		return nil, errors.New("the engine has not started")
	}
	cfg, _, _ := s.engine.LastConfig()
	last := s.engine.Last()
	now := time.Now().UTC()
	out := map[string]*berth.Snapshot{}
	for _, name := range s.served {
		cr, ok := last[name]
		if !ok || cr.Observed == nil {
			out[name] = nil
			continue
		}
		out[name] = gh.ObservedSnapshot(cfg, name, cr.Observed, now)
	}
	return out, nil
}

// reporters reports to each in turn.
type reporters []reconcile.Reporter

func (rs reporters) Report(ctx context.Context, r reconcile.Report) error {
	var errs []error
	for _, x := range rs {
		if err := x.Report(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// planGitHubOptions are `berth plan --github-pr`'s flags.
type planGitHubOptions struct {
	pr       int
	github   githubOptions
	cacheDir string
}

func (p *planGitHubOptions) register(f *pflag.FlagSet) {
	f.IntVar(&p.pr, "github-pr", 0, "plan pull request N and post its statuses and comment (CI mode; token from $GITHUB_TOKEN)")
	f.StringVar(&p.github.repo, "repo", "", "with --github-pr: the repository, owner/name (default $GITHUB_REPOSITORY)")
	f.StringVar(&p.github.apiURL, "github-api-url", "", "with --github-pr: REST API base URL (default $GITHUB_API_URL, else https://api.github.com/)")
	f.StringVar(&p.github.forge, "github-forge", "github", "with --github-pr: github or gitea")
	f.StringVar(&p.github.tokenEnv, "github-token-env", "GITHUB_TOKEN", "with --github-pr: environment variable holding the token")
	f.StringVar(&p.github.gitURL, "git-url", "", "with --github-pr: where to fetch the pull request from (default: the repository's clone URL)")
	f.StringVar(&p.cacheDir, "cache-dir", "", "with --github-pr: where to keep the Git clone (default: the user cache directory)")
}

// runGitHubPlan is `berth plan --github-pr N`: the pull request is fetched
// from the forge, planned against the snapshots, and its statuses and
// comments posted. Exit status: 0 when nothing failed (pending included),
// 1 when a status says the commit is wrong, 2 when berth failed.
func runGitHubPlan(ctx context.Context, w io.Writer, p planGitHubOptions, snapshots []string, sched schedule.Options) error {
	g := p.github
	if g.repo == "" {
		g.repo = os.Getenv("GITHUB_REPOSITORY")
	}
	if g.apiURL == "" {
		if u := os.Getenv("GITHUB_API_URL"); u != "" {
			g.apiURL = strings.TrimRight(u, "/") + "/"
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := g.client(log, "")
	if err != nil {
		return err
	}
	snaps := map[string]*berth.Snapshot{}
	l := commandLoader()
	for _, file := range snapshots {
		s, err := readSnapshot(l, file)
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		if err != nil {
			return invalidError{err}
		}
		snaps[s.Cluster] = s
	}
	pr, err := c.PullRequest(ctx, p.pr)
	if err != nil {
		return err
	}
	url := g.gitURL
	if url == "" {
		url = pr.CloneURL
	}
	cache := p.cacheDir
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		cache = filepath.Join(dir, "berth", "git")
	}
	git, err := gitSource(url, cache, c, log)
	if err != nil {
		return err
	}
	defer git.Close()
	planner := gh.NewPlanner(gh.PlannerOptions{API: c, Git: git, Loader: newLoader(log, loadOnce, userCacheDir()), Schedule: sched, Logger: log,
		Observe: func(context.Context) (map[string]*berth.Snapshot, error) { return snaps, nil }})
	res, err := planner.Plan(ctx, p.pr)
	if res != nil {
		writePlanResult(w, res)
	}
	if err != nil {
		return err
	}
	for _, st := range res.Statuses {
		if st.State == status.StateError {
			return reportedError{exitError}
		}
	}
	for _, st := range res.Statuses {
		if st.State == status.StateFailure {
			return reportedError{exitInvalid}
		}
	}
	return nil
}

func writePlanResult(w io.Writer, res *gh.Result) {
	pr := res.PR
	fmt.Fprintf(w, "pull request #%d of %s: head %s, base %s\n", pr.Number, pr.Repo, shortHash(pr.HeadSHA), shortHash(pr.BaseSHA))
	if res.Skipped != "" {
		fmt.Fprintf(w, "  not planned: %s\n", res.Skipped)
		return
	}
	sts := append([]status.CommitStatus(nil), res.Statuses...)
	slices.SortStableFunc(sts, func(a, b status.CommitStatus) int {
		return cmp.Compare(a.Context, b.Context)
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, st := range sts {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.Context, st.State, st.Description)
	}
	for _, c := range res.Comments {
		fmt.Fprintf(tw, "  comment: %s\t%d %s\t\n", c.Cluster, len(c.Parts), plural(len(c.Parts), "part", "parts"))
	}
	tw.Flush()
}

func shortHash(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// plannerWorkers is how many pull requests serve plans at once; the
// evaluation Pool (two children and a retry lane) bounds the work. No
// planner waits for a retry with the full CPU budget (loadPullRequests);
// more planners than first-try slots keep the slots busy while others
// fetch and post.
const plannerWorkers = 8
