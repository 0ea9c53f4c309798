package dash

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/golden"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

var update = flag.Bool("update", false, "rewrite status/dash/testdata/*.html")

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// cluster builds a cluster's plan and runs; Workloads is then computed by
// status.Workloads, as /api/status computes it.
type clusterBuilder struct {
	name    string
	plan    berth.Plan
	runs    []reconcile.RunState
	nodes   []berth.Node
	running []berth.RunningWorkload
}

func newCluster(name string) *clusterBuilder {
	return &clusterBuilder{name: name, plan: berth.Plan{Cluster: name, Time: t0}}
}

func (b *clusterBuilder) decide(d berth.Decision) *clusterBuilder {
	d.Cluster = b.name
	d.Team = d.Workload.Team()
	if d.RunID == "" {
		d.RunID = "1"
	}
	b.plan.Decisions = append(b.plan.Decisions, &d)
	return b
}

func (b *clusterBuilder) run(r reconcile.RunState) *clusterBuilder {
	if r.RunID == "" {
		r.RunID = "1"
	}
	b.runs = append(b.runs, r)
	return b
}

func (b *clusterBuilder) quota(q berth.QuotaUse) *clusterBuilder {
	b.plan.Quota = append(b.plan.Quota, q)
	return b
}

func (b *clusterBuilder) obj() Cluster {
	return Cluster{Name: b.name, Workloads: status.Workloads(b.name, &b.plan, b.runs), Runs: b.runs, Plan: &b.plan, Nodes: b.nodes, Running: b.running}
}

func ptr[T any](v T) *T { return &v }

// demoData is two clusters with a workload in every state the pages draw.
func demoData() Data {
	box := newCluster("box").
		decide(berth.Decision{Workload: "vision/train", Kind: berth.KindTraining, Action: berth.ActionKeep, Flavor: "h100", GPUs: 4,
			Priority: 100, PriorityTier: "normal", Since: t0.Add(-2 * time.Hour), Placements: []berth.Placement{{Node: "box"}}}).
		run(reconcile.RunState{RunRecord: reconcile.RunRecord{Workload: "vision/train", Kind: berth.KindTraining, Flavor: "h100",
			QueuedSince: t0.Add(-3 * time.Hour), Attempts: 2, Preemptions: 1, Placements: []berth.Placement{{Node: "box"}}},
			Phase: reconcile.PhaseRunning, StartedAt: t0.Add(-2 * time.Hour), Pods: 1, PodsRunning: 1}).
		decide(berth.Decision{Workload: "vision/sweep", Kind: berth.KindBatch, Action: berth.ActionQueue, GPUs: 4, Position: 1,
			Priority: 100, PriorityTier: "normal", Since: t0.Add(-20 * time.Minute), EstimatedStart: ptr(t0.Add(4 * time.Hour)),
			Reason: &berth.Reason{Code: berth.ReasonQuota, Message: "insufficient unused h100 quota in team vision: <4 more> needed"}}).
		decide(berth.Decision{Workload: "nlp/eval", Kind: berth.KindBatch, Action: berth.ActionQueue, GPUs: 2, Position: 2,
			Priority: 50, Since: t0.Add(-5 * time.Minute),
			Reason: &berth.Reason{Code: berth.ReasonCapacity, Message: "no node has 2 free h100 GPUs"}}).
		decide(berth.Decision{Workload: "nlp/huge", Kind: berth.KindTraining, Action: berth.ActionReject, GPUs: 64,
			Reason: &berth.Reason{Code: berth.ReasonExceedsQuota, Message: "64 GPUs can never fit in team nlp's 8 plus its borrowing limit 4"}}).
		decide(berth.Decision{Workload: "serving/api", Kind: berth.KindService, Action: berth.ActionKeep, GPUs: 1, MIG: "1g.10gb",
			Flavor: "h100-1g", Since: t0.Add(-48 * time.Hour)}).
		run(reconcile.RunState{RunRecord: reconcile.RunRecord{Workload: "serving/api", Kind: berth.KindService, Flavor: "h100-1g", Attempts: 1},
			Phase: reconcile.PhaseRunning, StartedAt: t0.Add(-48 * time.Hour), Pods: 2, PodsRunning: 2}).
		run(reconcile.RunState{RunRecord: reconcile.RunRecord{Workload: "nlp/prep", Kind: berth.KindBatch, Flavor: "cpu", Attempts: 3,
			QueuedSince: t0.Add(-90 * time.Minute)}, Phase: reconcile.PhaseFailed, Reason: "exit code 2",
			StartedAt: t0.Add(-80 * time.Minute), FinishedAt: t0.Add(-70 * time.Minute)}).
		quota(berth.QuotaUse{Team: "vision", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 4000, BorrowingLimit: ptr[int64](2000), UsedBefore: 4000, UsedAfter: 4000}).
		quota(berth.QuotaUse{Team: "nlp", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 2000, UsedAfter: 3000, BorrowedAfter: 1000}).
		quota(berth.QuotaUse{Team: "nlp", Flavor: "h100", Resource: berth.ResourceMemory, Nominal: 64 << 30, UsedAfter: 16 << 30}).
		quota(berth.QuotaUse{Team: "serving", Flavor: "h100-1g", Resource: berth.ResourceGPU, Nominal: 2000, UsedAfter: 1000})
	lab := newCluster("lab").
		decide(berth.Decision{Workload: "vision/notebook", Kind: berth.KindNotebook, Action: berth.ActionWait,
			Reason: &berth.Reason{Code: berth.ReasonSchedule, Message: "next tick at 2026-03-01 12:00 UTC"}}).
		decide(berth.Decision{Workload: "nlp/eval", Kind: berth.KindBatch, Action: berth.ActionDone, Since: t0.Add(-time.Hour)}).
		run(reconcile.RunState{RunRecord: reconcile.RunRecord{Workload: "nlp/eval", Kind: berth.KindBatch, Flavor: "cpu", Attempts: 1},
			Phase: reconcile.PhaseSucceeded, StartedAt: t0.Add(-2 * time.Hour), FinishedAt: t0.Add(-time.Hour)})
	box.nodes = []berth.Node{{Name: "box", Ready: true, GPUs: 4, GPUModel: "NVIDIA H100 80GB HBM3", MIG: []berth.MIGSlices{{GPU: 3, Profile: "1g.10gb", Count: 7}}}}
	box.running = []berth.RunningWorkload{
		{Workload: "vision/train", RunID: "1", Placements: []berth.Placement{{Node: "box", GPUs: []int{0, 1}}}},
		{Workload: "serving/api", RunID: "1", Placements: []berth.Placement{{Node: "box", MIG: []berth.MIGSlice{{GPU: 3, Profile: "1g.10gb"}}}, {Node: "box", MIG: []berth.MIGSlice{{GPU: 3, Profile: "1g.10gb"}}}}},
	}
	box.runs[0].Placements = []berth.Placement{{Node: "box", GPUs: []int{0, 1}}}
	hour := int64(1000 * 3600e3)
	series := map[DeviceKey][]history.Point{}
	for m := range 10 { // vision/train's two GPUs, barely busy; GPU 2 idle
		at := t0.Add(time.Duration(m-10) * time.Minute)
		series[DeviceKey{"box", "box/0"}] = append(series[DeviceKey{"box", "box/0"}], history.Point{Time: at, Utilization: float64(10 + m), Memory: 5, Allocated: 1000})
		series[DeviceKey{"box", "box/1"}] = append(series[DeviceKey{"box", "box/1"}], history.Point{Time: at, Utilization: 4, Memory: 5, Allocated: 1000})
		series[DeviceKey{"box", "box/2"}] = append(series[DeviceKey{"box", "box/2"}], history.Point{Time: at, Utilization: 0, Memory: 0})
	}
	return Data{
		Usage: []history.Usage{
			{UsageKey: history.UsageKey{Day: "2026-02-28", Team: "vision", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 99 * hour},
			{UsageKey: history.UsageKey{Day: "2026-03-01", Team: "nlp", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 3 * hour},
			{UsageKey: history.UsageKey{Day: "2026-03-01", Team: "vision", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 18 * hour},
			{UsageKey: history.UsageKey{Day: "2026-03-01", Team: "vision", Cluster: "lab", Flavor: "h100"}, MilliGPUMillis: hour / 2},
		},
		Series: series,
		Origins: map[string]map[berth.RunKey]history.Origin{"box": {
			{Workload: "vision/train", RunID: "1"}: {Commit: "fedcba9876543210fedcba9876543210fedcba98", PR: 12},
		}},
		Devices: []Device{
			{Cluster: "box", Node: "box", Index: 0, Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, Utilization: 19, MemoryUtilization: 5,
				PowerMilliwatts: 301400, PowerLimitMilliwatts: 700000, TemperatureC: 58},
			{Cluster: "box", Node: "box", Index: 3, Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, Utilization: -1, MemoryUtilization: -1,
				PowerMilliwatts: 88000, PowerLimitMilliwatts: -1, TemperatureC: 36, MIGEnabled: true, MIG: []string{"1g.10gb", "1g.10gb"}},
		},
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Applied: "main@sha1:0123456789abcdef0123456789abcdef01234567",
		Commit: "0123456789abcdef0123456789abcdef01234567", RepoURL: "https://github.com/acme/gpus", Now: t0,
		Clusters: []Cluster{lab.obj(), box.obj()}, // out of order: the pages sort
		Config: &berth.Config{
			Teams: map[string]berth.Team{"vision": {Cohort: "research", GPUHoursPerMonth: 20}, "nlp": {Cohort: "research"}, "serving": {}},
			Workloads: map[berth.WorkloadID]berth.Workload{
				"vision/train": {Pos: berth.Pos{File: "workloads/vision/train.cue", Line: 3, Col: 1}},
				"nlp/eval":     {Pos: berth.Pos{File: "workloads/nlp/pipeline.cue", Line: 21, Col: 1}},
			},
		},
	}
}

// auditEvents are a run's life and the decisions about it, as the history
// returns them (oldest first).
func auditEvents() []history.Event {
	rev := func(e history.Event) history.Event {
		e.Revision, e.Commit, e.PR, e.MergedBy = "main@sha1:0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567", 12, "Ana <ana@example.com>"
		e.Team, e.Cluster, e.Workload, e.RunID = "vision", "box", "vision/train", "1"
		return e
	}
	return []history.Event{
		rev(history.Event{Time: t0.Add(-3 * time.Hour), Type: history.EventDecision, What: "queue", Reason: "insufficient unused h100 quota in team vision: <2 more> needed", GPUs: 2}),
		rev(history.Event{Time: t0.Add(-3 * time.Hour), Type: history.EventLifecycle, What: "queued"}),
		rev(history.Event{Time: t0.Add(-2 * time.Hour), Type: history.EventDecision, What: "admit", GPUs: 2, Flavor: "h100"}),
		rev(history.Event{Time: t0.Add(-2 * time.Hour), Type: history.EventChange, What: "start created", GPUs: 2, Flavor: "h100"}),
		rev(history.Event{Time: t0.Add(-2 * time.Hour), Type: history.EventLifecycle, What: "running", Attempt: 2, GPUs: 2, Flavor: "h100"}),
	}
}

func draw(t *testing.T, f func(*bytes.Buffer) error) string {
	t.Helper()
	var buf bytes.Buffer
	if err := f(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestPagesGolden(t *testing.T) {
	d := demoData()
	for _, tc := range []struct {
		name string
		draw func(*bytes.Buffer) error
	}{
		{"workloads", func(b *bytes.Buffer) error { return Workloads(b, d, Query{Page: 1}) }},
		{"workloads-filtered", func(b *bytes.Buffer) error { return Workloads(b, d, Query{Team: "nlp", Kind: "batch", Page: 1}) }},
		{"workloads-page2", func(b *bytes.Buffer) error { return Workloads(b, d, Query{Page: 2, PerPage: 3}) }},
		{"workload", func(b *bytes.Buffer) error {
			return Workload(b, d, WorkloadPage{Workload: "vision/train", Cluster: "box", RunID: "1", History: auditEvents()},
				LogTail{Source: "run 1 attempt 2 pod 0, standard output", Lines: []string{"step 100 loss 0.31", "step 200 <loss> 0.27"}, Truncated: true})
		}},
		{"workload-two-clusters", func(b *bytes.Buffer) error {
			return Workload(b, d, WorkloadPage{Workload: "nlp/eval", Cluster: "lab"}, LogTail{Missing: "no run of it has started on this machine yet"})
		}},
		{"queues", func(b *bytes.Buffer) error { return Queues(b, d) }},
		{"gpus", func(b *bytes.Buffer) error { return GPUs(b, d) }},
		{"teams", func(b *bytes.Buffer) error { return Teams(b, d) }},
		{"audit", func(b *bytes.Buffer) error { return Audit(b, d, AuditQuery{Team: "vision"}, auditEvents()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := draw(t, tc.draw)
			golden.Check(t, filepath.Join("testdata", tc.name+".html"), []byte(got), *update)
			again := draw(t, tc.draw)
			if again != got {
				t.Error("the same values drew a different page the second time")
			}
		})
	}
}

// rows are the workload names of the table's rows, in order.
func rows(page string) []string {
	var out []string
	_, body, _ := strings.Cut(page, `<tbody>`)
	body, _, _ = strings.Cut(body, `</tbody>`)
	for _, part := range strings.Split(body, `<td data-label="Workload"><a href="`)[1:] {
		_, rest, _ := strings.Cut(part, `">`)
		name, _, _ := strings.Cut(rest, `</a>`)
		out = append(out, name)
	}
	return out
}

func TestWorkloadsFilterAndPages(t *testing.T) {
	d := demoData()
	for _, tc := range []struct {
		query string
		want  []string
		count string
	}{
		{"", []string{"nlp/eval", "nlp/huge", "nlp/prep", "serving/api", "vision/sweep", "vision/train", "nlp/eval", "vision/notebook"}, "runs 1–8 of 8"},
		{"team=nlp", []string{"nlp/eval", "nlp/huge", "nlp/prep", "nlp/eval"}, "runs 1–4 of 4 (of 8 in all)"},
		{"state=queued", []string{"nlp/eval", "vision/sweep"}, "runs 1–2 of 2 (of 8 in all)"},
		{"cluster=lab&kind=batch", []string{"nlp/eval"}, "runs 1–1 of 1 (of 8 in all)"},
		{"per=3", []string{"nlp/eval", "nlp/huge", "nlp/prep"}, "runs 1–3 of 8"},
		{"per=3&page=3", []string{"nlp/eval", "vision/notebook"}, "runs 7–8 of 8"},
		{"per=3&page=9", nil, "no runs on page 9: 8 match, on 3 pages"},
		{"team=nobody", nil, "no runs (of 8 in all)"},
	} {
		v, _ := url.ParseQuery(tc.query)
		page := draw(t, func(b *bytes.Buffer) error { return Workloads(b, d, ParseQuery(v)) })
		if got := rows(page); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: rows %v, want %v", tc.query, got, tc.want)
		}
		if !strings.Contains(page, `id="count">`+tc.count+`</p>`) {
			t.Errorf("%s: the count does not say %q", tc.query, tc.count)
		}
	}
}

func TestPaginationLinksKeepFilters(t *testing.T) {
	v, _ := url.ParseQuery("team=nlp&per=2&page=1")
	page := draw(t, func(b *bytes.Buffer) error { return Workloads(b, demoData(), ParseQuery(v)) })
	if !strings.Contains(page, `href="/?page=2&amp;per=2&amp;team=nlp"`) {
		t.Errorf("the next link does not keep the filter and page size:\n%s", page)
	}
	if strings.Contains(page, `id="prev"`) {
		t.Error("the first page links a previous one")
	}
}

func TestUntrustedTextIsEscaped(t *testing.T) {
	d := demoData()
	page := draw(t, func(b *bytes.Buffer) error { return Queues(b, d) })
	if strings.Contains(page, "<4 more>") || !strings.Contains(page, "&lt;4 more&gt;") {
		t.Error("a reason's markup was not escaped")
	}
}

// A page names who signed in with the forge in its header, escaped, and
// offers to sign out; without a login it is the page as drawn.
func TestSignedIn(t *testing.T) {
	page := []byte(draw(t, func(b *bytes.Buffer) error { return Teams(b, demoData()) }))
	if got := SignedIn(page, ""); !bytes.Equal(got, page) {
		t.Error("with no login, the page changed")
	}
	got := string(SignedIn(page, "<ana>"))
	want := `<div class="who">signed in as <b id="signed-in-as">&lt;ana&gt;</b> <form method="post" action="/logout"><button type="submit">sign out</button></form></div>`
	if !strings.Contains(got, want) || strings.Count(got, `class="who"`) != 1 {
		t.Errorf("signed in as <ana>: the header does not say it once, escaped:\n%s", got)
	}
	if strings.Replace(got, want, whoSlot, 1) != string(page) {
		t.Error("more of the page changed than its header's name")
	}
}

func TestWorkloadNobodyRuns(t *testing.T) {
	err := Workload(&bytes.Buffer{}, demoData(), WorkloadPage{Workload: "vision/gone"}, LogTail{})
	var none ErrNoWorkload
	if !errors.As(err, &none) || none.Workload != "vision/gone" {
		t.Fatalf("err = %v, want ErrNoWorkload for vision/gone", err)
	}
}

func TestQueuesListTheFirstInLine(t *testing.T) {
	c := newCluster("box")
	for i := range MaxPending + 5 {
		c.decide(berth.Decision{Workload: berth.MakeWorkloadID("vision", fmt.Sprintf("job-%03d", i)), Kind: berth.KindBatch,
			Action: berth.ActionQueue, Position: MaxPending + 5 - i, GPUs: 1})
	}
	page := draw(t, func(b *bytes.Buffer) error { return Queues(b, Data{Clusters: []Cluster{c.obj()}}) })
	if n := strings.Count(page, `<td data-label="#">`); n != MaxPending {
		t.Errorf("the pending table has %d rows, want %d", n, MaxPending)
	}
	if !strings.Contains(page, `<td data-label="#">#1</td>`) || strings.Contains(page, `>#101<`) {
		t.Error("the pending table does not list the first in line")
	}
	if !strings.Contains(page, `and 5 more waiting: <a href="/?cluster=box&amp;state=queued">`) {
		t.Error("the page does not say how many more wait, and where they are listed")
	}
}

// What a cohort's team borrows is shown as lent by the teams that leave
// quota unused, in proportion to what each may lend (its unused nominal
// within its lending limit).
func TestQueuesShowLentQuota(t *testing.T) {
	lim := berth.MustQuantity("2")
	c := newCluster("box").
		quota(berth.QuotaUse{Team: "a", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 2000, UsedAfter: 5000, BorrowedAfter: 3000}).
		quota(berth.QuotaUse{Team: "b", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 4000}).
		quota(berth.QuotaUse{Team: "c", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 4000, UsedAfter: 2000}).
		quota(berth.QuotaUse{Team: "solo", Flavor: "h100", Resource: berth.ResourceGPU, Nominal: 4000})
	d := Data{Clusters: []Cluster{c.obj()}, Config: &berth.Config{Teams: map[string]berth.Team{
		"a": {Cohort: "r"}, "c": {Cohort: "r"}, "solo": {},
		"b": {Cohort: "r", Quota: []berth.FlavorQuota{{Flavor: "h100", GPU: &berth.ResourceQuota{Nominal: berth.MustQuantity("4"), LendingLimit: &lim}}}},
	}}}
	page := draw(t, func(b *bytes.Buffer) error { return Queues(b, d) })
	got := map[string]string{}
	for _, row := range strings.Split(page, "<tr>")[1:] {
		if !strings.Contains(row, `<td data-label="Lent"`) {
			continue
		}
		team, _, _ := strings.Cut(strings.SplitN(row, `<td data-label="Team">`, 2)[1], "<")
		lent, _, _ := strings.Cut(strings.SplitN(row, `<td data-label="Lent" class="num">`, 2)[1], "<")
		got[team] = lent
	}
	// b may lend 2 (its limit), c 2 (its unused): a's 3 borrowed, half each.
	want := map[string]string{"a": "0", "b": "1.5", "c": "1.5", "solo": "-"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lent: %v, want %v", got, want)
	}
}
