package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth/fixtures/testenv"
)

// These tests run the real berth binary (built once), a real Git
// repository and real processes: berth serve is SIGKILLed and restarted,
// and the workloads' own output files count how often each ran.

// berthBinary is the berth command, built once.
func berthBinary(t testing.TB) string { return testenv.BerthBinary(t) }

// e2e is a Git repository, a state directory and a running berth serve.
type e2e struct {
	t     testing.TB
	bin   string
	repo  string
	state string
	out   string // where workloads write what they did
	serve *exec.Cmd
	log   *os.File
	addr  string
	info  serveInfo
	// args and env are added to serve's command line and environment.
	args []string
	env  []string
}

const e2ePlatform = `package platform

clusters: box: {backend: "local", simulatedGPUs: "4xH100"}
flavors: h100: gpuModel: "H100"
flavors: cpu: {}
teams: t: {
	owners: ["@t"]
	quota: [{flavor: "h100", gpu: nominal: 4}, {flavor: "cpu", cpu: nominal: 16}]
}
`

func newE2E(t testing.TB) *e2e {
	t.Helper()
	root := t.TempDir()
	e := &e2e{t: t, bin: berthBinary(t), repo: filepath.Join(root, "repo"), state: filepath.Join(root, "state"), out: filepath.Join(root, "out")}
	for _, d := range []string{e.repo, e.out, filepath.Join(e.repo, "platform"), filepath.Join(e.repo, "jobs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.write("platform/platform.cue", e2ePlatform)
	e.git("init", "-q", "-b", "main")
	t.Cleanup(e.cleanup)
	return e
}

func (e *e2e) write(path, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.repo, path), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) git(args ...string) {
	e.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t.invalid"}, args...)...)
	cmd.Dir = e.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func (e *e2e) commit(msg string) {
	e.t.Helper()
	e.git("add", "-A")
	e.git("commit", "-q", "--allow-empty", "-m", msg)
}

// job is a batch job that appends a line to out/NAME each time it runs.
func (e *e2e) job(name string, seconds int) string {
	return fmt.Sprintf(`workloads: t: %q: {
	kind: "batch"
	image: "busybox"
	command: ["sh", "-c", "echo ran >> %s/%s; sleep %d"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	maxDuration: "10m"
}
`, name, e.out, name, seconds)
}

func (e *e2e) start() {
	e.t.Helper()
	if e.log == nil {
		f, err := os.Create(filepath.Join(e.state + "-serve.log"))
		if err != nil {
			e.t.Fatal(err)
		}
		e.log = f
	}
	cmd := exec.Command(e.bin, append([]string{"serve", "--repo", e.repo, "--state-dir", e.state, "--listen", "127.0.0.1:0", "--resync", "200ms"}, e.args...)...)
	cmd.Env = append(os.Environ(), e.env...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.serve = cmd
	e.addr = ""
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var info serveInfo
		if b, err := os.ReadFile(filepath.Join(e.state, "serve.json")); err == nil && json.Unmarshal(b, &info) == nil && info.PID == cmd.Process.Pid {
			e.addr, e.info = info.Address, info
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("berth serve did not start:\n%s", e.logs())
}

func (e *e2e) kill() {
	if e.serve != nil && e.serve.Process != nil {
		e.serve.Process.Signal(syscall.SIGKILL)
		e.serve.Wait()
		e.serve = nil
	}
}

func (e *e2e) logs() string {
	b, _ := os.ReadFile(e.state + "-serve.log")
	return string(b)
}

func (e *e2e) cleanup() {
	e.kill()
	// Workloads run under shims that outlive berth; each leads a session.
	filepath.WalkDir(e.state, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "shim.pid" {
			if b, err := os.ReadFile(p); err == nil {
				exec.Command("pkill", "-KILL", "-s", strings.TrimSpace(string(b))).Run()
			}
		}
		return nil
	})
	if e.log != nil {
		e.log.Close()
	}
	if e.t.Failed() {
		e.t.Logf("serve log:\n%s", e.logs())
	}
}

// status asks the running serve for every workload's state.
func (e *e2e) status() map[string]string {
	resp, err := http.Get(e.addr + "/api/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var s statusResponse
	if json.NewDecoder(resp.Body).Decode(&s) != nil {
		return nil
	}
	out := map[string]string{}
	for _, c := range s.Clusters {
		for _, w := range c.Workloads {
			out[w.Key().String()] = w.State
		}
	}
	if len(s.Invalid) > 0 {
		out["invalid"] = s.Invalid[0].Error() // with its positions
	}
	return out
}

func (e *e2e) waitState(key, state string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if st := e.status(); st[key] == state {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s never became %s; status %v", key, state, e.status())
}

// runs counts how often a job ran (the lines it wrote).
func (e *e2e) runs(name string) int {
	f, err := os.Open(filepath.Join(e.out, name))
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}

func TestServeSurvivesSIGKILLWithoutRunningAnythingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and real processes")
	}
	e := newE2E(t)
	e.write("jobs/a.cue", "package jobs\n"+e.job("a", 2))
	e.commit("one job")
	e.start()
	e.waitState("t/a@1", "running")

	// Killed while a runs; the new serve adopts it and sees it finish.
	e.kill()
	e.start()
	e.waitState("t/a@1", "succeeded")

	// Killed at various points right after commits.
	names := []string{}
	for i, delay := range []time.Duration{0, 30 * time.Millisecond, 120 * time.Millisecond, 400 * time.Millisecond} {
		name := "j" + strconv.Itoa(i)
		names = append(names, name)
		e.write("jobs/"+name+".cue", "package jobs\n"+e.job(name, 1))
		e.commit("add " + name)
		time.Sleep(delay)
		e.kill()
		e.start()
	}
	for _, n := range names {
		e.waitState("t/"+n+"@1", "succeeded")
	}
	// Several resyncs later, nothing ran twice.
	time.Sleep(time.Second)
	for _, n := range append(names, "a") {
		if got := e.runs(n); got != 1 {
			t.Errorf("job %s ran %d times, want once", n, got)
		}
	}
}

func TestServeInvalidCommitChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and real processes")
	}
	e := newE2E(t)
	e.write("jobs/svc.cue", fmt.Sprintf(`package jobs
workloads: t: svc: {
	kind: "service", image: "x"
	command: ["sh", "-c", "echo start >> %s/svc; while true; do sleep 1; done"]
	resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
}
`, e.out))
	e.commit("a service")
	e.start()
	e.waitState("t/svc@1", "running")
	// A commit with a type error that also removes the service and adds a
	// job: nothing of it may happen.
	os.Remove(filepath.Join(e.repo, "jobs/svc.cue"))
	e.write("jobs/broken.cue", "package jobs\n"+e.job("never", 1)+"workloads: t: bad: {kind: \"batch\", image: 3}\n")
	e.commit("broken")
	deadline := time.Now().Add(30 * time.Second)
	for e.status()["invalid"] == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if e.status()["invalid"] == "" {
		t.Fatalf("the broken commit was not reported: %v", e.status())
	}
	// The status API says where (its positions), as the log line does.
	invalid := e.status()["invalid"]
	if !strings.Contains(invalid, "\n    jobs/broken.cue:9:36") {
		t.Errorf("/api/status's invalid entry has no file:line:col: %q", invalid)
	}
	if logs := e.logs(); !strings.Contains(logs, "first="+strconv.Quote(invalid)) {
		t.Errorf("/api/status says %q; the log line says otherwise:\n%s", invalid, logs)
	}
	time.Sleep(time.Second)
	if st := e.status(); st["t/svc@1"] != "running" {
		t.Fatalf("the service is %q after a broken commit, want running", st["t/svc@1"])
	}
	if e.runs("never") != 0 || e.runs("svc") != 1 {
		t.Fatalf("a broken commit changed what runs: never ran %d, svc started %d times", e.runs("never"), e.runs("svc"))
	}
}

// BenchmarkCommitToStart measures, with berth serve watching a local Git
// repository, the time from `git commit` to the new workload's process
// running (it creates a file). It reports the median and the 90th
// percentile.
func BenchmarkCommitToStart(b *testing.B) {
	e := newE2E(b)
	e.commit("empty")
	e.start()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("lat%d", i)
		marker := filepath.Join(e.out, name)
		e.write("jobs/"+name+".cue", fmt.Sprintf(`package jobs
workloads: t: %q: {kind: "batch", image: "x", command: ["touch", %q], resources: {cpu: "100m", memory: "64Mi", flavor: "cpu"}}
`, name, marker))
		start := time.Now()
		e.commit("add " + name)
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s did not start in 30 s", name)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.SortFunc(took, func(a, b time.Duration) int {
		return cmp.Compare(a, b)
	})
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Milliseconds()), "p90-ms")
}

// A restarted serve takes every package from the evaluation cache in its
// state directory instead of evaluating it again: the first serve
// evaluates, the second finds them all on disk.
func TestServeRestartReadsEvalCache(t *testing.T) {
	e := newE2E(t)
	e.write("jobs/a.cue", "package jobs\n\n"+e.job("a", 0))
	e.commit("a")
	const evaluated, disk = `berth_eval_packages_total{loader="engine",source="evaluated"}`, `berth_eval_packages_total{loader="engine",source="disk"}`

	e.start() // serve loads the first revision before it listens
	first := scrapeServe(t, e.addr)
	if first[evaluated] != 2 || first[disk] != 0 {
		t.Fatalf("first serve: evaluated %v, from disk %v; want 2 (platform, jobs) and 0", first[evaluated], first[disk])
	}
	e.kill()

	e.start()
	second := scrapeServe(t, e.addr)
	if second[evaluated] != 0 || second[disk] != 2 {
		t.Errorf("restarted serve: evaluated %v, from disk %v; want 0 and 2", second[evaluated], second[disk])
	}
	if !strings.Contains(e.logs(), `"from-disk-cache":2`) && !strings.Contains(e.logs(), "from-disk-cache=2") {
		t.Errorf("the restarted serve's log does not say it loaded 2 packages from the cache")
	}
}
