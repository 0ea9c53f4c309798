package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-gpu/berth/status/gh/ghfake"
)

// bomb is the CUE of the i-th evaluation bomb of TestBombPullRequests: a
// string doubled 30 to 40 times (memory), eight or nine nested list
// comprehensions that only burn CPU, or a mix (a megabyte string copied by
// a comprehension a thousand times). Each is its own tree, so none is
// remembered from another.
func bomb(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package jobs\n\n_d: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n_s0: \"%d\"\n", i)
	value := ""
	switch i % 3 {
	case 0: // string doubling
		depth := 30 + i%11
		for k := 1; k <= depth; k++ {
			fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n", k, k-1, k-1)
		}
		value = fmt.Sprintf("_s%d", depth)
	case 1: // nested list comprehensions: CPU only
		levels := 8 + i%2
		b.WriteString("_grid: [")
		for k := range levels {
			fmt.Fprintf(&b, "for v%d in _d ", k)
		}
		b.WriteString("{v0 + v1}]\n")
		value = "\"\\(len(_grid))\""
	case 2: // a mix: doubling, then copies by a comprehension
		for k := 1; k <= 20; k++ {
			fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n", k, k-1, k-1)
		}
		b.WriteString("_copies: [for a in _d for b in _d for c in _d for d in _d {_s20 + \"\\(a)\\(b)\\(c)\\(d)\"}]\n")
		value = "_copies[9999]"
	}
	fmt.Fprintf(&b, `
workloads: t: "bomb-%d": {
	kind: "batch", image: "x", command: ["true"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	env: PADDING: %s
}
`, i, value)
	return b.String()
}

// TestBombPullRequests: twenty pull requests, each carrying a different
// evaluation bomb, arrive as signed webhooks within a second, and a valid
// one in the middle of them. serve's peak RSS stays under 300 MiB, each
// evaluation child's under its limit; each bomb gets a failing
// berth/validate status that names its file, a CPU-only one after a
// pending one that says it is retried with the full budget (no planner
// waits for a retry); the valid pull request gets its plan (statuses and
// comment) behind the bombs' first tries only. How long that took is
// logged, not asserted: it depends on the machine's load.
func TestBombPullRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and evaluates twenty bombs")
	}
	e := newE2E(t)
	e.write("jobs/a.cue", "package jobs\n"+e.job("a", 0))
	e.commit("base")
	g := &ghServe{e2e: e}
	g.base = g.rev("HEAD")
	g.fake = ghfake.New("acme", "gpu-platform")
	t.Cleanup(g.fake.Close)

	const bombs, valid = 20, 100
	heads := map[int]string{}
	addPR := func(n int, file, content string) {
		e.git("checkout", "-q", "-B", "pr"+strconv.Itoa(n), g.base)
		e.write(file, content)
		e.commit("pull request " + strconv.Itoa(n))
		heads[n] = g.rev("HEAD")
		e.git("update-ref", fmt.Sprintf("refs/pull/%d/head", n), heads[n])
		g.fake.AddPR(ghfake.PR{Number: n, Author: "zoe", HeadSHA: heads[n], BaseSHA: g.base, BaseRef: "main",
			HeadRef: "pr" + strconv.Itoa(n), Files: []string{file}})
	}
	for i := 1; i <= bombs; i++ {
		addPR(i, fmt.Sprintf("jobs/bomb%d.cue", i), bomb(i))
	}
	addPR(valid, "jobs/ok.cue", "package jobs\n"+e.job("ok", 0))
	e.git("checkout", "-q", "main")

	// The full CPU budget is 5 s here (60 s by default), so that the
	// comprehension bombs' retries, one at a time, end within the test.
	e.args = []string{"--github", "--github-repo", "acme/gpu-platform", "--github-api-url", g.fake.APIURL(), "--github-git-url", e.repo,
		"--webhook-listen", "127.0.0.1:0", "--eval-timeout", "5s"}
	e.env = []string{"GITHUB_TOKEN=ghp_e2e_token", "BERTH_WEBHOOK_SECRET=" + hookSecret, "BERTH_API_TOKEN="}
	e.start()
	// The tracked branch is evaluated before the burst.
	waitFor(t, 30*time.Second, "the tracked branch's workload", func() bool { return e.status()["t/a@1"] != "" })

	mem := watchMemory(e.serve.Process.Pid)
	defer mem.stop()

	var validSent time.Time
	var wg sync.WaitGroup
	for i := 1; i <= bombs+1; i++ {
		n := i
		if i == bombs/2+1 {
			n = valid
		} else if i > bombs/2 {
			n = i - 1
		}
		body := []byte(fmt.Sprintf(`{"action":"opened","number":%d,"repository":{"full_name":"acme/gpu-platform"},`+
			`"pull_request":{"number":%d,"head":{"sha":%q},"base":{"sha":%q}}}`, n, n, heads[n], g.base))
		if n == valid {
			validSent = time.Now()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, answer := g.deliver("pull_request", "bomb-"+strconv.Itoa(n), body); code != http.StatusAccepted {
				t.Errorf("pull request %d: %d %s", n, code, answer)
			}
		}()
		time.Sleep(40 * time.Millisecond) // 21 deliveries within a second
	}
	wg.Wait()

	var planned time.Duration
	waitFor(t, 60*time.Second, "the valid pull request's plan", func() bool {
		if len(g.fake.Comments(valid)) == 0 || validateState(g.fake.Statuses(heads[valid])) != "success" {
			return false
		}
		planned = time.Since(validSent)
		return true
	})
	t.Logf("the valid pull request's plan (statuses and comment) was posted %s after its webhook", planned.Round(time.Millisecond))

	// Every bomb fails berth/validate, naming its file; the comprehension
	// bombs after their retries (5 s each, one at a time).
	waitFor(t, 4*time.Minute, "every bomb's berth/validate", func() bool {
		for i := 1; i <= bombs; i++ {
			if validateState(g.fake.Statuses(heads[i])) == "" {
				return false
			}
		}
		return true
	})
	for i := 1; i <= bombs; i++ {
		st := validateStatus(g.fake.Statuses(heads[i]))
		file := fmt.Sprintf("jobs/bomb%d.cue", i)
		if st.State != "failure" || !strings.Contains(st.Description+g.commentsOf(i), file) {
			t.Errorf("pull request %d: berth/validate %s %q, want a failure naming %s; comment:\n%s", i, st.State, st.Description, file, g.commentsOf(i))
		}
		// A CPU-only bomb needs its full budget: while it is retried, no
		// planner waits for it, and its berth/validate says why it waits.
		if i%3 == 1 && !retryAnnounced(g.fake.Statuses(heads[i])) {
			t.Errorf("pull request %d: no pending berth/validate saying it is retried with the full budget: %+v", i, g.fake.Statuses(heads[i]))
		}
	}
	serve, children := mem.stop()
	t.Logf("serve's peak RSS (VmHWM): %d MiB; evaluation children: %d seen, the largest peak %d MiB",
		serve>>20, len(children), maxOf(children)>>20)
	if serve > 300<<20 {
		t.Errorf("serve's peak RSS is %d MiB, want under 300 MiB", serve>>20)
	}
	// A child may use 512 MiB of address space beyond what it started
	// with (about 25 MiB resident).
	for pid, hwm := range children {
		if hwm > (512+64)<<20 {
			t.Errorf("evaluation child %d peaked at %d MiB, over its 512 MiB limit", pid, hwm>>20)
		}
	}
}

func (g *ghServe) commentsOf(n int) string {
	var b strings.Builder
	for _, c := range g.fake.Comments(n) {
		b.WriteString(c.Body)
	}
	return b.String()
}

// validateStatus is a commit's newest berth/validate status.
func validateStatus(sts []ghfake.Status) ghfake.Status {
	for _, s := range sts {
		if s.Context == "berth/validate" && s.State != "pending" {
			return s
		}
	}
	return ghfake.Status{}
}

func validateState(sts []ghfake.Status) string { return validateStatus(sts).State }

// retryAnnounced reports whether a commit got a pending berth/validate
// saying that its evaluation is retried with the full budget.
func retryAnnounced(sts []ghfake.Status) bool {
	for _, s := range sts {
		if s.Context == "berth/validate" && s.State == "pending" && strings.Contains(s.Description, "retrying with the full budget") {
			return true
		}
	}
	return false
}

func maxOf(m map[int]int64) int64 {
	var x int64
	for _, v := range m {
		x = max(x, v)
	}
	return x
}

// memoryWatch samples the peak RSS of a process and of its children (the
// evaluation processes) every 20 ms.
type memoryWatch struct {
	pid      int
	done     chan struct{}
	finished chan struct{}
	mu       sync.Mutex
	serve    int64
	children map[int]int64 // by pid: the last VmHWM read, close to the peak
}

func watchMemory(pid int) *memoryWatch {
	w := &memoryWatch{pid: pid, done: make(chan struct{}), finished: make(chan struct{}), children: map[int]int64{}}
	go func() {
		defer close(w.finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *memoryWatch) sample() {
	hwm := procHWM(w.pid)
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// pid (comm) state ppid ...
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(w.pid) && isEvalChild(pid) {
					kids = append(kids, pid)
				}
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.serve = max(w.serve, hwm)
	for _, k := range kids {
		if h := procHWM(k); h > 0 {
			w.children[k] = max(w.children[k], h)
		}
	}
}

// isEvalChild reports whether pid is an evaluation process (berth
// __eval), not git or a workload's shim.
func isEvalChild(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Contains(string(b), "\x00"+evalCommand)
}

// stop ends the sampling and returns what it found.
func (w *memoryWatch) stop() (int64, map[int]int64) {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	<-w.finished
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serve, w.children
}

// procHWM is a process's VmHWM in bytes, 0 when it is gone.
func procHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestBombOnTrackedBranch: the comprehension bomb (CPU only) is pushed to
// the tracked branch of a berth serve that runs a job. For a soak of
// resyncs (90 s; BERTH_SOAK=10m for the ten minutes) serve's peak
// RSS stays under 300 MiB, the job keeps running (it started once and was
// not stopped), the bomb is evaluated once (a first try and one retry:
// two evaluation children, not two per resync), and /metrics, polled every
// second, answers every time.
func TestBombOnTrackedBranch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve for a soak")
	}
	soak := 90 * time.Second
	if s := os.Getenv("BERTH_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("BERTH_SOAK: %v", err)
		}
		soak = d
	}
	e := newE2E(t)
	e.write("jobs/a.cue", "package jobs\n"+e.job("a", 3600))
	e.commit("a long job")
	e.args = []string{"--eval-timeout", "10s"}
	e.start()
	e.waitState("t/a@1", "running")

	mem := watchMemory(e.serve.Process.Pid)
	defer mem.stop()
	grid, err := os.ReadFile("../../fixtures/repos/broken/comprehension-bomb/workloads/vision/grid.cue")
	if err != nil {
		t.Fatal(err)
	}
	e.write("jobs/grid.cue", strings.Replace(strings.Replace(string(grid), "package vision", "package jobs", 1),
		"workloads: vision: grid: {", "workloads: t: grid: {\n\tcommand: [\"true\"]\n\tresources: {cpu: 1, memory: \"1Gi\", flavor: \"cpu\"}", 1))
	e.commit("a comprehension bomb")

	var metricsOK, metricsFailed int
	deadline := time.Now().Add(soak)
	for time.Now().Before(deadline) {
		client := http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(e.addr + "/metrics")
		if err == nil && resp.StatusCode == http.StatusOK {
			metricsOK++
		} else {
			metricsFailed++
			t.Logf("/metrics: %v %v", resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(time.Second)
	}
	st := e.status()
	serve, children := mem.stop()
	t.Logf("soak %s: serve's peak RSS %d MiB; evaluation children %d (largest peak %d MiB); /metrics answered %d times, failed %d; invalid: %q",
		soak, serve>>20, len(children), maxOf(children)>>20, metricsOK, metricsFailed, st["invalid"])
	if serve > 300<<20 {
		t.Errorf("serve's peak RSS is %d MiB, want under 300 MiB", serve>>20)
	}
	if metricsFailed > 0 {
		t.Errorf("/metrics failed %d times of %d", metricsFailed, metricsOK+metricsFailed)
	}
	if !strings.Contains(st["invalid"], "jobs/grid.cue") && !strings.Contains(st["invalid"], "CPU time") {
		t.Errorf("the bomb is not reported invalid: %v", st)
	}
	if st["t/a@1"] != "running" || e.runs("a") != 1 {
		t.Errorf("the job did not keep running: %s, started %d times", st["t/a@1"], e.runs("a"))
	}
	if len(children) > 2 {
		t.Errorf("%d evaluation children after the bomb, want 2 (a first try and a retry)", len(children))
	}
}
