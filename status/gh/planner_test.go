package gh_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
	goldens "github.com/berth-gpu/berth/fixtures/golden"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/sources"
	"github.com/berth-gpu/berth/sources/webhook"
	"github.com/berth-gpu/berth/status"
	"github.com/berth-gpu/berth/status/gh"
	"github.com/berth-gpu/berth/status/gh/ghfake"
)

var update = flag.Bool("update", false, "rewrite status/gh/testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldens.Check(t, filepath.Join("testdata", name), []byte(got), *update)
}

// The commits of GitHub's example pull request #2 of Codertocat/Hello-World
// (pull_request/00-opened.json): berth's demo repository as the base, and
// a head that adds a training job.
const (
	baseSHA = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
	headSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
)

const envSecret = "sk-live-0123456789abcdef"

const llama = `package vision

// A new fine-tuning run: two workers of two H100s for at most 30 hours.
workloads: vision: "llama-ft": {
	kind:  "training"
	image: "ghcr.io/acme/llama:3.1"
	command: ["python", "train.py"]
	workers: 2
	resources: {gpu: 2, cpu: 8, memory: "64Gi", flavor: "h100"}
	maxDuration: "30h"
	env: {WANDB_API_KEY: "` + envSecret + `", EPOCHS: "3"}
}
`

// revisions is an in-memory Revisions: trees by commit, refs to commits.
type revisions struct {
	trees map[string]fs.FS
	refs  map[string]string
}

func (r *revisions) At(ctx context.Context, hash string) (sources.Revision, error) {
	t, ok := r.trees[hash]
	if !ok {
		return sources.Revision{}, &sources.CommitNotFoundError{Source: "fake", Hash: hash}
	}
	return sources.Revision{Kind: sources.Commit, Hash: hash, FS: t}, nil
}

func (r *revisions) Ref(ctx context.Context, ref string) (sources.Revision, error) {
	h, ok := r.refs[ref]
	if !ok {
		return sources.Revision{}, &sources.BranchNotFoundError{Source: "fake", Branch: ref}
	}
	rev, err := r.At(ctx, h)
	rev.Branch = ref
	return rev, err
}

// demoWith is the demo repository with files added or replaced.
func demoWith(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(fixtures.Demo(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fixtures.Demo(), p)
		m[p] = &fstest.MapFile{Data: b, Mode: 0o444}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range files {
		m[p] = &fstest.MapFile{Data: []byte(s), Mode: 0o444}
	}
	return m
}

func demoSnapshot(t *testing.T) *berth.Snapshot {
	t.Helper()
	data, err := os.ReadFile("../../fixtures/snapshots/demo-box.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := cue.LoadSnapshot("demo-box.json", data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type env struct {
	fake    *ghfake.Server
	client  *gh.Client
	planner *gh.Planner
	recv    *webhook.Receiver
	revs    *revisions
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, cue.NewLoader(cue.Options{}))
}

func newEnvWith(t *testing.T, loader reconcile.Loader) *env {
	t.Helper()
	f := ghfake.New("Codertocat", "Hello-World")
	t.Cleanup(f.Close)
	f.AddPR(ghfake.PR{Number: 2, Author: "Codertocat", HeadSHA: headSHA, HeadRef: "changes", BaseSHA: baseSHA, BaseRef: "master",
		Files: []string{"workloads/vision/llama.cue"}})
	f.AddMember("acme/vision", "carl")
	c, _, _ := newClient(t, f, gh.Options{})
	revs := &revisions{
		trees: map[string]fs.FS{baseSHA: demoWith(t, nil), headSHA: demoWith(t, map[string]string{"workloads/vision/llama.cue": llama})},
		refs:  map[string]string{"refs/pull/2/head": headSHA, "master": baseSHA},
	}
	snap := demoSnapshot(t)
	p := gh.NewPlanner(gh.PlannerOptions{API: c, Git: revs, Loader: loader,
		Observe: func(ctx context.Context) (map[string]*berth.Snapshot, error) {
			return map[string]*berth.Snapshot{"box": snap}, nil
		}})
	r, err := webhook.New(webhook.Options{Secret: []byte("hook-secret"), Repo: "Codertocat/Hello-World", Branch: "master",
		Handler: gh.Handler{Planner: p}, Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{fake: f, client: c, planner: p, recv: r, revs: revs}
}

// deliverFile delivers a stored GitHub payload, signed.
func (e *env) deliverFile(t *testing.T, event, file string) int {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("../../sources/webhook/testdata/github", event, file))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(body)))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", event+"/"+file)
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte("hook-secret"), body))
	w := httptest.NewRecorder()
	e.recv.ServeHTTP(w, req)
	return w.Code
}

// settle collects the fake's requests until want says they are complete,
// and a little longer.
func (e *env) settle(t *testing.T, want func([]ghfake.Request) bool) []ghfake.Request {
	t.Helper()
	var got []ghfake.Request
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(30 * time.Millisecond)
		got = append(got, e.fake.Requests()...)
		if want(got) {
			time.Sleep(60 * time.Millisecond)
			return append(got, e.fake.Requests()...)
		}
	}
	t.Fatalf("timed out; requests so far: %v", got)
	return nil
}

// TestWebhookToStatusesAndComment feeds GitHub's own pull_request
// payload, signed, to the receiver; berth plans the pull request and posts
// exactly these requests: the statuses listed, then posted, the comment
// created, all in GitHub's JSON.
func TestWebhookToStatusesAndComment(t *testing.T) {
	e := newEnv(t)
	if code := e.deliverFile(t, "pull_request", "00-opened.json"); code != http.StatusAccepted {
		t.Fatalf("delivery: %d", code)
	}
	reqs := e.settle(t, func([]ghfake.Request) bool { return len(e.fake.Statuses(headSHA)) == 3 && len(e.fake.Comments(2)) == 1 })

	var lines []string
	var commentBody string
	for _, r := range reqs {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/comments") {
			var b struct{ Body string }
			json.Unmarshal([]byte(r.Body), &b)
			commentBody = b.Body
			lines = append(lines, r.Method+" "+r.Path+" {body: see golden}")
			continue
		}
		lines = append(lines, r.String())
	}
	// Requests of the statuses and the comment run concurrently: compare
	// them sorted; each one's content is exact.
	slices.Sort(lines)
	statusURL := "POST /repos/Codertocat/Hello-World/statuses/" + headSHA + " "
	want := []string{
		"GET /repos/Codertocat/Hello-World/commits/" + headSHA + "/statuses?page=1&per_page=100",
		"GET /repos/Codertocat/Hello-World/issues/2/comments?page=1&per_page=100",
		"GET /repos/Codertocat/Hello-World/pulls/2",
		"GET /repos/Codertocat/Hello-World/pulls/2/files?page=1&per_page=100",
		"GET /repos/Codertocat/Hello-World/pulls/2/reviews?page=1&per_page=100",
		"GET /user",
		"POST /repos/Codertocat/Hello-World/issues/2/comments {body: see golden}",
		statusURL + `{"context":"berth/plan: box","description":"everything fits: 1 admitted now (4 GPUs); 1 other decision changed, 1 team newly borrowing","state":"success"}`,
		statusURL + `{"context":"berth/policy","description":"needs 1 approval: team lead and team vision owner (@ana)","state":"pending"}`,
		statusURL + `{"context":"berth/validate","description":"valid: 13 workloads, 3 teams, 1 cluster","state":"success"}`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if strings.Contains(commentBody, envSecret) {
		t.Fatal("the env secret is in the comment")
	}
	golden(t, "webhook-plan-comment.golden", commentBody)

	// The same head again (GitHub's synchronize payload): berth reads, and
	// writes nothing.
	if code := e.deliverFile(t, "pull_request", "22-synchronize.json"); code != http.StatusAccepted {
		t.Fatalf("delivery: %d", code)
	}
	reqs = e.settle(t, func(got []ghfake.Request) bool {
		for _, r := range got {
			if strings.HasSuffix(r.Path, "/reviews") {
				return true
			}
		}
		return false
	})
	for _, r := range reqs {
		if r.Method != "GET" {
			t.Errorf("an unchanged plan wrote: %s", r)
		}
	}

	// An owner approves (carl, through team acme/vision) and the lead (ana)
	// too: the review event re-checks policy, which turns green, and the
	// comment is edited once.
	e.fake.UpdatePR(2, func(p *ghfake.PR) {
		p.Reviews = []ghfake.Review{{ID: 1, User: ghfake.User{Login: "carl"}, State: "APPROVED"}, {ID: 2, User: ghfake.User{Login: "ana"}, State: "APPROVED"}}
	})
	if code := e.deliverFile(t, "pull_request_review", "00-submitted.json"); code != http.StatusAccepted {
		t.Fatalf("delivery: %d", code)
	}
	reqs = e.settle(t, func([]ghfake.Request) bool { return e.fake.Statuses(headSHA)[0].Context == "berth/policy" })
	var writes []string
	for _, r := range reqs {
		if r.Method != "GET" {
			writes = append(writes, r.Method+" "+r.Path)
		}
	}
	slices.Sort(writes)
	wantWrites := []string{
		fmt.Sprintf("PATCH /repos/Codertocat/Hello-World/issues/comments/%d", e.fake.Comments(2)[0].ID),
		"POST /repos/Codertocat/Hello-World/statuses/" + headSHA,
	}
	if diff := cmp.Diff(wantWrites, writes); diff != "" {
		t.Errorf("writes after the review (-want +got):\n%s", diff)
	}
	if got := e.fake.Statuses(headSHA)[0]; got.State != "success" || got.Description != "approved by @ana" {
		t.Errorf("policy status %+v", got)
	}
}

// TestForgedWebhookChangesNothing: an unsigned or forged delivery never
// reaches the API.
func TestForgedWebhookChangesNothing(t *testing.T) {
	e := newEnv(t)
	body, _ := os.ReadFile("../../sources/webhook/testdata/github/pull_request/00-opened.json")
	for _, sig := range []string{"", webhook.Sign([]byte("not the secret"), body)} {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(body)))
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", "forged")
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		w := httptest.NewRecorder()
		e.recv.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("signature %q: %d", sig, w.Code)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := e.fake.Requests(); len(got) != 0 {
		t.Fatalf("a forged webhook reached the API: %v", got)
	}
}

// TestSelfApprovalJudgedByBase: a pull request that makes its author's
// friend a platform admin and raises its team's quota is judged by the
// base's admins; the friend's approval does not count.
func TestSelfApprovalJudgedByBase(t *testing.T) {
	e := newEnv(t)
	head := demoWith(t, map[string]string{
		"platform/policy.cue": strings.Replace(readDemo(t, "platform/policy.cue"), `admins: ["@acme/platform-admins"]`, `admins: ["@mallory"]`, 1),
		"teams/teams.cue":     strings.Replace(readDemo(t, "teams/teams.cue"), `{flavor: "h100", gpu: {nominal: 3, borrowingLimit: 2}`, `{flavor: "h100", gpu: {nominal: 8, borrowingLimit: 2}`, 1),
	})
	const h3 = "3333333333333333333333333333333333333333"
	e.revs.trees[h3] = head
	e.revs.refs["refs/pull/3/head"] = h3
	e.fake.AddPR(ghfake.PR{Number: 3, Author: "eve", HeadSHA: h3, BaseSHA: baseSHA, BaseRef: "master",
		Files:   []string{"platform/policy.cue", "teams/teams.cue"},
		Reviews: []ghfake.Review{{ID: 9, User: ghfake.User{Login: "mallory"}, State: "APPROVED"}, {ID: 10, User: ghfake.User{Login: "eve"}, State: "APPROVED"}}})
	res, err := e.planner.Plan(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var policy status.CommitStatus
	for _, s := range res.Statuses {
		if s.Context == status.ContextPolicy {
			policy = s
		}
	}
	want := status.CommitStatus{Context: "berth/policy", State: status.StatePending,
		Description: "needs 1 approval: platform admin (@acme/platform-admins)"}
	if policy != want {
		t.Errorf("policy status %+v, want %+v", policy, want)
	}
	if strings.Contains(strings.Join(res.Comments[0].Parts, ""), "approved by `@mallory`") {
		t.Error("the head's own admin approved it")
	}
}

func readDemo(t *testing.T, p string) string {
	b, err := fs.ReadFile(fixtures.Demo(), p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInvalidHead: a head that does not validate gets berth/validate
// failure with the first error's position, berth/plan failure, and the
// invalid comment.
func TestInvalidHead(t *testing.T) {
	e := newEnv(t)
	const h4 = "4444444444444444444444444444444444444444"
	e.revs.trees[h4] = demoWith(t, map[string]string{"workloads/vision/llama.cue": strings.Replace(llama, "workers: 2", `workers: "two"`, 1)})
	e.revs.refs["refs/pull/4/head"] = h4
	e.fake.AddPR(ghfake.PR{Number: 4, Author: "zoe", HeadSHA: h4, BaseSHA: baseSHA, BaseRef: "master", Files: []string{"workloads/vision/llama.cue"}})
	res, err := e.planner.Plan(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range e.fake.Statuses(h4) {
		got[s.Context] = s.State + ": " + s.Description
	}
	if !strings.HasPrefix(got["berth/validate"], "failure: 1 error; first: workloads/vision/llama.cue:8:2: ") {
		t.Errorf("validate: %q", got["berth/validate"])
	}
	if got["berth/plan: box"] != "failure: the configuration does not validate: see berth/validate" {
		t.Errorf("plan: %q", got["berth/plan: box"])
	}
	if len(res.Comments) != 1 || !strings.Contains(res.Comments[0].Parts[0], "the configuration does not validate") {
		t.Errorf("comments %+v", res.Comments)
	}
}
