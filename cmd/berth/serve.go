package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/reconcile/local"
	"github.com/berth-gpu/berth/redact"
	"github.com/berth-gpu/berth/sources"
	"github.com/berth-gpu/berth/status"
	"github.com/berth-gpu/berth/status/dash"
)

type serveOptions struct {
	repo     string
	branch   string
	clusters []string
	gpus     string
	stateDir string
	listen   string
	// webhookListen is where POST /webhook is served (with --github and a
	// webhook secret), apart from the status API.
	webhookListen string
	apiTokenFile  string
	insecureAPI   bool
	poll          time.Duration
	resync        time.Duration
	tokenEnv      string
	sshKey        string
	knownHost     string
	logFormat     string
	once          bool
	// notebookCommand is --notebook-command: the Jupyter server of
	// notebooks without a command (default: found on first use).
	notebookCommand string
	// notebookIdleCheck is how often notebooks with an idle limit are
	// asked for their last activity.
	notebookIdleCheck time.Duration
	// historyRetention is how long the history keeps events and hourly
	// GPU readings (history.go).
	historyRetention time.Duration
	historyBillEvery time.Duration
	github           githubOptions // --github: see github.go
	// githubLogin is the dashboard's GitHub login (ghlogin.go).
	githubLogin githubLoginOptions
	// kube: clusters of backend kubernetes (snapshot.go).
	kube kubeFlags
}

func newServeCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve --repo URL|PATH",
		Short: "Run the reconciler: watch a repository and apply every new revision",
		Long: `serve watches a repository and, on every new revision and every resync,
validates it, decides what runs where, and applies the decisions to the
clusters it runs (by default, every cluster of backend local: this machine).

--repo is a remote Git URL (https or ssh; polled every --poll), a local Git
repository (its branch is watched, so a commit is seen at once), or a plain
directory (watched: every save is a new revision).

A revision that does not validate changes nothing that runs: the last valid
one goes on being reconciled, and the error is logged and reported.
Workloads run on in their own processes when serve stops; a restarted serve
adopts them.

serve listens on --listen (loopback by default) for /healthz, /readyz,
/metrics (Prometheus), /api/status (what 'berth status' and 'berth
explain' read) and the dashboard (/, /queues, /workloads/TEAM/NAME). On
another address the status API, the dashboard and /metrics require the
token of --api-token-file (clients send it as a bearer token), or
--insecure-api; people may sign in to the dashboard with GitHub
(--github-login-*). With --github and a webhook secret, POST /webhook is
served on --webhook-listen, apart from the status API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.repo == "" {
				return usageError{errors.New("serve needs --repo URL|PATH")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "repository: a Git URL, a local Git repository, or a directory")
	f.StringVar(&o.branch, "branch", "main", "branch to track")
	f.StringArrayVar(&o.clusters, "cluster", nil, "a cluster of the repository to run (repeat; default: every cluster of backend local)")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(repoFlag))
	f.StringVar(&o.gpus, "gpus", "", `simulated GPUs when NVML finds none, e.g. "8xH100" or "7xH100,1xH100:1g.10gb" (default: the cluster's simulatedGPUs)`)
	f.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "where the run ledger, logs and Git cache live")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7420", "address for health, metrics and the status API (not loopback: needs --api-token-file or --insecure-api)")
	f.StringVar(&o.webhookListen, "webhook-listen", "127.0.0.1:7421", "address for POST /webhook (with --github and a webhook secret)")
	f.StringVar(&o.apiTokenFile, "api-token-file", "", "file holding a token the status API and /metrics require (Authorization: Bearer TOKEN)")
	f.BoolVar(&o.insecureAPI, "insecure-api", false, "serve the status API and /metrics on a non-loopback --listen without a token")
	f.DurationVar(&o.poll, "poll", time.Minute, "how often to fetch a remote repository (watched repositories are also polled at this interval)")
	f.DurationVar(&o.resync, "resync", 2*time.Second, "how often to reconcile when nothing changed in Git (runs end, ticks come due)")
	f.StringVar(&o.tokenEnv, "token-env", "BERTH_GIT_TOKEN", "environment variable holding an https token for the repository")
	f.StringVar(&o.sshKey, "ssh-key", "", "private key for an ssh repository")
	f.StringVar(&o.knownHost, "known-hosts", "", "known_hosts file for an ssh repository")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&o.once, "once", false, "reconcile once and exit (for scripts and CI)")
	f.DurationVar(&o.notebookIdleCheck, "notebook-idle-check", 30*time.Second, "how often a local cluster asks its notebooks with an idle limit for their last activity")
	f.StringVar(&o.notebookCommand, "notebook-command", "", `the Jupyter server a notebook without a command runs on a local cluster, e.g. "jupyter-lab" (default: jupyter-lab, jupyter-server, or python3 -m jupyterlab or jupyter_server, whichever is found first)`)
	f.DurationVar(&o.historyBillEvery, "history-bill-every", time.Minute, "how often a run that goes on is billed in the history (a write each time; what it held is billed exactly either way)")
	f.DurationVar(&o.historyRetention, "history-retention", 30*24*time.Hour, "how long the history keeps lifecycle events, decisions and hourly GPU readings (GPU-hours per day: 400 days)")
	evalBounds.register(f)
	o.kube.register(f, true) // kubernetes clusters (snapshot.go)
	o.github.registerServe(f)
	o.githubLogin.register(f)
	return cmd
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "berth")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "berth")
	}
	return ".berth"
}

// newLogger is serve's logger: every record is scrubbed of the env values
// live holds (the configurations in force) before it is written.
func newLogger(format string, w *os.File, live *redact.Live) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(w, nil)
	if format == "json" {
		h = slog.NewJSONHandler(w, nil)
	}
	return slog.New(redact.NewHandler(h, live))
}

// revisionSource adapts a sources source to the engine's Source.
type revisionSource struct {
	latest func(ctx context.Context) (sources.Revision, error)
	log    *slog.Logger
}

func (s revisionSource) Latest(ctx context.Context) (reconcile.Revision, error) {
	r, err := s.latest(ctx)
	if err != nil {
		return reconcile.Revision{}, err
	}
	if r.Rewrite != nil {
		s.log.Warn("branch history was rewritten (force-push); reconciling the new head", "revision", r.String(), "previous", r.Rewrite.Previous)
	}
	commit := r.Hash
	if r.Kind == sources.WorkingDir {
		commit = ""
	}
	return reconcile.Revision{Name: r.String(), Commit: commit, Time: r.Time, Subject: r.Subject, Author: r.Author, FS: r.FS}, nil
}

// localRepoDir is --repo's directory when it is one on this machine (a
// secretsDir inside it is refused), "" for a URL.
func localRepoDir(repo string) string {
	if strings.Contains(repo, "://") || (strings.Contains(repo, "@") && strings.Contains(repo, ":")) {
		return ""
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return ""
	}
	return abs
}

// openSource picks the source for --repo and the watchers that signal it.
func openSource(ctx context.Context, o serveOptions, log *slog.Logger) (reconcile.Source, []<-chan sources.Change, error) {
	repo := o.repo
	isURL := strings.Contains(repo, "://") || (strings.Contains(repo, "@") && strings.Contains(repo, ":"))
	if !isURL {
		abs, err := filepath.Abs(repo)
		if err != nil {
			return nil, nil, usageError{err}
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("--repo %s: %w", repo, err)}
		}
		if !fi.IsDir() {
			return nil, nil, usageError{fmt.Errorf("--repo %s is not a directory", repo)}
		}
		if _, err := os.Stat(filepath.Join(abs, ".git")); err != nil {
			// A plain directory: every save is a revision.
			d, err := sources.NewDir(abs, sources.DirOptions{Logger: log})
			if err != nil {
				return nil, nil, err
			}
			w, err := sources.WatchDir(ctx, abs, sources.WatchOptions{Logger: log})
			if err != nil {
				return nil, nil, err
			}
			return revisionSource{latest: d.Latest, log: log}, []<-chan sources.Change{w.Changes()}, nil
		}
		repo = abs
	}
	auth := sources.GitAuth{SSHKeyFile: o.sshKey, KnownHostsFile: o.knownHost}
	if o.tokenEnv != "" {
		auth.Token = os.Getenv(o.tokenEnv)
	}
	g, err := sources.NewGit(sources.GitOptions{URL: repo, Branch: o.branch, CacheDir: filepath.Join(o.stateDir, "git"), Auth: auth, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var changes []<-chan sources.Change
	if !isURL {
		w, err := sources.WatchGitRefs(ctx, repo, sources.WatchOptions{Logger: log})
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, w.Changes())
	}
	return revisionSource{latest: g.Latest, log: log}, changes, nil
}

// server holds what the HTTP endpoints report.
type server struct {
	engine *reconcile.Engine
	// token, when set, is required of /api/ and /metrics.
	token string
	// stateDir is where local clusters keep their logs (the dashboard's
	// log tails); repoURL the repository's web address, for links.
	stateDir string
	repoURL  string
	// dash keeps the dashboard's data from one reconcile to the next
	// (dashboard.go).
	dash  dashCache
	mu    sync.Mutex
	last  reconcile.Report
	ready bool
	// gen counts the reports recorded.
	gen uint64
	// hist is the history (history.go); sampled when the GPUs were last
	// read into it (by the reconcile loop only).
	hist    *history.Store
	sampled time.Time
	// metrics are serve's own (metrics.go).
	metrics *serveMetrics
	// sessions sign the dashboard's session cookies (session.go); github
	// is the GitHub login, nil without one (ghlogin.go).
	sessions *sessions
	github   *githubLogin
	// devices are the local clusters' GPUs as last read (history.go).
	devices []dash.Device
}

func (s *server) record(r reconcile.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = r
	s.gen++
	if r.Err == nil && len(r.Clusters) > 0 {
		s.ready = true
	}
}

// statusResponse is what /api/status returns (and `berth status -o json`
// prints).
type statusResponse struct {
	Revision string                 `json:"revision"`
	Applied  string                 `json:"applied"`
	Invalid  []cue.Error            `json:"invalid,omitempty"`
	Error    string                 `json:"error,omitempty"`
	Time     time.Time              `json:"time"`
	Clusters []clusterStatus        `json:"clusters"`
	Plans    map[string]*berth.Plan `json:"plans,omitempty"`
	// Usage is the GPU-hours each team used this month (UTC), as 'berth
	// usage' gives them.
	Usage *usageResponse `json:"usage,omitempty"`
}

type clusterStatus struct {
	Name      string                  `json:"name"`
	Error     string                  `json:"error,omitempty"`
	Workloads []status.WorkloadStatus `json:"workloads"`
	Runs      []reconcile.RunState    `json:"runs,omitempty"`
}

func (s *server) status(withPlans bool) statusResponse {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	resp := statusResponse{Revision: last.Revision.Name, Applied: last.Applied.Name, Time: time.Now().UTC()}
	// What the API serves is scrubbed of env values field by field: the
	// report's errors are, but a cue.Errors found under them is the
	// loader's own, and runs' reasons come from the clusters.
	scrub := s.engine.Scrubber()
	var errs cue.Errors
	if errors.As(last.Invalid, &errs) {
		for _, e := range errs {
			e.Message = scrub.String(e.Message)
			resp.Invalid = append(resp.Invalid, e)
		}
	} else if last.Invalid != nil {
		resp.Invalid = []cue.Error{{Message: last.Invalid.Error()}}
	}
	if last.Err != nil {
		resp.Error = last.Err.Error()
	}
	reports := s.engine.Last()
	names := make([]string, 0, len(reports))
	for n := range reports {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		cr := reports[n]
		cs := clusterStatus{Name: n}
		for _, c := range last.Clusters {
			if c.Name == n && c.Err != nil {
				cs.Error = scrub.String(c.Err.Error())
			}
		}
		var runs []reconcile.RunState
		if cr.Observed != nil {
			runs = slices.Clone(cr.Observed.Runs) // the engine's: scrubbed in a copy
		}
		for i := range runs {
			runs[i].Reason = scrub.String(runs[i].Reason)
			runs[i].PodFailed = scrub.String(runs[i].PodFailed)
		}
		cs.Workloads = status.Workloads(n, cr.Plan, runs)
		if withPlans {
			cs.Runs = runs
			if resp.Plans == nil {
				resp.Plans = map[string]*berth.Plan{}
			}
			resp.Plans[n] = cr.Plan
		}
		resp.Clusters = append(resp.Clusters, cs)
	}
	if s.hist != nil {
		if u, err := s.usage(history.MonthStart(resp.Time), history.Day(resp.Time)); err == nil {
			resp.Usage = &u
		}
	}
	return resp
}

// snapshots are the clusters this serve runs (or the one named) as the
// engine last observed them, as of now: what every plan starts from
// (reconcile.Snapshot), for 'berth snapshot' and 'berth plan --server'.
func (s *server) snapshots(cluster string) ([]berth.Snapshot, error) {
	cfg, _, _ := s.engine.LastConfig()
	reports := s.engine.Last()
	names := make([]string, 0, len(reports))
	for n := range reports {
		if cluster == "" || n == cluster {
			names = append(names, n)
		}
	}
	sortStrings(names)
	if len(names) == 0 {
		if cluster != "" {
			return nil, fmt.Errorf("cluster %s is not one this berth serve runs", cluster)
		}
		return nil, errors.New("no cluster has been observed yet")
	}
	now := time.Now().UTC()
	out := make([]berth.Snapshot, 0, len(names))
	for _, n := range names {
		cr := reports[n]
		if cr.Observed == nil {
			return nil, fmt.Errorf("cluster %s has not been observed yet", n)
		}
		out = append(out, reconcile.Snapshot(cfg, n, cr.Observed, now))
	}
	return out, nil
}

// handler serves the status listener: health for probes, and the status
// API and metrics behind the token when one is set.
func (s *server) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	api := http.NewServeMux()
	mux.Handle("/api/", requireToken(s.token, api))
	s.mountDashboard(mux) // dashboard.go
	s.mountHistory(api)   // history.go
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ready := s.ready
		s.mu.Unlock()
		if !ready {
			http.Error(w, "not ready: no reconcile has succeeded yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", requireToken(s.token, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	api.HandleFunc("GET /api/explain", func(w http.ResponseWriter, r *http.Request) {
		scrub := s.engine.Scrubber()
		id := berth.WorkloadID(r.URL.Query().Get("workload"))
		cfg, _, ok := s.engine.LastConfig()
		if !ok {
			http.Error(w, "no valid revision has been loaded yet", http.StatusServiceUnavailable)
			return
		}
		id, err := resolveWorkload(cfg, string(id))
		if err != nil {
			http.Error(w, scrub.String(err.Error()), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		reports := s.engine.Last()
		names := make([]string, 0, len(reports))
		for n := range reports {
			names = append(names, n)
		}
		sortStrings(names)
		var lastErr error
		for _, n := range names {
			cr := reports[n]
			var runs []reconcile.RunState
			if cr.Observed != nil {
				runs = cr.Observed.Runs
			}
			var buf strings.Builder
			if err := status.Explain(&buf, cfg, cr.Plan, runs, id); err != nil {
				lastErr = err
				continue
			}
			fmt.Fprint(w, scrub.String(buf.String()))
			return
		}
		http.Error(w, scrub.String(lastErr.Error()), http.StatusNotFound)
	})
	api.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		snaps, err := s.snapshots(r.URL.Query().Get("cluster"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(snaps)
	})
	api.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.status(r.URL.Query().Get("plans") == "1"))
	})
	return mux
}

// serveInfo is written to the state directory so that 'berth status',
// 'explain' and 'logs' find the server.
type serveInfo struct {
	Address string `json:"address"`
	// Webhook is where POST /webhook is served ("" when it is not).
	Webhook string `json:"webhook,omitempty"`
	// TokenFile is --api-token-file (the path, never the token), for
	// clients on this machine that can read it.
	TokenFile string   `json:"tokenFile,omitempty"`
	PID       int      `json:"pid"`
	Repo      string   `json:"repo"`
	Started   string   `json:"started"`
	Clusters  []string `json:"clusters"`
}

func runServe(ctx context.Context, o serveOptions, stderr interface{ Write([]byte) (int, error) }) error {
	live := &redact.Live{} // the env values in force: the engine sets them
	log := newLogger(o.logFormat, os.Stderr, live)
	token, err := checkServeOptions(o)
	if err != nil {
		return err
	}
	ghLogin, err := newGitHubLogin(o.githubLogin, log)
	if err != nil {
		return err
	}
	// client-go logs through klog: through berth's logger instead, so
	// every line has the same format.
	klog.SetSlogLogger(log.With("component", "client-go"))
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	src, changes, err := openSource(ctx, o, log)
	if err != nil {
		return err
	}

	// The first revision says which clusters exist.
	loader := newLoader(log, loadTracked, serveCacheDir(o.stateDir))
	cfg, err := loadFirstRevision(ctx, src, loader, log)
	if err != nil {
		return err
	}
	live.Set(redact.FromConfigs(cfg))
	clusters, names, err := openClusters(cfg, o, log)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), evalPackages)
	metrics := reconcile.NewMetrics(reg)
	sm := newServeMetrics(reg)
	o.github.transport = sm.githubTransport(http.DefaultTransport)
	ghs, err := newGitHubServe(o, log) // nil without --github
	if err != nil {
		return err
	}
	defer ghs.close()
	engine := reconcile.New(reconcile.Options{Clusters: clusters, Loader: loader, Logger: log, Reporter: ghs.reporter(&logReporter{log: log}), Redact: live})
	ghs.attach(engine, names)
	// Quota, queue and admitted GPUs per team, read from the last plans
	// at each scrape.
	reg.MustRegister(reconcile.NewPlanCollector(reconcile.PlanCollectorOptions{Last: engine.Last, Ready: readyReplicas(clusters)}))
	hist, err := history.Open(filepath.Join(o.stateDir, historyFile), history.Options{Retention: o.historyRetention, BillEvery: o.historyBillEvery})
	if err != nil {
		return err
	}
	defer hist.Close()
	srv := &server{engine: engine, token: token, stateDir: o.stateDir, hist: hist, metrics: sm, github: ghLogin}
	if o.github.repo != "" {
		srv.repoURL = "https://github.com/" + o.github.repo
	}

	info, stop, err := startListeners(o, srv.handler(reg), ghs.webhook())
	if err != nil {
		return err
	}
	defer stop()
	info.Clusters = names
	writeServeInfo(o.stateDir, info)
	defer os.Remove(filepath.Join(o.stateDir, "serve.json"))
	log.Info("berth serve", "version", berth.Version, "repo", o.repo, "branch", o.branch, "clusters", names, "listen", info.Address,
		"webhook", info.Webhook, "api-token", token != "", "state", o.stateDir)

	notifier := sources.NewNotifier(ctx, sources.NotifierOptions{Interval: o.resync, Changes: changes, Logger: log})
	ghs.start(ctx, notifier.Trigger)
	loop := &serveLoop{o: o, src: src, engine: engine, metrics: metrics, srv: srv, clusters: clusters, log: log}
	return loop.run(ctx, notifier.C())
}

// checkServeOptions reads the API token and refuses flags that cannot
// work together.
func checkServeOptions(o serveOptions) (token string, err error) {
	token, err = apiToken(o)
	if err != nil {
		return "", err
	}
	if o.webhookListen == o.listen && !strings.HasSuffix(o.listen, ":0") {
		return "", usageError{fmt.Errorf("--webhook-listen %s is --listen's address: serve webhooks apart from the status API", o.webhookListen)}
	}
	return token, nil
}

// loadFirstRevision fetches and loads the tracked branch's newest
// revision; an invalid one stops serve with every error logged.
func loadFirstRevision(ctx context.Context, src reconcile.Source, loader *loggingLoader, log *slog.Logger) (*berth.Config, error) {
	rev, err := src.Latest(ctx)
	if err != nil {
		return nil, fmt.Errorf("first revision: %w", err)
	}
	cfg, err := loader.Load(rev.FS)
	if err != nil {
		var errs cue.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				log.Error("invalid configuration", "revision", rev.Name, "error", e.Error())
			}
			return nil, invalidError{fmt.Errorf("revision %s is invalid (%d errors): fix it and start serve again", rev.Name, len(errs))}
		}
		return nil, err
	}
	return cfg, nil
}

// startListeners serves the status API on --listen and, when GitHub
// webhooks are on, hook on --webhook-listen. stop closes both.
func startListeners(o serveOptions, api, hook http.Handler) (info serveInfo, stop func(), err error) {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return info, nil, fmt.Errorf("listen %s: %w", o.listen, err)
	}
	httpSrv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go httpSrv.Serve(ln)
	info = serveInfo{Address: "http://" + ln.Addr().String(), PID: os.Getpid(), Repo: o.repo, Started: time.Now().UTC().Format(time.RFC3339)}
	if o.apiTokenFile != "" {
		info.TokenFile, _ = filepath.Abs(o.apiTokenFile)
	}
	if hook == nil {
		return info, func() { httpSrv.Close() }, nil
	}
	hookSrv, url, err := startWebhookServer(o.webhookListen, hook)
	if err != nil {
		httpSrv.Close()
		return info, nil, err
	}
	info.Webhook = url
	return info, func() { hookSrv.Close(); httpSrv.Close() }, nil
}

// startWebhookServer serves POST /webhook on its own listener: the world
// may reach it; the status API need not be reachable from where GitHub
// sends.
func startWebhookServer(addr string, hook http.Handler) (*http.Server, string, error) {
	hln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/webhook", hook)
	// A slow sender holds one of the receiver's few body slots: it gets
	// 30 s for its whole request.
	hookSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	go hookSrv.Serve(hln)
	return hookSrv, "http://" + hln.Addr().String() + "/webhook", nil
}

// writeServeInfo writes serve.json, where 'berth status', 'explain' and
// 'logs' find this server.
func writeServeInfo(stateDir string, info serveInfo) {
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		writeFileAtomic(filepath.Join(stateDir, "serve.json"), b)
	}
}

// serveLoop reconciles on every signal until ctx ends (or after one
// reconcile with --once).
type serveLoop struct {
	o        serveOptions
	src      reconcile.Source
	engine   *reconcile.Engine
	metrics  *reconcile.Metrics
	srv      *server
	clusters []reconcile.Cluster
	log      *slog.Logger

	lastFetch time.Time
	lastRev   reconcile.Revision
}

func (l *serveLoop) run(ctx context.Context, signals <-chan sources.Signal) error {
	for {
		select {
		case <-ctx.Done():
			l.log.Info("stopping; workloads keep running and the next serve adopts them")
			return nil
		case sig, ok := <-signals:
			if !ok {
				return nil
			}
			start := time.Now()
			rev, ok := l.revision(ctx, sig)
			if !ok {
				continue
			}
			rep := l.engine.ReconcileRevision(ctx, rev)
			l.metrics.Observe(rep, time.Since(start))
			l.srv.record(rep)
			l.srv.recordHistory(ctx, rep, l.clusters, time.Now(), l.log)
			if l.o.once {
				return reportExit(rep)
			}
		}
	}
}

// revision picks the revision a signal reconciles. A remote is fetched
// every --poll, or at once on a trigger; in between, resyncs reconcile
// the revision already fetched. A failed fetch falls back to that one;
// ok is false when there is none yet.
func (l *serveLoop) revision(ctx context.Context, sig sources.Signal) (rev reconcile.Revision, ok bool) {
	if sig.Reason&(sources.ReasonPoll) != 0 && sig.Reason&^sources.ReasonPoll == 0 &&
		l.lastRev.FS != nil && time.Since(l.lastFetch) < l.o.poll {
		return l.lastRev, true
	}
	r, err := l.src.Latest(ctx)
	l.lastFetch = time.Now()
	if err != nil {
		l.log.Warn("fetch failed; retrying at the next poll", "err", err)
		if l.lastRev.FS == nil {
			return reconcile.Revision{}, false
		}
		r = l.lastRev
	}
	l.lastRev = r
	return r, true
}

// reportExit is --once's exit: invalid input or a failed cluster is an
// error.
func reportExit(r reconcile.Report) error {
	if r.Invalid != nil {
		return invalidError{r.Invalid}
	}
	for _, c := range r.Clusters {
		if c.Err != nil {
			return c.Err
		}
	}
	return r.Err
}

func openClusters(cfg *berth.Config, o serveOptions, log *slog.Logger) ([]reconcile.Cluster, []string, error) {
	names := o.clusters
	if len(names) == 0 {
		for _, n := range cfg.ClusterNames() {
			if cfg.Clusters[n].Backend == berth.BackendLocal {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, nil, usageError{fmt.Errorf("the repository has no cluster of backend local; name clusters with --cluster (it has %v)", cfg.ClusterNames())}
		}
	}
	var out []reconcile.Cluster
	for _, n := range names {
		c, ok := cfg.Clusters[n]
		if !ok {
			return nil, nil, usageError{fmt.Errorf("--cluster %s: the repository defines %v", n, cfg.ClusterNames())}
		}
		switch c.Backend {
		case berth.BackendLocal:
			gpus := o.gpus
			if gpus == "" {
				gpus = c.SimulatedGPUs
			}
			if gpus != "" {
				if _, err := berth.ParseGPUInventory(gpus); err != nil {
					return nil, nil, usageError{fmt.Errorf("--gpus: %w", err)}
				}
			}
			lo := local.Options{Name: n, StateDir: filepath.Join(o.stateDir, "clusters", n), VolumeRoot: c.VolumeRoot, SimulatedGPUs: gpus,
				NVMLCommand: nvmlHelper(), RepoDir: localRepoDir(o.repo), Logger: log, FindNotebookCommand: findJupyter, IdleCheckEvery: o.notebookIdleCheck}
			if o.notebookCommand != "" {
				cmd, err := notebookCommand(o.notebookCommand)
				if err != nil {
					return nil, nil, err
				}
				lo.NotebookCommand = cmd
			}
			lc, err := local.New(lo)
			var damaged *local.DamagedError
			if errors.As(err, &damaged) {
				return nil, nil, damagedLedgerError(damaged, o.stateDir, n)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("cluster %s: %w", n, err)
			}
			out = append(out, lc)
		case berth.BackendKubernetes:
			// reconcile/kube: a kubeconfig context (or in-cluster config),
			// leader election when --leader-election-namespace is set.
			kc, err := o.kube.open(n, c, o.repo, log.With("cluster", n), true)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, kc)
		default:
			return nil, nil, usageError{fmt.Errorf("cluster %s: backend %s is not supported by this serve yet", n, c.Backend)}
		}
	}
	return out, names, nil
}

// logReporter logs each reconcile that did or found something.
type logReporter struct {
	log *slog.Logger
	// What was said last, so a state that lasts (an invalid tracked
	// branch, a standby replica) is logged when it starts or changes, not
	// at every resync.
	mu   sync.Mutex
	last map[string]string
}

// changed reports whether key now says msg when it said something else
// before (or nothing); "" clears it.
func (l *logReporter) changed(key, msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]string{}
	}
	if l.last[key] == msg {
		return false
	}
	if msg == "" {
		delete(l.last, key)
	} else {
		l.last[key] = msg
	}
	return msg != ""
}

func (l *logReporter) Report(ctx context.Context, r reconcile.Report) error {
	if r.Invalid != nil {
		var errs cue.Errors
		n := 1
		first := r.Invalid.Error()
		if errors.As(r.Invalid, &errs) && len(errs) > 0 {
			n, first = len(errs), errs[0].Error()
		}
		if l.changed("invalid", r.Revision.Name+"\x00"+first) {
			l.log.Warn("revision is invalid; nothing from it is applied (said once until it changes)", "revision", r.Revision.Name, "errors", n, "first", first, "applied", r.Applied.Name)
		}
	} else {
		l.changed("invalid", "")
	}
	if r.Err != nil {
		l.log.Warn("reconcile failed", "err", r.Err)
	}
	for _, c := range r.Clusters {
		if c.Err != nil {
			if l.changed("cluster "+c.Name, c.Err.Error()) {
				l.log.Warn("cluster failed (said once until it changes)", "cluster", c.Name, "err", c.Err)
			}
			continue
		}
		l.changed("cluster "+c.Name, "")
		for _, res := range c.Results {
			if res.Outcome == reconcile.OutcomeUnchanged {
				continue
			}
			attrs := []any{"cluster", c.Name, "op", res.Change.Op, "workload", res.Change.Workload.ID(), "run", res.Change.RunID, "outcome", res.Outcome}
			if res.Change.Reason != "" {
				attrs = append(attrs, "reason", res.Change.Reason)
			}
			if res.Err != nil {
				l.log.Warn("change failed", append(attrs, "err", res.Err)...)
				continue
			}
			l.log.Info("change", attrs...)
		}
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func sortStrings(s []string) { slices.Sort(s) }

// resolveWorkload accepts "team/name", or a name unique across teams.
func resolveWorkload(cfg *berth.Config, arg string) (berth.WorkloadID, error) {
	if strings.Contains(arg, "/") {
		return berth.WorkloadID(arg), nil
	}
	var found []berth.WorkloadID
	for _, id := range cfg.WorkloadIDs() {
		if id.Name() == arg {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no workload is named %q; name it as team/name", arg)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d workloads are named %q (%v); name it as team/name", len(found), arg, found)
}
