package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-gpu/berth/sources/webhook"
	"github.com/berth-gpu/berth/status/gh/ghfake"
)

// The secrets of webhook tests: a 3-character env value and a long one,
// and values no hash or number can contain by chance.
const (
	shortValue = "zqx"
	longValue  = "hunter2-e2e-secret"
	prValue    = "hunter2-pr-value"
	mainValue  = "hunter2-main-value"
	hookSecret = "e2e-hook-secret"
)

// ghServe is berth serve --github against the GitHub-shaped fake, with a
// webhook secret and an API token.
type ghServe struct {
	*e2e
	fake       *ghfake.Server
	token      string
	base, head string
	requests   []ghfake.Request
}

func newGHServe(t *testing.T) *ghServe {
	if testing.Short() {
		t.Skip("starts berth serve")
	}
	e := newE2E(t)
	e.write("jobs/a.cue", fmt.Sprintf(`package jobs
workloads: t: a: {
	kind: "batch", image: "x", command: ["true"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	env: {API_KEY: %q, TOKEN: %q}
}
`, shortValue, longValue))
	e.commit("base")
	g := &ghServe{e2e: e, token: "e2e-api-token"}
	g.base = g.rev("HEAD")
	// Pull request 7 sets API_KEY to another value in another file: the
	// head does not validate, and the error must not say either value.
	e.git("checkout", "-q", "-b", "feature")
	e.write("jobs/b.cue", fmt.Sprintf("package jobs\nworkloads: t: a: env: API_KEY: %q\n", prValue))
	e.commit("set API_KEY again")
	g.head = g.rev("HEAD")
	e.git("update-ref", "refs/pull/7/head", g.head)
	e.git("checkout", "-q", "main")

	g.fake = ghfake.New("acme", "gpu-platform")
	t.Cleanup(g.fake.Close)
	g.fake.AddPR(ghfake.PR{Number: 7, Author: "zoe", HeadSHA: g.head, BaseSHA: g.base, BaseRef: "main", HeadRef: "feature", Files: []string{"jobs/b.cue"}})
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(tokenFile, []byte(g.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.args = []string{"--github", "--github-repo", "acme/gpu-platform", "--github-api-url", g.fake.APIURL(), "--github-git-url", e.repo,
		"--webhook-listen", "127.0.0.1:0", "--api-token-file", tokenFile}
	e.env = []string{"GITHUB_TOKEN=ghp_e2e_token", "BERTH_WEBHOOK_SECRET=" + hookSecret, "BERTH_API_TOKEN="}
	e.start()
	if e.info.Webhook == "" {
		t.Fatalf("serve.json names no webhook address: %+v", e.info)
	}
	return g
}

func (g *ghServe) rev(ref string) string {
	out, err := exec.Command("git", "-C", g.repo, "rev-parse", ref).Output()
	if err != nil {
		g.t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// deliver sends a signed delivery; an empty id sends none.
func (g *ghServe) deliver(event, id string, body []byte) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.info.Webhook, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	if id != "" {
		req.Header.Set("X-GitHub-Delivery", id)
	}
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(hookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("deliver %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// plans counts the plans of pull request 7 so far: each begins by getting
// the pull request.
func (g *ghServe) plans() int {
	g.requests = append(g.requests, g.fake.Requests()...)
	n := 0
	for _, r := range g.requests {
		if r.Method == http.MethodGet && r.Path == "/repos/acme/gpu-platform/pulls/7" {
			n++
		}
	}
	return n
}

// api gets a status API path with the token.
func (g *ghServe) api(path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, g.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebhookReplays: a signed pull_request delivery is planned once;
// replayed with the same ID, a new ID, no ID, and both again after a
// restart with the same state directory, it is not planned again.
func TestWebhookReplays(t *testing.T) {
	g := newGHServe(t)
	opened := []byte(fmt.Sprintf(`{"action":"opened","number":7,"repository":{"full_name":"acme/gpu-platform"},`+
		`"pull_request":{"number":7,"head":{"sha":%q},"base":{"sha":%q}}}`, g.head, g.base))
	if code, body := g.deliver("pull_request", "d1", opened); code != http.StatusAccepted {
		t.Fatalf("first delivery: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "the plan's comment", func() bool { return len(g.fake.Comments(7)) == 1 })
	for _, tt := range []struct {
		id   string
		code int
	}{{"d1", 200}, {"d2", 200}, {"", 400}} {
		if code, body := g.deliver("pull_request", tt.id, opened); code != tt.code {
			t.Errorf("replay with ID %q: %d %s, want %d", tt.id, code, body, tt.code)
		}
	}
	g.kill()
	g.start()
	for _, id := range []string{"d1", "d3"} {
		if code, body := g.deliver("pull_request", id, opened); code != http.StatusOK {
			t.Errorf("after a restart, replay with ID %q: %d %s, want 200", id, code, body)
		}
	}
	time.Sleep(time.Second) // a plan would have started by now
	if n := g.plans(); n != 1 {
		t.Fatalf("pull request 7 was planned %d times, want once", n)
	}
}

// TestSecretsNeverShown: two files of the tracked branch and of a pull
// request set API_KEY differently. Neither value, nor the other env values
// of the configuration (one of 3 characters), appears in serve's log,
// /api/status, `berth status` or the pull request's comment and statuses.
// The status API wants its token; `berth status` finds it.
func TestSecretsNeverShown(t *testing.T) {
	g := newGHServe(t)
	opened := []byte(fmt.Sprintf(`{"action":"opened","number":7,"repository":{"full_name":"acme/gpu-platform"},`+
		`"pull_request":{"number":7,"head":{"sha":%q},"base":{"sha":%q}}}`, g.head, g.base))
	if code, body := g.deliver("pull_request", "s1", opened); code != http.StatusAccepted {
		t.Fatalf("delivery: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "the plan's comment", func() bool { return len(g.fake.Comments(7)) == 1 })

	g.write("jobs/c.cue", fmt.Sprintf("package jobs\nworkloads: t: a: env: API_KEY: %q\n", mainValue))
	g.commit("set API_KEY again on main")
	var apiStatus string
	waitFor(t, 30*time.Second, "the invalid revision in /api/status", func() bool {
		code, body := g.api("/api/status")
		apiStatus = body
		return code == http.StatusOK && strings.Contains(body, "set to two different values")
	})
	time.Sleep(time.Second) // a few resyncs: each logs the invalid revision

	req, _ := http.NewRequest(http.MethodGet, g.addr+"/api/status", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/status without the token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	cmd := exec.Command(g.bin, "status", "--state-dir", g.state)
	cmd.Env = append(os.Environ(), "BERTH_API_TOKEN=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "invalid: workloads.t.a.env.API_KEY: set to two different values") {
		t.Errorf("berth status: %v\n%s", err, out)
	}
	comments := ""
	for _, c := range g.fake.Comments(7) {
		comments += c.Body
	}
	if !strings.Contains(comments, "env") {
		t.Errorf("the comment does not show the invalid env: %s", comments)
	}
	sent := ""
	for _, r := range append(g.requests, g.fake.Requests()...) {
		sent += r.String() + "\n"
	}
	for name, text := range map[string]string{"serve's log": g.logs(), "/api/status": apiStatus, "berth status": string(out),
		"the comment": comments, "requests to GitHub": sent} {
		for _, v := range []string{shortValue, longValue, prValue, mainValue} {
			if strings.Contains(text, v) {
				t.Errorf("%s shows the env value %q:\n%s", name, v, text)
			}
		}
	}
}

// TestWebhookFloodBounded: 100 concurrent unsigned 25 MB bodies, and 100
// with a forged signature and no length (read up to the bound), are all
// refused, and serve's peak resident memory stays under 300 MiB.
func TestWebhookFloodBounded(t *testing.T) {
	g := newGHServe(t)
	const size = 25 << 20
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			body := io.LimitReader(zeros{}, size)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.info.Webhook, body)
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", "flood-"+strconv.Itoa(i))
			if i%2 == 0 {
				req.ContentLength = size // unsigned, with its length
			} else {
				req.ContentLength = -1 // forged, chunked: read up to the bound
				req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte("guess"), nil))
			}
			resp, err := http.DefaultClient.Do(req)
			key := "connection closed"
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				key = strconv.Itoa(resp.StatusCode)
			}
			mu.Lock()
			codes[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("answers: %v", codes)
	for k := range codes {
		if strings.HasPrefix(k, "2") {
			t.Errorf("a flood delivery was accepted: %v", codes)
		}
	}
	if code, _ := g.api("/healthz"); code != http.StatusOK {
		t.Errorf("serve does not answer after the flood: %d", code)
	}
	hwm := vmHWM(t, g.serve.Process.Pid)
	t.Logf("serve's peak RSS (VmHWM): %d MiB", hwm>>20)
	if hwm > 300<<20 {
		t.Errorf("serve's peak RSS is %d MiB, want under 300 MiB", hwm>>20)
	}
	if n := g.plans(); n != 0 {
		t.Errorf("the flood planned %d times", n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// vmHWM is a process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
