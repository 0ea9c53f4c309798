package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/berth-gpu/berth/fixtures/testenv"
)

// These tests drive the dashboard in a real headless Chromium (Debian's
// chromium package) against a real berth serve on the demo repository.
// They skip where chromium is missing, except under CI=true.

var screenshots = flag.Bool("screenshots", false, "rewrite status/dash/screenshots/*.png from the browser test")

// chromiumPath is the browser: $BERTH_CHROMIUM, else chromium on $PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("BERTH_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", &testenv.MissingError{Component: "chromium (apt-get install chromium)", Looked: "$BERTH_CHROMIUM and $PATH"}
}

// newBrowser starts a headless Chromium and returns a tab's context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := chromiumPath()
	testenv.SkipOrFail(t, err)
	// Not t.TempDir: Chromium's helpers may still write into the profile
	// just after the browser is gone, and its removal is best effort.
	profile, err := os.MkdirTemp("", "berth-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute) // loaded CI machines
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// newDemoServe runs berth serve on a Git repository made from
// fixtures/repos/demo, and a second commit that queues vision/big-sweep.
func newDemoServe(t *testing.T) *e2e {
	t.Helper()
	root := t.TempDir()
	e := &e2e{t: t, bin: berthBinary(t), repo: filepath.Join(root, "repo"), state: filepath.Join(root, "state"), out: filepath.Join(root, "out")}
	t.Cleanup(e.cleanup)
	if out, err := exec.Command("cp", "-r", "../../fixtures/repos/demo", e.repo).CombinedOutput(); err != nil {
		t.Fatalf("copy the demo repository: %v\n%s", err, out)
	}
	e.git("init", "-q", "-b", "main")
	e.commit("demo")
	e.args = []string{"--history-bill-every", "1s"} // GPU-hours show at once
	e.start()
	e.waitState("vision/resnet-train@1", "running")
	e.waitState("nlp/prepare-data@1", "succeeded")
	// As make demo does: a sweep larger than the quota left waits.
	e.write("workloads/vision/sweeps.cue", `package vision

import "example.com/gpu-platform/templates"

workloads: vision: "big-sweep": templates.#Job & {
	command: ["sh", "-c", "echo big sweep; sleep 30"]
	resources: {gpu: 5, cpu: 16, memory: "128Gi"}
	maxDuration: "2h"
}
`)
	e.commit("vision: a sweep")
	e.waitState("vision/big-sweep@1", "queued")
	return e
}

// apiRuns are the runs /api/status lists, as "team/name run", with their
// teams.
func apiRuns(t *testing.T, addr string) (runs []string, team map[string]string) {
	t.Helper()
	resp, err := http.Get(addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s statusResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	team = map[string]string{}
	for _, c := range s.Clusters {
		for _, w := range c.Workloads {
			k := string(w.Workload) + " " + w.RunID
			runs = append(runs, k)
			team[k] = w.Team
		}
	}
	return runs, team
}

// tableRows reads the workloads table as "team/name run" lines, and the
// count line above it.
func tableRows(t *testing.T, ctx context.Context) ([]string, string) {
	t.Helper()
	var rows []string
	var count string
	err := chromedp.Run(ctx,
		chromedp.WaitVisible("#workloads", chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#workloads tbody tr")).map(r => r.cells[0].innerText + " " + r.cells[1].innerText)`, &rows),
		chromedp.Text("#count", &count, chromedp.ByQuery))
	if err != nil {
		t.Fatal(err)
	}
	return rows, count
}

func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and a browser")
	}
	ctx := newBrowser(t)
	e := newDemoServe(t)
	shots := map[string][]byte{}

	// The same serve's /metrics, parsed: vision's sweep waits, and its
	// team's quota and GPUs are there by flavor.
	metrics := scrapeServe(t, e.addr)
	for _, m := range []string{
		`berth_queue_length{cluster="box",flavor="",team="vision"} 1`,
		`berth_quota_nominal{cluster="box",flavor="h100",resource="gpu",team="vision"} 3`,
		`berth_admitted_gpus{cluster="box",flavor="h100",team="vision"} 2`,
	} {
		name, value, _ := strings.Cut(m, " ")
		if got, ok := metrics[name]; !ok || fmt.Sprint(got) != value {
			t.Errorf("/metrics: %s = %v (present %v), want %s", name, got, ok, value)
		}
	}

	// Every run the API lists is a row, once, in the API's order.
	if err := chromedp.Run(ctx, chromedp.Navigate(e.addr+"/")); err != nil {
		t.Fatal(err)
	}
	rows, count := tableRows(t, ctx)
	want, teams := apiRuns(t, e.addr)
	if !slices.Equal(rows, want) {
		t.Errorf("the table's rows:\n%v\nthe API's runs:\n%v", rows, want)
	}
	if wantCount := fmt.Sprintf("runs 1–%d of %d", len(want), len(want)); count != wantCount {
		t.Errorf("count %q, want %q", count, wantCount)
	}
	var sweep string
	if err := chromedp.Run(ctx, chromedp.Text(`//tr[td/a[text()="vision/big-sweep"]]/td[@data-label="Queue or reason"]`, &sweep, chromedp.BySearch)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sweep, "#1: ") || !strings.Contains(sweep, "quota") {
		t.Errorf("vision/big-sweep's queue cell = %q, want its place (#1) and the quota it waits for", sweep)
	}
	shots["workloads"] = fullScreenshot(t, ctx)

	// A filter chosen in the form: only vision's runs, and all of them.
	var url string
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#filter-team", "vision", chromedp.ByQuery),
		chromedp.Click("#apply", chromedp.ByQuery),
		chromedp.WaitVisible(`//p[@id="count"][contains(., "in all")]`, chromedp.BySearch),
		chromedp.Location(&url)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(url, "team=vision") {
		t.Errorf("after filtering, the address is %s", url)
	}
	rows, _ = tableRows(t, ctx)
	var vision []string
	for _, k := range want {
		if teams[k] == "vision" {
			vision = append(vision, k)
		}
	}
	if !slices.Equal(rows, vision) || len(vision) == 0 {
		t.Errorf("filtered to team vision, the rows are %v; want %v", rows, vision)
	}

	// Pages of 3: the next link shows the next three, then the rest.
	if err := chromedp.Run(ctx, chromedp.Navigate(e.addr+"/?per=3")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for page := 1; ; page++ {
		rows, count := tableRows(t, ctx)
		if len(rows) == 0 || len(rows) > 3 {
			t.Fatalf("page %d has %d rows, want 1 to 3", page, len(rows))
		}
		if wantCount := fmt.Sprintf("runs %d–%d of %d", len(seen)+1, len(seen)+len(rows), len(want)); count != wantCount {
			t.Errorf("page %d: count %q, want %q", page, count, wantCount)
		}
		seen = append(seen, rows...)
		var hasNext bool
		if err := chromedp.Run(ctx, chromedp.Evaluate(`document.getElementById("next") !== null`, &hasNext)); err != nil {
			t.Fatal(err)
		}
		if !hasNext {
			break
		}
		if err := chromedp.Run(ctx, chromedp.Click("#next", chromedp.ByQuery), chromedp.WaitVisible(fmt.Sprintf(`//nav[@class="pages"]/span[text()="page %d of %d"]`, page+1, (len(want)+2)/3), chromedp.BySearch)); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("the pages together list %v; want %v", seen, want)
	}

	// A workload's page: its history and its output.
	var life, logs string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/"),
		chromedp.Click(`//a[text()="vision/resnet-train"]`, chromedp.BySearch),
		chromedp.WaitVisible(".lifecycle", chromedp.ByQuery),
		chromedp.Text(".run.selected .lifecycle", &life, chromedp.ByQuery),
		chromedp.Text("#logs", &logs, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"decided: admit", "running", "attempt 1"} { // from the history
		if !strings.Contains(life, w) {
			t.Errorf("vision/resnet-train's lifecycle does not say %q:\n%s", w, life)
		}
	}
	if !strings.Contains(logs, "worker 0 of") {
		t.Errorf("vision/resnet-train's log tail = %q, want what it printed", logs)
	}
	shots["workload"] = fullScreenshot(t, ctx)

	// The queues page: the line, and each team's quota.
	var pending []string
	var quotaTeams []string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/queues"),
		chromedp.WaitVisible(".pending", chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll(".pending tbody tr")).map(r => r.cells[0].innerText + " " + r.cells[1].innerText)`, &pending),
		chromedp.Evaluate(`[...new Set(Array.from(document.querySelectorAll(".quota tbody tr")).map(r => r.cells[0].innerText))]`, &quotaTeams)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pending, "#1 vision/big-sweep") {
		t.Errorf("the pending table is %v; want vision/big-sweep first in line", pending)
	}
	if !slices.Equal(quotaTeams, []string{"nlp", "vision", "serving"}) {
		t.Errorf("the quota tables list teams %v; want the research cohort's nlp and vision, then serving", quotaTeams)
	}
	shots["queues"] = fullScreenshot(t, ctx)

	checkHistoryPages(t, ctx, e, shots)

	// At a phone's width nothing is wider than the screen.
	for _, page := range []string{"/", "/workloads/vision/resnet-train", "/queues", "/gpus", "/teams", "/audit"} {
		var fits bool
		if err := chromedp.Run(ctx,
			chromedp.EmulateViewport(390, 844),
			chromedp.Navigate(e.addr+page),
			chromedp.WaitVisible("main", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth <= window.innerWidth`, &fits)); err != nil {
			t.Fatal(err)
		}
		if !fits {
			t.Errorf("%s is wider than a 390px screen", page)
		}
	}
	if err := chromedp.Run(ctx, chromedp.Navigate(e.addr+"/")); err != nil {
		t.Fatal(err)
	}
	shots["workloads-phone"] = fullScreenshot(t, ctx)

	if *screenshots {
		dir := "../../status/dash/screenshots"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, png := range shots {
			if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkHistoryPages: the GPUs page says which run holds which GPU and
// plots the node; the teams page bills vision's running GPUs; the audit
// page lists the runs' events, its filter keeps only what it names, and
// its exports hold the same events.
func checkHistoryPages(t *testing.T, ctx context.Context, e *e2e, shots map[string][]byte) {
	t.Helper()
	// resnet-train is billed and sampled by now: the serve bills every
	// second and reads the GPUs at its first reconcile.
	time.Sleep(2 * time.Second)
	var held []string
	var plots int
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/gpus"),
		chromedp.WaitVisible("table.gpus", chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("table.gpus tbody tr")).map(r => r.cells[0].innerText + " " + r.cells[3].innerText)`, &held),
		chromedp.Evaluate(`document.querySelectorAll("svg.chart polyline").length`, &plots)); err != nil {
		t.Fatal(err)
	}
	resnet := 0
	for _, h := range held {
		if strings.Contains(h, "vision/resnet-train@1 (whole)") {
			resnet++
		}
	}
	if resnet != 2 || plots != 2 {
		t.Errorf("GPUs page: %d GPUs held by vision/resnet-train@1 (want 2) in %v; %d plot lines (want allocation and utilisation)", resnet, held, plots)
	}
	checkGPUReadings(t, ctx, e)
	shots["gpus"] = fullScreenshot(t, ctx)

	var month string
	var bars int
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/teams"),
		chromedp.WaitVisible("#team-vision", chromedp.ByQuery),
		chromedp.Text("#team-vision .month", &month, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#usage-vision rect").length`, &bars)); err != nil {
		t.Fatal(err)
	}
	if h, err := strconv.ParseFloat(strings.Fields(month)[0], 64); err != nil || h <= 0 || !strings.Contains(month, "of a budget of 2000") {
		t.Errorf("vision this month: %q, want GPU-hours billed, of its budget of 2000", month)
	}
	if _, _, day := time.Now().UTC().Date(); bars != day {
		t.Errorf("vision's chart has %d bars, want one per day of the month so far (%d)", bars, day)
	}
	shots["teams"] = fullScreenshot(t, ctx)

	var types []string
	var jsonHref, csvHref string
	var ok bool
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/audit"),
		chromedp.WaitVisible("#audit", chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#audit tbody tr")).some(r => r.cells[2].innerText == "vision/resnet-train@1" && r.cells[3].innerText == "running")`, &ok)); err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Error("the audit page does not show vision/resnet-train@1 running")
	}
	shots["audit"] = fullScreenshot(t, ctx)
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#filter-type", "lifecycle", chromedp.ByQuery),
		chromedp.SetValue("#filter-team", "vision", chromedp.ByQuery),
		chromedp.Click("#apply", chromedp.ByQuery),
		chromedp.WaitReady(`//select[@id="filter-type"]/option[@value="lifecycle"][@selected]`, chromedp.BySearch),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#audit tbody tr")).map(r => r.cells[1].innerText + " " + r.cells[2].innerText.split("/")[0])`, &types),
		chromedp.AttributeValue("#export-json", "href", &jsonHref, nil, chromedp.ByQuery),
		chromedp.AttributeValue("#export-csv", "href", &csvHref, nil, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if len(types) == 0 || slices.ContainsFunc(types, func(s string) bool { return s != "lifecycle vision" }) {
		t.Errorf("filtered to vision's lifecycle, the audit rows are %v", types)
	}
	var evs []map[string]any
	if err := e.getJSON(jsonHref, &evs); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.addr + csvHref)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < len(types) || len(records) != len(evs)+1 || !slices.Equal(records[0], eventColumns) {
		t.Errorf("exports: %d JSON events, %d CSV lines (header %v) for the %d rows shown", len(evs), len(records), records[0], len(types))
	}
}

// checkGPUReadings: the demo's simulated H100s (go-nvml's mocks of idle
// H100s where berth-nvml runs, the same figures where it does not) show
// their power draw and temperature on the GPUs page, the MIG-mode GPU
// too (the board's), and /metrics has them by cluster, node and GPU.
func checkGPUReadings(t *testing.T, ctx context.Context, e *e2e) {
	t.Helper()
	var readings []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll("table.gpus tbody tr")).map(r =>
		r.cells[0].innerText + " " + r.querySelector('td[data-label="Power"]').innerText + ", " + r.querySelector('td[data-label="Temperature"]').innerText)`, &readings)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 8 {
		want = append(want, fmt.Sprintf("%d 70 W of 700, 31 °C", i))
	}
	if !slices.Equal(readings, want) {
		t.Errorf("GPUs page: power and temperature per GPU are %q, want %q", readings, want)
	}
	metrics := scrapeServe(t, e.addr)
	for gpu := range 8 {
		for name, v := range map[string]float64{"berth_gpu_power_watts": 70, "berth_gpu_power_limit_watts": 700, "berth_gpu_temperature_celsius": 31} {
			found := false
			for k, got := range metrics {
				if strings.HasPrefix(k, name+`{cluster="box",gpu="`+strconv.Itoa(gpu)+`",node=`) {
					found = true
					if got != v {
						t.Errorf("/metrics: %s = %v, want %v", k, got, v)
					}
				}
			}
			if !found {
				t.Errorf("/metrics: no %s for GPU %d of cluster box", name, gpu)
			}
		}
	}
}

func fullScreenshot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatal(err)
	}
	return png
}

// scrapeServe reads a serve's /metrics with the Prometheus text parser:
// each gauge or counter as name{label="value",...} (labels sorted) ->
// value.
func scrapeServe(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// Off loopback the pages need the token: a browser is sent to sign in,
// signs in with the token in the form, and reads the page it asked for
// with the session cookie it got.
func TestDashboardSignInInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and a browser")
	}
	ctx := newBrowser(t)
	e := newE2E(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.write("jobs/a.cue", "package jobs\n"+e.job("a", 1))
	e.commit("a")
	e.args = []string{"--api-token-file", tokenFile}
	e.start()
	var loc, title string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(e.addr+"/teams"),
		chromedp.WaitVisible("#token", chromedp.ByQuery),
		chromedp.Location(&loc)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/login?next=%2Fteams") {
		t.Errorf("without a session /teams went to %s, want the sign-in page", loc)
	}
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#token", "s3cret-token", chromedp.ByQuery),
		chromedp.Click("#sign-in", chromedp.ByQuery),
		chromedp.WaitVisible("#team-t", chromedp.ByQuery),
		chromedp.Location(&loc),
		chromedp.Title(&title)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/teams") || title != "Teams · berth" {
		t.Errorf("after signing in: %s %q, want the teams page", loc, title)
	}
}
