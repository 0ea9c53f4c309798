package gh_test

// End to end against a real forge: Gitea, started by fixtures/testenv. A
// real git push of a branch, a real pull request opened through Gitea's
// API, Gitea's own signed webhooks delivered to berth's receiver, and
// berth's statuses and comment read back through the API. Under CI=true a
// missing Gitea fails these tests; elsewhere they skip.

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/sources"
	"github.com/berth-gpu/berth/sources/webhook"
	"github.com/berth-gpu/berth/status/gh"
)

// forge is a Gitea with one repository and berth wired to it.
type forge struct {
	g       *testenv.GiteaEnv
	repo    *testenv.Repo
	work    string // a clone to commit and push from
	client  *gh.Client
	planner *gh.Planner
	recv    *webhook.Receiver
	hookURL string
	// wait bounds each wait for a plan (default 2 minutes).
	wait time.Duration
	// done receives each pull request event berth finished, with how long
	// it took from the webhook's arrival.
	done chan handled
}

type handled struct {
	ev      webhook.Event
	arrived time.Time
	took    time.Duration
	err     error
	stages  []gh.Stage
}

// timing wraps the handler to time each event from the arrival of the
// first webhook delivery it handles.
type timing struct {
	p       *gh.Planner
	mu      sync.Mutex
	arrived []time.Time // pull-request deliveries not handled yet
	done    chan handled
}

func (t *timing) PullRequest(ctx context.Context, ev webhook.Event) error {
	t.mu.Lock()
	at := time.Now()
	if len(t.arrived) > 0 {
		at = t.arrived[0]
	}
	t.arrived = nil
	t.mu.Unlock()
	var res *gh.Result
	var err error
	switch {
	case ev.Plan || ev.Closed:
		res, err = t.p.Plan(ctx, ev.Number)
	case ev.Review:
		res, err = t.p.Review(ctx, ev.Number)
	}
	h := handled{ev: ev, arrived: at, took: time.Since(at), err: err}
	if res != nil {
		h.stages = res.Stages
	}
	t.done <- h
	return err
}

func (t *timing) Push(webhook.Push) {}

// stamp records when a pull_request delivery arrived, before the
// receiver reads it.
func (t *timing) stamp(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only pull_request: berth's own comment edits come back as
		// issue_comment deliveries, which it ignores.
		if r.Header.Get("X-GitHub-Event") == "pull_request" {
			t.mu.Lock()
			t.arrived = append(t.arrived, time.Now())
			t.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=zoe", "GIT_AUTHOR_EMAIL=zoe@example.com",
		"GIT_COMMITTER_NAME=zoe", "GIT_COMMITTER_EMAIL=zoe@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeTree(t testing.TB, dir string, fsys fs.FS) {
	t.Helper()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newForge starts Gitea, pushes tree to main of a new repository, and
// wires berth to it: API client, Git source, planner and webhook. The
// planner loads with loader (nil: a loader in this process, with no cache
// on disk).
func newForge(t testing.TB, tree fs.FS, snaps map[string]*berth.Snapshot, loader reconcile.Loader) *forge {
	t.Helper()
	g, err := testenv.StartGitea(testenv.GiteaOptions{})
	testenv.SkipOrFail(t, err)
	t.Cleanup(func() { g.Stop() })
	ctx := context.Background()
	repo, err := g.CreateRepo(ctx, "gpu-platform", false)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	writeTree(t, work, tree)
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "platform")
	git(t, work, "remote", "add", "origin", g.AuthCloneURL(repo))
	git(t, work, "push", "-q", "origin", "main")

	c, err := gh.New(gh.Options{Repo: repo.FullName, BaseURL: g.APIURL(), Forge: gh.Gitea, Token: g.Token,
		Retry: gh.RetryOptions{Backoff: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := sources.NewGit(sources.GitOptions{URL: repo.CloneURL, CacheDir: t.TempDir(),
		Auth: sources.GitAuth{Username: g.User, Token: g.Token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if loader == nil {
		loader = cue.NewLoader(cue.Options{})
	}
	p := gh.NewPlanner(gh.PlannerOptions{API: c, Git: src, Loader: loader,
		Observe: func(context.Context) (map[string]*berth.Snapshot, error) { return snaps, nil }})
	f := &forge{g: g, repo: repo, work: work, client: c, planner: p, done: make(chan handled, 100)}
	tm := &timing{p: p, done: f.done}
	f.recv, err = webhook.New(webhook.Options{Secret: []byte("gitea-hook-secret"), Repo: repo.FullName, Handler: tm})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { f.recv.Run(rctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	srv := httptest.NewServer(tm.stamp(f.recv))
	t.Cleanup(srv.Close)
	f.hookURL = srv.URL + "/webhook"
	err = g.Do(ctx, http.MethodPost, "repos/"+repo.FullName+"/hooks", map[string]any{
		"type":   "gitea",
		"active": true,
		"events": []string{"pull_request", "pull_request_sync", "pull_request_review_approved", "pull_request_review_rejected", "issue_comment", "push"},
		"config": map[string]string{"url": f.hookURL, "content_type": "json", "secret": "gitea-hook-secret"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// branch commits files to a branch (new or existing) and pushes it.
func (f *forge) branch(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	if out := git(t, f.work, "branch", "--list", name); out == "" {
		git(t, f.work, "checkout", "-q", "-b", name, "main")
	} else {
		git(t, f.work, "checkout", "-q", name)
	}
	for p, s := range files {
		target := filepath.Join(f.work, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(target), 0o755)
		if err := os.WriteFile(target, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, f.work, "add", "-A")
	git(t, f.work, "commit", "-q", "-m", "change "+name)
	git(t, f.work, "push", "-q", "origin", name)
	return git(t, f.work, "rev-parse", "HEAD")
}

func (f *forge) openPR(t testing.TB, head string) int {
	t.Helper()
	var pr struct {
		Number int `json:"number"`
	}
	// Gitea registers pushed branches asynchronously: a pull request
	// opened right after a push can find no branch yet.
	var err error
	for range 50 {
		err = f.g.Do(context.Background(), http.MethodPost, "repos/"+f.repo.FullName+"/pulls",
			map[string]string{"head": head, "base": "main", "title": "Add a job"}, &pr)
		if err == nil {
			return pr.Number
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal(err)
	return 0
}

// waitPlanned waits for berth to finish planning pull request n for the
// head sha (through Gitea's webhook).
func (f *forge) waitPlanned(t testing.TB, n int, sha string) handled {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case h := <-f.done:
			if h.err != nil {
				t.Fatalf("plan of #%d failed: %v", h.ev.Number, h.err)
			}
			if h.ev.Number != n {
				continue
			}
			st, err := f.client.CommitStatuses(context.Background(), sha)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := st["berth/plan: box"]; ok {
				return h
			}
		case <-deadline:
			t.Fatalf("berth did not plan #%d at %s", n, sha[:7])
		}
	}
}

// TestGiteaEndToEnd: a branch is pushed, a pull request opened through
// Gitea's API; Gitea's webhook makes berth plan it; the statuses and the
// comment are read back through the API. A second push edits the same
// comment in place.
func TestGiteaEndToEnd(t *testing.T) {
	snap := demoSnapshot(t)
	f := newForge(t, demoWith(t, nil), map[string]*berth.Snapshot{"box": snap}, nil)
	head := f.branch(t, "add-llama", map[string]string{"workloads/vision/llama.cue": llama})
	n := f.openPR(t, "add-llama")
	h := f.waitPlanned(t, n, head)
	t.Logf("webhook to statuses and comment: %v", h.took)

	ctx := context.Background()
	sts, err := f.client.CommitStatuses(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for c, s := range sts {
		got[c] = string(s.State) + ": " + s.Description
	}
	want := map[string]string{
		"berth/validate":  "success: valid: 13 workloads, 3 teams, 1 cluster",
		"berth/policy":    "pending: needs 1 approval: team lead and team vision owner (@ana)",
		"berth/plan: box": "success: everything fits: 1 admitted now (4 GPUs); 1 other decision changed, 1 team newly borrowing",
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%s: got %q, want %q", c, got[c], w)
		}
	}
	bodies, err := f.client.Comments(ctx, n, "box")
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 1 || !strings.HasPrefix(bodies[0], "<!-- berth:plan cluster=box -->\n### berth plan for `box`") {
		t.Fatalf("comment: %q", bodies)
	}
	if strings.Contains(bodies[0], envSecret) {
		t.Fatal("the env secret is in the comment")
	}
	for _, s := range []string{"`vision/llama-ft`", "admitted now on h100", "#### Blast radius", "<redacted>"} {
		if !strings.Contains(bodies[0], s) {
			t.Errorf("the comment lacks %q", s)
		}
	}
	var comments []struct {
		ID int64 `json:"id"`
	}
	if err := f.g.Do(ctx, http.MethodGet, fmt.Sprintf("repos/%s/issues/%d/comments", f.repo.FullName, n), nil, &comments); err != nil {
		t.Fatal(err)
	}
	if len(comments) != 1 {
		t.Fatalf("%d comments", len(comments))
	}
	firstID := comments[0].ID

	// A second push: Gitea says "synchronized"; berth plans the new head
	// and edits the same comment.
	head2 := f.branch(t, "add-llama", map[string]string{"workloads/vision/llama.cue": strings.Replace(llama, `workers: 2`, `workers: 3`, 1)})
	f.waitPlanned(t, n, head2)
	comments = nil
	if err := f.g.Do(ctx, http.MethodGet, fmt.Sprintf("repos/%s/issues/%d/comments", f.repo.FullName, n), nil, &comments); err != nil {
		t.Fatal(err)
	}
	if len(comments) != 1 || comments[0].ID != firstID {
		t.Fatalf("want the one comment edited in place, got %+v", comments)
	}
	bodies, _ = f.client.Comments(ctx, n, "box")
	if !strings.Contains(bodies[0], "3 workers") {
		t.Errorf("the comment was not updated for the new head")
	}
	sts, _ = f.client.CommitStatuses(ctx, head2)
	if s := sts["berth/validate"]; s.State != "success" {
		t.Errorf("validate on the new head: %+v", s)
	}

	// "/berth plan" in a comment plans again; nothing changed, so nothing
	// is written (the count of statuses on the head stays).
	before := statusCount(t, f, head2)
	if err := f.g.Do(ctx, http.MethodPost, fmt.Sprintf("repos/%s/issues/%d/comments", f.repo.FullName, n),
		map[string]string{"body": "/berth plan"}, nil); err != nil {
		t.Fatal(err)
	}
	f.waitPlanned(t, n, head2)
	if after := statusCount(t, f, head2); after != before {
		t.Errorf("a plan of an unchanged head posted statuses again: %d -> %d", before, after)
	}
}

func statusCount(t testing.TB, f *forge, sha string) int {
	t.Helper()
	var list []map[string]any
	if err := f.g.Do(context.Background(), http.MethodGet, fmt.Sprintf("repos/%s/commits/%s/statuses?limit=50", f.repo.FullName, sha), nil, &list); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// genSnapshot is a cluster for fixtures/gen's "prod": nodes of every pool
// the generated flavors select, empty.
func genSnapshot() *berth.Snapshot {
	s := build.Snapshot().Cluster("prod").At(build.T0)
	for i := range 64 {
		s.Node(build.Node(fmt.Sprintf("h100-%03d", i)).GPUs(8, "NVIDIA-H100-80GB-HBM3").CPU("192").Memory("2Ti").
			Label("berth.dev/pool", "h100").Label("topology.kubernetes.io/rack", fmt.Sprint(i/16)))
	}
	for i := range 32 {
		s.Node(build.Node(fmt.Sprintf("a100-%03d", i)).GPUs(8, "A100-SXM4-40GB").CPU("128").Memory("1Ti").
			Label("berth.dev/pool", "a100").Label("topology.kubernetes.io/rack", fmt.Sprint(i/16)))
	}
	for i := range 8 {
		n := build.Node(fmt.Sprintf("mig-%03d", i)).GPUs(8, "NVIDIA-H100-80GB-HBM3").CPU("128").Memory("1Ti").Label("berth.dev/pool", "h100-1g")
		for g := range 8 {
			n.MIG(g, "1g.10gb", 7)
		}
		s.Node(n)
	}
	for i := range 32 {
		s.Node(build.Node(fmt.Sprintf("cpu-%03d", i)).CPU("128").Memory("512Gi").Label("berth.dev/pool", "cpu"))
	}
	return s.Obj()
}

// BenchmarkGiteaWebhookToPosted measures, on repositories of 1,000 and of
// 50,000 workloads (fixtures/gen, 20 and 200 teams), the time from a pull
// request webhook's arrival at berth to both statuses and the comment
// posted to Gitea. Each iteration pushes a new commit to the pull
// request's branch (one workload's spec changes); Gitea delivers its
// pull_request webhook. The planner loads as berth serve's does: in child
// processes of berth's binary, with the evaluation cache on disk that
// serve's engine filled when it loaded the tracked branch (a loader of its
// own loads main first). The first plan (the planner's memory empty, the
// packages on disk) is reported apart; the rest find the planner's caches
// warm (every package but the changed one in memory, the base's plan
// kept): run with -benchtime=20x.
//
//	go test ./status/gh -run '^$' -bench GiteaWebhookToPosted -benchtime=20x
//	go test ./status/gh -run '^$' -bench 'GiteaWebhookToPosted/workloads=50000' -benchtime=5x -timeout 30m
func BenchmarkGiteaWebhookToPosted(b *testing.B) {
	for _, size := range []struct{ teams, workloads int }{{20, 1000}, {200, 50000}} {
		b.Run(fmt.Sprintf("workloads=%d", size.workloads), func(b *testing.B) {
			benchWebhookToPosted(b, gen.Options{Teams: size.teams, Workloads: size.workloads, Seed: 1})
		})
	}
}

func benchWebhookToPosted(b *testing.B, opts gen.Options) {
	repo := gen.Generate(opts)
	snap := genSnapshot()
	// serve's loaders: berth's own binary evaluates, under its first-try
	// budget and then the full one; both share the state directory's cache.
	loaderOpts := cue.Options{Child: []string{testenv.BerthBinary(b), "__eval"}, Pool: cue.NewPool(2),
		FirstTimeout: cue.DefaultFirstTimeout, CacheDir: filepath.Join(b.TempDir(), "eval-cache"), CacheVersion: "bench"}
	engine := cue.NewLoader(loaderOpts)
	if _, err := engine.Load(repo.FS()); err != nil {
		b.Fatal(err)
	}
	b.Logf("engine's load of main: %+v", engine.Stats())
	planner := &summingLoader{l: cue.NewLoader(loaderOpts)}
	f := newForge(b, repo.FS(), map[string]*berth.Snapshot{"prod": snap}, planner)
	f.wait = 15 * time.Minute // a cold evaluation of 50,000 workloads on a loaded machine
	target := gen.TeamDir(gen.TeamName(3)) + "/workloads-00.cue"
	orig := string(repo[target])
	i := 0
	// Each push gives the team's first workload a new runId: a spec
	// change the plan, the policy and the comment all see.
	edit := func() map[string]string {
		i++
		return map[string]string{target: orig + fmt.Sprintf("\nworkloads: %q: %q: runId: \"edit-%d\"\n", gen.TeamName(3), firstWorkload(orig), i)}
	}
	head := f.branch(b, "tune", edit())
	n := f.openPR(b, "tune")
	cold := f.waitPlannedCluster(b, n, head, "prod")
	st := planner.take()
	b.Logf("first plan (loads both revisions from the disk cache but the changed package, lists statuses and comments): %v; the planner's loads: %+v", cold.took, st)
	if st.Evaluated > 1 || st.FromDisk < repoPackages(engine)-1 {
		b.Errorf("the planner's first plan evaluated %d packages and took %d of %d from the engine's evaluation cache, want all but the changed one from it", st.Evaluated, st.FromDisk, repoPackages(engine))
	}

	var took []time.Duration
	stages := map[string][]time.Duration{}
	var names []string
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		head = f.branch(b, "tune", edit())
		b.StartTimer()
		h := f.waitPlannedCluster(b, n, head, "prod")
		took = append(took, h.took)
		for _, s := range h.stages {
			if _, ok := stages[s.Name]; !ok {
				names = append(names, s.Name)
			}
			stages[s.Name] = append(stages[s.Name], s.Took)
		}
	}
	b.StopTimer()
	for _, name := range names {
		d := stages[name]
		slices.SortFunc(d, func(a, b time.Duration) int {
			return cmp.Compare(a, b)
		})
		b.Logf("stage %-7s p50 %v", name, d[len(d)/2])
	}
	slices.SortFunc(took, func(a, b time.Duration) int {
		return cmp.Compare(a, b)
	})
	if len(took) > 0 {
		p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
		b.ReportMetric(float64(p(0.5).Milliseconds()), "p50-ms")
		b.ReportMetric(float64(p(0.9).Milliseconds()), "p90-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
		b.Logf("webhook to posted over %d pushes: p50 %v, p90 %v, max %v", len(took), p(0.5), p(0.9), took[len(took)-1])
	}
}

// summingLoader is a loader that adds up what its loads evaluated and
// took from the disk cache, until take.
type summingLoader struct {
	l   *cue.Loader
	mu  sync.Mutex
	sum cue.Stats
}

func (s *summingLoader) Load(fsys fs.FS) (*berth.Config, error) {
	r, err := s.l.LoadResult(fsys)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Evaluated += r.Stats.Evaluated
	s.sum.FromDisk += r.Stats.FromDisk
	s.sum.Instances = r.Stats.Instances
	return r.Config, err
}

// take returns the sums so far and starts again.
func (s *summingLoader) take() cue.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sum
	s.sum = cue.Stats{}
	return st
}

// repoPackages is how many packages l's last load found.
func repoPackages(l *cue.Loader) int { return l.Stats().Instances }

// firstWorkload is the name of the first workload a generated file defines.
func firstWorkload(src string) string {
	_, rest, _ := strings.Cut(src, "workloads: ")
	_, rest, _ = strings.Cut(rest, ": \"")
	name, _, _ := strings.Cut(rest, "\"")
	return name
}

func (f *forge) waitPlannedCluster(t testing.TB, n int, sha, cluster string) handled {
	t.Helper()
	deadline := time.After(cmp.Or(f.wait, 120*time.Second))
	for {
		select {
		case h := <-f.done:
			if h.err != nil {
				t.Fatalf("plan of #%d failed: %v", h.ev.Number, h.err)
			}
			st, err := f.client.CommitStatuses(context.Background(), sha)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := st["berth/plan: "+cluster]; ok && h.ev.Number == n {
				return h
			}
		case <-deadline:
			t.Fatalf("berth did not plan #%d at %s", n, sha[:7])
		}
	}
}
