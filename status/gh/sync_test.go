package gh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/status/gh"
	"github.com/berth-gpu/berth/status/gh/ghfake"
)

const mergeSHA = "5555555555555555555555555555555555555555"

// report is what the engine reports after applying the merge commit,
// with vision/llama-ft in the given state.
func report(phase string) reconcile.Report {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	id := berth.WorkloadID("vision/llama-ft")
	d := berth.Decision{Workload: id, RunID: "1", Team: "vision", Kind: berth.KindTraining, Cluster: "box", GPUs: 4}
	run := reconcile.RunState{RunRecord: reconcile.RunRecord{Workload: id, RunID: "1", Kind: berth.KindTraining, Attempts: 1}}
	switch phase {
	case "queued":
		d.Action, d.Position = berth.ActionQueue, 1
		d.Reason = &berth.Reason{Code: berth.ReasonQuota, Message: "insufficient unused h100 quota in team vision: it asks 4 GPUs; the team uses 5 of nominal 8 and has no cohort to borrow from, so it is short by 1 GPU"}
		run.Phase = reconcile.PhaseQueued
	case "running":
		d.Action, d.Flavor = berth.ActionKeep, "h100"
		d.Placements = []berth.Placement{{Node: "box", GPUs: []int{1, 2}}, {Node: "box", GPUs: []int{3, 4}}}
		run.Phase = reconcile.PhaseRunning
	case "preempted":
		d.Action, d.Position = berth.ActionQueue, 1
		d.Reason = &berth.Reason{Code: berth.ReasonQuota, Message: "waiting for quota"}
		run.Phase, run.Reason = reconcile.PhasePreempted, "preempted by serving/chat-api: its team borrowed h100 quota that team serving takes back"
	case "failed":
		d.Action = berth.ActionDone
		d.Reason = &berth.Reason{Code: berth.ReasonRunFailed, Message: "run 1 failed: OOMKilled"}
		run.Phase, run.Reason, run.FinishedAt = reconcile.PhaseFailed, "OOMKilled", t0.Add(time.Hour)
	}
	return reconcile.Report{
		Revision: reconcile.Revision{Name: "master@sha1:" + mergeSHA, Commit: mergeSHA, Time: t0},
		Applied:  reconcile.Revision{Name: "master@sha1:" + mergeSHA, Commit: mergeSHA, Time: t0},
		Clusters: []reconcile.ClusterReport{{Name: "box", Plan: &berth.Plan{Cluster: "box", Decisions: []*berth.Decision{&d}},
			Observed: &reconcile.Observed{Runs: []reconcile.RunState{run}}}},
	}
}

// TestSyncAfterMerge: after the merge commit is applied, its berth/sync
// status and the pull request's comment follow the workload: queued,
// running, preempted (by whom), failed (why); an unchanged state writes
// nothing; a finished pull request is no longer followed.
func TestSyncAfterMerge(t *testing.T) {
	e := newEnv(t)
	e.fake.UpdatePR(2, func(p *ghfake.PR) { p.State, p.Merged, p.MergeSHA = "closed", true, mergeSHA })
	e.fake.SetCommitPRs(mergeSHA, 2)
	clock := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	s := gh.NewSyncReporter(gh.SyncOptions{API: e.client, Workloads: e.planner.MergedWorkloads, Now: func() time.Time { return clock }})
	ctx := context.Background()

	step := func(phase string) []string {
		t.Helper()
		if err := s.Sync(ctx, report(phase)); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range e.fake.Requests() {
			if r.Method != "GET" {
				out = append(out, r.Method+" "+r.Path)
			}
		}
		return out
	}
	state := func() string {
		st := e.fake.Statuses(mergeSHA)[0]
		return st.Context + " " + st.State + ": " + st.Description
	}

	if w := step("queued"); len(w) != 2 {
		t.Fatalf("first sync writes a status and a comment: %v", w)
	}
	if got := state(); got != "berth/sync: box pending: 1 queued" {
		t.Errorf("%s", got)
	}
	if w := step("queued"); len(w) != 0 {
		t.Errorf("an unchanged state wrote %v", w)
	}
	clock = clock.Add(2 * time.Minute)
	step("running")
	if got := state(); got != "berth/sync: box pending: 1 running" {
		t.Errorf("%s", got)
	}
	clock = clock.Add(30 * time.Minute)
	step("preempted")
	if got := state(); got != "berth/sync: box pending: 1 preempted" {
		t.Errorf("%s", got)
	}
	clock = clock.Add(30 * time.Minute)
	step("failed")
	if got := state(); got != "berth/sync: box failure: vision/llama-ft failed: OOMKilled (1 failed)" {
		t.Errorf("%s", got)
	}
	comments := e.fake.Comments(2)
	if len(comments) != 1 {
		t.Fatalf("%d comments", len(comments))
	}
	golden(t, "sync-comment.golden", comments[0].Body)
	if diff := cmp.Diff([]int(nil), s.Tracked()); diff != "" {
		t.Errorf("still following: %s", diff)
	}
	if w := step("failed"); len(w) != 0 {
		t.Errorf("a finished pull request was written again: %v", w)
	}
	if !strings.Contains(comments[0].Body, "preempted 10:32 (by serving/chat-api:") {
		t.Error("the comment does not say who preempted it")
	}
}

// TestSyncClusterError: a cluster that failed says so with error, not
// failure.
func TestSyncClusterError(t *testing.T) {
	e := newEnv(t)
	s := gh.NewSyncReporter(gh.SyncOptions{API: e.client})
	e.fake.UpdatePR(2, func(p *ghfake.PR) { p.State, p.Merged, p.MergeSHA = "closed", true, mergeSHA })
	pr, err := e.client.PullRequest(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Track(pr, map[string][]berth.WorkloadID{"box": {"vision/llama-ft"}})
	r := report("queued")
	r.Clusters[0].Err = errors.New("cluster box: observe: ledger locked")
	if err := s.Sync(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if st := e.fake.Statuses(mergeSHA)[0]; st.State != "error" {
		t.Errorf("status %+v", st)
	}
}

// TestReportNeverBlocks: the engine's Report returns at once, keeping only
// the latest report for Run.
func TestReportNeverBlocks(t *testing.T) {
	s := gh.NewSyncReporter(gh.SyncOptions{API: nil})
	done := make(chan struct{})
	go func() {
		for range 100 {
			s.Report(context.Background(), report("queued"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Report blocked")
	}
}
