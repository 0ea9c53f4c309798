package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth/reconcile"
)

// getJSON decodes what the running serve answers at path.
func (e *e2e) getJSON(path string, v any) error {
	resp, err := http.Get(e.addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// A run that held 2 GPUs is billed to its team exactly 2 x the time the
// cluster measured it ran, though berth serve was SIGKILLed while it ran
// and restarted; the run's own clock agrees with that time.
func TestGPUHoursBilledExactlyAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and real processes")
	}
	e := newE2E(t)
	e.write("jobs/train.cue", `package jobs
workloads: t: train: {
	kind: "training"
	image: "x"
	command: ["sh", "-c", "date +%s.%N > `+e.out+`/start; sleep 3; date +%s.%N > `+e.out+`/end"]
	resources: {cpu: 1, memory: "1Gi", gpu: 2, flavor: "h100"}
	maxDuration: "10m"
}
`)
	e.commit("Merge pull request #7 from ana/train")
	e.args = []string{"--history-bill-every", "100ms"} // bills before the kill
	e.start()
	e.waitState("t/train@1", "running")
	time.Sleep(700 * time.Millisecond) // billed a while by the first serve
	e.kill()
	time.Sleep(700 * time.Millisecond) // ran on with no berth at all
	e.start()
	e.waitState("t/train@1", "succeeded")

	var st statusResponse
	if err := e.getJSON("/api/status?plans=1", &st); err != nil {
		t.Fatal(err)
	}
	var run reconcile.RunState
	for _, r := range st.Clusters[0].Runs {
		if r.Key().String() == "t/train@1" {
			run = r
		}
	}
	held := run.FinishedAt.Sub(run.StartedAt)
	if held < 3*time.Second {
		t.Fatalf("run held its GPUs %v (%+v)", held, run)
	}
	want := 2000 * held.Milliseconds()
	var u usageResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := e.getJSON("/api/usage", &u); err != nil {
			t.Fatal(err)
		}
		if len(u.Teams) == 1 && u.Teams[0].MilliGPUMillis == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(u.Teams) != 1 || u.Teams[0].Team != "t" || u.Teams[0].MilliGPUMillis != want {
		t.Fatalf("billed %+v; want team t billed 2 GPUs x %v = %d milli-GPU-ms", u.Teams, held, want)
	}
	t.Logf("billed %.6f GPU-hours: 2 GPUs x %v", u.Teams[0].GPUHours, held)

	// The run's own clock: what it measured between its first and last
	// line is within the time berth billed.
	read := func(name string) float64 {
		b, err := os.ReadFile(filepath.Join(e.out, name))
		if err != nil {
			t.Fatal(err)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if measured := time.Duration((read("end") - read("start")) * float64(time.Second)); measured > held {
		t.Errorf("the run measured %v itself, more than the %v billed", measured, held)
	}

	// The history kept its lifecycle and the pull request it came from.
	var evs []struct {
		Type, What string
		PR         int
	}
	if err := e.getJSON("/api/events?workload=t/train&type=lifecycle", &evs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.What+" #"+strconv.Itoa(ev.PR))
	}
	if g := strings.Join(got, ", "); !strings.HasSuffix(g, "running #7, succeeded #7") {
		t.Errorf("lifecycle %q, want it to end running #7, succeeded #7", g)
	}
}

// berth usage prints the same figures as a table, CSV and JSON, and
// berth status -o json carries them.
func TestUsageCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts berth serve and real processes")
	}
	e := newE2E(t)
	e.write("jobs/a.cue", `package jobs
workloads: t: a: {
	kind: "batch", image: "x", command: ["sleep", "1"]
	resources: {cpu: 1, memory: "1Gi", gpu: 2, flavor: "h100"}
	maxDuration: "10m"
}
`)
	e.commit("a")
	e.start()
	e.waitState("t/a@1", "succeeded")
	var want usageResponse
	deadline := time.Now().Add(10 * time.Second)
	for len(want.Rows) == 0 && time.Now().Before(deadline) {
		if err := e.getJSON("/api/usage", &want); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(want.Rows) != 1 || want.Rows[0].MilliGPUMillis < 2000*1000 {
		t.Fatalf("usage %+v: want one row of at least 2 GPU-seconds", want)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(e.bin, append(args, "--server", e.addr)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	r := want.Rows[0]
	csvLine := fmt.Sprintf("%s,t,box,h100,%s,%d", r.Day, strconv.FormatFloat(r.GPUHours, 'f', -1, 64), r.MilliGPUMillis)
	if got := run("usage", "-o", "csv"); got != "day,team,cluster,flavor,gpu_hours,milli_gpu_millis\n"+csvLine+"\n" {
		t.Errorf("usage -o csv:\n%s\nwant the row %s", got, csvLine)
	}
	if got := run("usage"); !regexp.MustCompile(`(?m)^t +` + regexp.QuoteMeta(gpuHoursText(r.GPUHours)) + ` +1$`).MatchString(got) {
		t.Errorf("usage:\n%s\nwant team t with %s", got, gpuHoursText(r.GPUHours))
	}
	var st statusResponse
	if err := json.Unmarshal([]byte(run("status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Usage == nil || len(st.Usage.Teams) != 1 || st.Usage.Teams[0].MilliGPUMillis != r.MilliGPUMillis {
		t.Errorf("status -o json usage %+v, want team t's %d", st.Usage, r.MilliGPUMillis)
	}
	if out, err := exec.Command(e.bin, "usage", "--from", "2026-13-01", "--server", e.addr).CombinedOutput(); err == nil || !strings.Contains(string(out), `--from "2026-13-01" is not a day`) {
		t.Errorf("usage --from 2026-13-01: %v\n%s", err, out)
	}
}
