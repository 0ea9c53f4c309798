package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth/fixtures/testenv"
)

// TestServeGitHubGitea runs the real berth binary as `berth serve --github`
// against Gitea: a pull request opened through Gitea's API is planned on
// Gitea's webhook; once merged through the API, berth applies the merge
// commit (a push webhook triggers it), runs the job on this machine, and
// keeps the merge commit's berth/sync: box status and the pull request's
// comment current until the job succeeds.
func TestServeGitHubGitea(t *testing.T) {
	g := testenv.Gitea(t)
	ctx := context.Background()
	// Every API call of the test is bounded, so a forge that stops
	// answering fails the test with its log instead of hanging it.
	do := func(method, path string, body, out any) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return g.Do(ctx, method, path, body, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gitea log (tail):\n%s", tail(readFile(filepath.Join(g.Dir, "gitea.log")), 60))
		}
	})
	repo, err := g.CreateRepo(ctx, "platform", false)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	work, state := filepath.Join(root, "work"), filepath.Join(root, "state")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=" + g.User, "-c", "user.email=berth@example.com"}, args...)...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(p, s string) {
		t.Helper()
		os.MkdirAll(filepath.Join(work, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(work, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(work, 0o755)
	write("platform/platform.cue", `package platform

clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: h100: gpuModel: "H100"
flavors: cpu: {}
teams: t: {
	owners: ["@`+g.User+`"]
	quota: [{flavor: "h100", gpu: nominal: 4}, {flavor: "cpu", cpu: nominal: 16}]
}
policy: approvals: admins: ["@`+g.User+`"]
`)
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-q", "-m", "platform")
	git("remote", "add", "origin", g.AuthCloneURL(repo))
	git("push", "-q", "origin", "main")

	serve := exec.Command(berthBinary(t), "serve", "--repo", repo.CloneURL, "--branch", "main", "--state-dir", state,
		"--listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0", "--resync", "1s", "--poll", "2s",
		"--github", "--github-repo", repo.FullName, "--github-forge", "gitea", "--github-api-url", g.APIURL())
	serve.Env = append(os.Environ(), "GITHUB_TOKEN="+g.Token, "BERTH_GIT_TOKEN="+g.Token, "BERTH_WEBHOOK_SECRET=e2e-secret",
		"XDG_STATE_HOME="+state)
	logFile, err := os.Create(filepath.Join(root, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("serve log:\n%s", b)
		}
		if strings.Contains(readFile(logFile.Name()), g.Token) {
			t.Error("the token is in serve's log")
		}
	})
	var info struct{ Address, Webhook string }
	waitFor(t, 30*time.Second, "serve.json", func() bool {
		b, err := os.ReadFile(filepath.Join(state, "serve.json"))
		return err == nil && json.Unmarshal(b, &info) == nil && info.Webhook != ""
	})
	err = do(http.MethodPost, "repos/"+repo.FullName+"/hooks", map[string]any{
		"type": "gitea", "active": true,
		"events": []string{"pull_request", "pull_request_sync", "pull_request_review_approved", "pull_request_review_rejected", "issue_comment", "push"},
		"config": map[string]string{"url": info.Webhook, "content_type": "json", "secret": "e2e-secret"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A pull request that adds a short job.
	git("checkout", "-q", "-b", "add-job")
	write("jobs/hello.cue", `package jobs

workloads: t: hello: {
	kind: "batch"
	image: "busybox"
	command: ["sh", "-c", "echo hello; sleep 2"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	maxDuration: "10m"
}
`)
	git("add", "-A")
	git("commit", "-q", "-m", "add a job")
	git("push", "-q", "origin", "add-job")
	head := git("rev-parse", "HEAD")
	var pr struct {
		Number int `json:"number"`
	}
	waitFor(t, 20*time.Second, "the pull request", func() bool {
		return do(http.MethodPost, "repos/"+repo.FullName+"/pulls",
			map[string]string{"head": "add-job", "base": "main", "title": "Add a job"}, &pr) == nil
	})

	statuses := func(sha string) map[string]string {
		var list []struct{ Context, Status, Description string }
		do(http.MethodGet, fmt.Sprintf("repos/%s/commits/%s/statuses?limit=50", repo.FullName, sha), nil, &list)
		out := map[string]string{}
		for i := len(list) - 1; i >= 0; i-- { // oldest first: the newest wins
			out[list[i].Context] = list[i].Status + ": " + list[i].Description
		}
		return out
	}
	waitFor(t, 60*time.Second, "the plan statuses", func() bool { return len(statuses(head)) == 3 })
	got := statuses(head)
	if got["berth/plan: box"] != "success: everything fits: 1 admitted now" {
		t.Errorf("plan: %q", got["berth/plan: box"])
	}
	// The author is the team's only owner: their own approval cannot count.
	if got["berth/policy"] != "pending: needs 1 approval: team t owner (@"+g.User+")" {
		t.Errorf("policy: %q", got["berth/policy"])
	}

	// Merge it: berth applies the merge commit, runs the job, and follows
	// it on the merge commit and in the pull request's comment.
	if err := do(http.MethodPost, fmt.Sprintf("repos/%s/pulls/%d/merge", repo.FullName, pr.Number),
		map[string]string{"Do": "merge"}, nil); err != nil {
		t.Fatal(err)
	}
	var merged struct {
		MergeSHA string `json:"merge_commit_sha"`
	}
	waitFor(t, 20*time.Second, "the merge commit", func() bool {
		return do(http.MethodGet, fmt.Sprintf("repos/%s/pulls/%d", repo.FullName, pr.Number), nil, &merged) == nil && merged.MergeSHA != ""
	})
	waitFor(t, 90*time.Second, "berth/sync: box success", func() bool {
		return strings.HasPrefix(statuses(merged.MergeSHA)["berth/sync: box"], "success: 1 succeeded")
	})
	var comments []struct{ Body string }
	if err := do(http.MethodGet, fmt.Sprintf("repos/%s/issues/%d/comments", repo.FullName, pr.Number), nil, &comments); err != nil {
		t.Fatal(err)
	}
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "### berth on `box` after merge") ||
		!strings.Contains(comments[0].Body, "succeeded") {
		t.Fatalf("comments: %+v", comments)
	}
	t.Logf("comment after merge:\n%s", comments[0].Body)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
