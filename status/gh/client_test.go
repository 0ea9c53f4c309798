package gh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/status"
	"github.com/berth-gpu/berth/status/gh"
	"github.com/berth-gpu/berth/status/gh/ghfake"
)

const token = "ghp_s3cr3tT0kenValue1234567890"

const sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"

// sleeps records the waits of the client's retries instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func newClient(t *testing.T, f *ghfake.Server, opts gh.Options) (*gh.Client, *sleeps, *bytes.Buffer) {
	t.Helper()
	sl := &sleeps{}
	logs := &bytes.Buffer{}
	opts.Repo = f.Owner + "/" + f.Repo
	opts.BaseURL = f.APIURL()
	if opts.Token == "" && opts.App == nil {
		opts.Token = token
	}
	opts.Retry.Sleep = sl.sleep
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := gh.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, sl, logs
}

func requests(f *ghfake.Server) []string {
	var out []string
	for _, r := range f.Requests() {
		out = append(out, r.String())
	}
	return out
}

func sts() []status.CommitStatus {
	return []status.CommitStatus{
		status.NewCommitStatus(status.ContextValidate, status.StateSuccess, "valid: 3 workloads, 2 teams, 1 cluster"),
		status.NewCommitStatus(status.ContextPolicy, status.StatePending, "needs 1 approval: team vision owner (@ana)"),
		status.NewCommitStatus(status.PlanContext("box"), status.StateSuccess, "everything fits: 1 admitted now (4 GPUs)"),
	}
}

// TestStatusesListedBeforePosting: the commit's statuses are listed once;
// only a status that differs from its context's latest is posted, with
// exactly GitHub's JSON; posting the same statuses again sends nothing.
func TestStatusesListedBeforePosting(t *testing.T) {
	f := ghfake.New("Codertocat", "Hello-World")
	defer f.Close()
	// Someone (berth before a restart) already posted berth/validate.
	f.AddStatus(sha, ghfake.Status{State: "success", Context: "berth/validate", Description: "valid: 3 workloads, 2 teams, 1 cluster"})
	c, _, _ := newClient(t, f, gh.Options{})
	ctx := context.Background()
	if err := c.SetStatuses(ctx, sha, sts()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /repos/Codertocat/Hello-World/commits/" + sha + "/statuses?page=1&per_page=100",
		`POST /repos/Codertocat/Hello-World/statuses/` + sha + ` {"context":"berth/policy","description":"needs 1 approval: team vision owner (@ana)","state":"pending"}`,
		`POST /repos/Codertocat/Hello-World/statuses/` + sha + ` {"context":"berth/plan: box","description":"everything fits: 1 admitted now (4 GPUs)","state":"success"}`,
	}
	if diff := cmp.Diff(want, requests(f)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	// The same statuses again: nothing is sent.
	if err := c.SetStatuses(ctx, sha, sts()); err != nil {
		t.Fatal(err)
	}
	if got := requests(f); len(got) != 0 {
		t.Errorf("unchanged statuses were posted again: %v", got)
	}
	// One changes: only it is posted.
	changed := sts()
	changed[1] = status.NewCommitStatus(status.ContextPolicy, status.StateSuccess, "approved by @ana")
	if err := c.SetStatuses(ctx, sha, changed); err != nil {
		t.Fatal(err)
	}
	want = []string{`POST /repos/Codertocat/Hello-World/statuses/` + sha + ` {"context":"berth/policy","description":"approved by @ana","state":"success"}`}
	if diff := cmp.Diff(want, requests(f)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	// A new client (a restart) lists and posts nothing.
	c2, _, _ := newClient(t, f, gh.Options{})
	if err := c2.SetStatuses(ctx, sha, changed); err != nil {
		t.Fatal(err)
	}
	if got := requests(f); len(got) != 1 || !strings.HasPrefix(got[0], "GET ") {
		t.Errorf("after a restart: %v", got)
	}
	for _, r := range f.Statuses(sha) {
		if r.Context == "" {
			t.Error("a status without context")
		}
	}
}

func TestStatusesPaginated(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	f.SetPageSize(2)
	for i := range 5 {
		f.AddStatus(sha, ghfake.Status{State: "success", Context: fmt.Sprintf("ci/%d", i)})
	}
	f.AddStatus(sha, ghfake.Status{State: "success", Context: "berth/plan: box", Description: "everything fits: 1 admitted now (4 GPUs)"})
	c, _, _ := newClient(t, f, gh.Options{})
	if err := c.SetStatuses(context.Background(), sha, sts()[2:]); err != nil {
		t.Fatal(err)
	}
	got := requests(f)
	if len(got) != 3 {
		t.Fatalf("want 3 pages and no post, got %v", got)
	}
}

// TestRetries: 5xx answers are retried with doubling backoff; a status
// that still fails waits in the outbox and Flush posts it later.
func TestRetries(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	c, sl, _ := newClient(t, f, gh.Options{})
	ctx := context.Background()
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 2, Status: 502, Body: `{"message":"Bad Gateway"}`})
	if err := c.SetStatuses(ctx, sha, sts()[:1]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second}, sl.d); diff != "" {
		t.Errorf("waits: %s", diff)
	}
	if n := len(f.Statuses(sha)); n != 1 {
		t.Fatalf("%d statuses", n)
	}

	// Down for longer than the attempts: kept for later, not lost.
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 4, Status: 503})
	err := c.SetStatuses(ctx, sha, sts()[1:2])
	if err == nil {
		t.Fatal("want an error")
	}
	if s, _ := c.Pending(); s != 1 {
		t.Fatalf("outbox holds %d statuses", s)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Pending(); s != 0 {
		t.Fatalf("outbox still holds %d statuses", s)
	}
	if got := f.Statuses(sha)[0]; got.Context != status.ContextPolicy {
		t.Errorf("latest status %+v", got)
	}

	// A 4xx is not retried.
	f.Requests()
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 1, Status: 422, Body: `{"message":"Validation Failed"}`})
	if err := c.SetStatuses(ctx, sha, sts()[2:]); err == nil {
		t.Fatal("want an error")
	}
	if got := requests(f); len(got) != 1 {
		t.Errorf("a 422 was retried: %v", got)
	}
	if s, _ := c.Pending(); s != 0 {
		t.Errorf("a refused status went to the outbox")
	}
}

// TestRateLimit: a rate-limited request waits for the reset time GitHub
// gives, then goes through.
func TestRateLimit(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	now := time.Now()
	c, sl, _ := newClient(t, f, gh.Options{Retry: gh.RetryOptions{Now: func() time.Time { return now.Add(-20 * time.Second) }}})
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", fmt.Sprint(now.Unix()))
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 1, Status: 403, Header: h,
		Body: `{"message":"API rate limit exceeded for installation ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`})
	if err := c.SetStatuses(context.Background(), sha, sts()[:1]); err != nil {
		t.Fatal(err)
	}
	if len(sl.d) != 1 || sl.d[0] < 20*time.Second || sl.d[0] > 22*time.Second {
		t.Errorf("want one wait of about 21 s (until the reset), got %v", sl.d)
	}
	if n := len(f.Statuses(sha)); n != 1 {
		t.Errorf("%d statuses", n)
	}

	// Secondary limits say how long with Retry-After (go-github itself
	// refuses to send before then, so this waits for real).
	h2 := http.Header{}
	h2.Set("Retry-After", "1")
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 1, Status: 403, Header: h2,
		Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`})
	c2, err := gh.New(gh.Options{Repo: "o/r", BaseURL: f.APIURL(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c2.SetStatuses(context.Background(), sha, sts()[1:2]); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("posted %v after a secondary rate limit of 1 s", d)
	}
}

// TestTokenNeverShown: the token is sent only in the Authorization header,
// and never appears in errors or logs, even when the server echoes it.
func TestTokenNeverShown(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	c, _, logs := newClient(t, f, gh.Options{Retry: gh.RetryOptions{Attempts: 2}})
	f.Fail(ghfake.Failure{Method: "POST", Path: "/statuses/", Times: 2, Status: 500,
		Body: `{"message":"internal error for Bearer ` + token + `"}`})
	err := c.SetStatuses(context.Background(), sha, sts()[:1])
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("the token is in the error: %v", err)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token is in the logs:\n%s", logs.String())
	}
	for _, r := range f.Requests() {
		if r.Auth != "Bearer "+token {
			t.Errorf("%s: Authorization %q", r, r.Auth)
		}
		if strings.Contains(r.Path+r.Query+r.Body, token) {
			t.Errorf("the token is in a request: %s", r)
		}
	}
}

func comment(cluster string, parts ...string) status.Comment {
	c := status.Comment{Cluster: cluster}
	for i, p := range parts {
		c.Parts = append(c.Parts, status.Marker(cluster, i+1)+"\n"+p)
	}
	return c
}

// TestStickyComment: a cluster's comment is found by its marker (only
// berth's own), edited in place when it changed, left alone when it did
// not; extra parts are created and surplus ones deleted.
func TestStickyComment(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	// Someone quotes berth's marker in their own comment: not berth's.
	f.AddComment(7, "mallory", status.Marker("box", 1)+"\nfake plan")
	f.AddComment(7, "ana", "looks good")
	c, _, _ := newClient(t, f, gh.Options{})
	ctx := context.Background()

	if err := c.UpsertComment(ctx, 7, comment("box", "plan v1")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /user",
		"GET /repos/o/r/issues/7/comments?page=1&per_page=100",
		`POST /repos/o/r/issues/7/comments {"body":"<!-- berth:plan cluster=box -->\nplan v1"}`,
	}
	if diff := cmp.Diff(want, requests(f)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	id := f.Comments(7)[2].ID

	// Unchanged: nothing sent.
	if err := c.UpsertComment(ctx, 7, comment("box", "plan v1")); err != nil {
		t.Fatal(err)
	}
	if got := requests(f); len(got) != 0 {
		t.Errorf("unchanged comment written: %v", got)
	}
	// Changed and longer: edit part 1, create part 2.
	if err := c.UpsertComment(ctx, 7, comment("box", "plan v2", "more")); err != nil {
		t.Fatal(err)
	}
	want = []string{
		fmt.Sprintf(`PATCH /repos/o/r/issues/comments/%d {"body":"<!-- berth:plan cluster=box -->\nplan v2"}`, id),
		`POST /repos/o/r/issues/7/comments {"body":"<!-- berth:plan cluster=box part=2 -->\nmore"}`,
	}
	if diff := cmp.Diff(want, requests(f)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A second cluster gets its own comment.
	if err := c.UpsertComment(ctx, 7, comment("gpu-farm", "other")); err != nil {
		t.Fatal(err)
	}
	if got := requests(f); len(got) != 1 || !strings.HasPrefix(got[0], "POST ") {
		t.Errorf("second cluster: %v", got)
	}
	// Shorter again: the surplus part is deleted.
	if err := c.UpsertComment(ctx, 7, comment("box", "plan v3")); err != nil {
		t.Fatal(err)
	}
	got := requests(f)
	if len(got) != 2 || !strings.HasPrefix(got[0], "PATCH ") || !strings.HasPrefix(got[1], "DELETE ") {
		t.Errorf("shrink: %v", got)
	}

	// A restarted berth finds its comments by marker and edits them.
	c2, _, _ := newClient(t, f, gh.Options{})
	if err := c2.UpsertComment(ctx, 7, comment("box", "plan v4")); err != nil {
		t.Fatal(err)
	}
	got = requests(f)
	if len(got) != 3 || got[2] != fmt.Sprintf(`PATCH /repos/o/r/issues/comments/%d {"body":"<!-- berth:plan cluster=box -->\nplan v4"}`, id) {
		t.Errorf("after restart: %v", got)
	}
	var bodies []string
	for _, cm := range f.Comments(7) {
		bodies = append(bodies, cm.User.Login+": "+cm.Body)
	}
	wantBodies := []string{
		"mallory: <!-- berth:plan cluster=box -->\nfake plan",
		"ana: looks good",
		"berth-bot: <!-- berth:plan cluster=box -->\nplan v4",
		"berth-bot: <!-- berth:plan cluster=gpu-farm -->\nother",
	}
	if diff := cmp.Diff(wantBodies, bodies); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

// TestCommentDeletedByUser: a sticky comment someone deleted is written
// again.
func TestCommentDeletedByUser(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	c, _, _ := newClient(t, f, gh.Options{BotLogin: "berth-bot"})
	ctx := context.Background()
	if err := c.UpsertComment(ctx, 3, comment("box", "v1")); err != nil {
		t.Fatal(err)
	}
	f.Requests()
	f.Fail(ghfake.Failure{Method: "PATCH", Path: "/issues/comments/", Times: 1, Status: 404, Body: `{"message":"Not Found"}`})
	if err := c.UpsertComment(ctx, 3, comment("box", "v2")); err != nil {
		t.Fatal(err)
	}
	got := requests(f)
	if len(got) != 2 || !strings.HasPrefix(got[1], "POST ") {
		t.Errorf("%v", got)
	}
}

// TestOutboxSurvivesRestart: a write that could not be made is kept in the
// outbox file and made by the next process's Flush.
func TestOutboxSurvivesRestart(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	file := filepath.Join(t.TempDir(), "outbox.json")
	c, _, _ := newClient(t, f, gh.Options{OutboxFile: file, Retry: gh.RetryOptions{Attempts: 1}})
	f.Fail(ghfake.Failure{Method: "GET", Path: "/statuses$", Times: 1, Status: 502})
	f.Fail(ghfake.Failure{Method: "POST", Path: "/comments$", Times: 1, Status: 502})
	ctx := context.Background()
	if err := c.SetStatuses(ctx, sha, sts()); err == nil {
		t.Fatal("want an error")
	}
	if err := c.UpsertComment(ctx, 9, comment("box", "plan")); err == nil {
		t.Fatal("want an error")
	}
	c2, _, _ := newClient(t, f, gh.Options{OutboxFile: file})
	if s, cm := c2.Pending(); s != 3 || cm != 1 {
		t.Fatalf("reloaded outbox: %d statuses, %d comments", s, cm)
	}
	if err := c2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s, cm := c2.Pending(); s+cm != 0 {
		t.Fatalf("outbox after flush: %d, %d", s, cm)
	}
	if n := len(f.Statuses(sha)); n != 3 {
		t.Errorf("%d statuses", n)
	}
	if n := len(f.Comments(9)); n != 1 {
		t.Errorf("%d comments", n)
	}
}

// TestApprovers: the latest review of each user counts; a later request
// for changes or a dismissal cancels an approval; team membership is asked
// only for the teams given.
func TestApprovers(t *testing.T) {
	f := ghfake.New("acme", "gpu")
	defer f.Close()
	f.AddPR(ghfake.PR{Number: 5, Author: "zoe", HeadSHA: sha, Reviews: []ghfake.Review{
		{ID: 1, User: ghfake.User{Login: "alice"}, State: "APPROVED"},
		{ID: 2, User: ghfake.User{Login: "bob"}, State: "APPROVED"},
		{ID: 3, User: ghfake.User{Login: "alice"}, State: "CHANGES_REQUESTED"},
		{ID: 4, User: ghfake.User{Login: "carol"}, State: "COMMENTED"},
		{ID: 5, User: ghfake.User{Login: "dave"}, State: "APPROVED"},
		{ID: 6, User: ghfake.User{Login: "dave"}, State: "DISMISSED"},
		{ID: 7, User: ghfake.User{Login: "erin"}, State: "APPROVED"},
		{ID: 8, User: ghfake.User{Login: "erin"}, State: "COMMENTED"},
	}})
	f.AddMember("acme/vision", "bob")
	c, _, _ := newClient(t, f, gh.Options{})
	got, err := c.Approvers(context.Background(), 5, []string{"acme/platform", "acme/vision"})
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Approver{{Login: "bob", Teams: []string{"acme/vision"}}, {Login: "erin"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantReq := []string{
		"GET /repos/acme/gpu/pulls/5/reviews?page=1&per_page=100",
		"GET /orgs/acme/teams/platform/memberships/bob",
		"GET /orgs/acme/teams/vision/memberships/bob",
		"GET /orgs/acme/teams/platform/memberships/erin",
		"GET /orgs/acme/teams/vision/memberships/erin",
	}
	if diff := cmp.Diff(wantReq, requests(f)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []gh.Options{{Repo: "nope", Token: "x"}, {Repo: "a/b"}, {Repo: "a/b", Token: "x", Forge: "gitlab"}} {
		if _, err := gh.New(o); err == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
}

// TestAppInstallationAuth: as a GitHub App, the client trades its JWT for
// an installation token (ghinstallation) and sends that token.
func TestAppInstallationAuth(t *testing.T) {
	f := ghfake.New("o", "r")
	defer f.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	c, _, _ := newClient(t, f, gh.Options{App: &gh.AppAuth{AppID: 42, InstallationID: 7, PrivateKey: pemKey}, BotLogin: "berth[bot]"})
	if err := c.SetStatuses(context.Background(), sha, sts()[:1]); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[0].Path != "/app/installations/7/access_tokens" {
		t.Fatalf("requests %v", reqs)
	}
	if !strings.HasPrefix(reqs[0].Auth, "Bearer ") {
		t.Errorf("the token request is not signed with the App's JWT: %q", reqs[0].Auth)
	}
	for _, r := range reqs[1:] {
		if r.Auth != "token "+ghfake.InstallationToken+"7" {
			t.Errorf("%s sent %q", r, r.Auth)
		}
	}
	tok, err := c.Token(context.Background())
	if err != nil || tok != ghfake.InstallationToken+"7" {
		t.Errorf("git token %q, %v", tok, err)
	}
}

// TestPoller: without a webhook, open pull requests are planned when
// their head moves and re-reviewed otherwise.
func TestPoller(t *testing.T) {
	e := newEnv(t)
	p := &gh.Poller{Client: e.client, Planner: e.planner}
	ctx := context.Background()
	p.Poll(ctx)
	if n := len(e.fake.Statuses(headSHA)); n != 3 {
		t.Fatalf("first poll: %d statuses", n)
	}
	e.fake.Requests()
	p.Poll(ctx)
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			t.Errorf("a poll with nothing new wrote %s", r)
		}
	}
	e.fake.UpdatePR(2, func(pr *ghfake.PR) {
		pr.Reviews = []ghfake.Review{{ID: 1, User: ghfake.User{Login: "ana"}, State: "APPROVED"}}
	})
	p.Poll(ctx)
	if got := e.fake.Statuses(headSHA)[0]; got.Context != "berth/policy" || got.State != "success" {
		t.Errorf("after an approval: %+v", got)
	}
}
