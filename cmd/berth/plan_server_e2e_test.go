package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-gpu/berth"
)

// berth plan --server and berth snapshot of a local cluster: the plan is
// made by the same step the engine decides with, from what the engine
// observed, so it knows what only the ledger knows (a failed run's
// backoff, the queue's order).
func TestPlanFromARunningServe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs berth serve")
	}
	e := newE2E(t)
	e.write("jobs/jobs.cue", `package jobs

workloads: t: big: {
	kind: "batch", image: "x", command: ["sleep", "600"], maxDuration: "1h"
	resources: {gpu: 4, flavor: "h100"}
}
workloads: t: next: {
	kind: "batch", image: "x", command: ["true"]
	resources: {gpu: 2, flavor: "h100"}
}
workloads: t: flaky: {
	kind: "batch", image: "x", command: ["sh", "-c", "exit 3"], retries: 2
	resources: {cpu: 1, flavor: "cpu"}
}
`)
	e.commit("jobs")
	e.start()
	e.waitState("t/big@1", "running")
	e.waitState("t/flaky@1", "waiting")

	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(e.bin, args...)
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("berth %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	decisions := func(out []byte) map[berth.WorkloadID]berth.Decision {
		t.Helper()
		var plans []*berth.Plan
		if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
			t.Fatalf("plan -o json: %v (%d plans)\n%s", err, len(plans), out)
		}
		m := map[berth.WorkloadID]berth.Decision{}
		for _, d := range plans[0].Decisions {
			m[d.Workload] = *d
		}
		return m
	}
	check := func(how string, ds map[berth.WorkloadID]berth.Decision) {
		t.Helper()
		want := map[berth.WorkloadID]struct {
			action berth.Action
			code   berth.ReasonCode
		}{
			"t/big":   {berth.ActionKeep, ""},
			"t/next":  {berth.ActionQueue, berth.ReasonQuota},
			"t/flaky": {berth.ActionWait, berth.ReasonBackoff},
		}
		for id, w := range want {
			d := ds[id]
			code := berth.ReasonCode("")
			if d.Reason != nil {
				code = d.Reason.Code
			}
			if d.Action != w.action || code != w.code {
				t.Errorf("%s: %s: %s %s (%+v), want %s %s", how, id, d.Action, code, d.Reason, w.action, w.code)
			}
		}
	}

	check("plan --server", decisions(run("plan", e.repo, "--server", e.addr, "-o", "json")))

	snap := filepath.Join(t.TempDir(), "box.json")
	run("snapshot", e.repo, "--cluster", "box", "--state-dir", e.state, "--file", snap)
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	var s berth.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var flaky *berth.QueuedWorkload
	for i, q := range s.Queue {
		if q.Workload == "t/flaky" {
			flaky = &s.Queue[i]
		}
	}
	if flaky == nil || flaky.Failures < 1 || flaky.FailedAt.IsZero() || flaky.Failure != "exit code 3" {
		t.Fatalf("snapshot's queue: %+v; want t/flaky waiting after a failure (exit code 3)", s.Queue)
	}
	check("plan --snapshot", decisions(run("plan", e.repo, "--snapshot", snap, "-o", "json")))
}
