package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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
