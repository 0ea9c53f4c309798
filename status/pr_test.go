package status_test

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	goldens "github.com/berth-gpu/berth/fixtures/golden"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/redact"
	"github.com/berth-gpu/berth/status"
)

var update = flag.Bool("update", false, "rewrite status/testdata/*.golden")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldens.Check(t, filepath.Join("testdata", name), []byte(got), *update)
}

// secret is an env value that must never appear in a comment.
const secret = "sk-live-4f9a2c7e1b"

// scenario is a pull request on cluster c1: two nodes of 8 H100s, teams
// vision (8 GPUs nominal, may borrow 4) and nlp (8 GPUs) in cohort
// research, nlp running a service and a low-priority batch job.
type scenario struct {
	base, head *berth.Config
	snap       *berth.Snapshot
	pr         status.PullRequest
}

func baseBuilder() *build.ConfigBuilder {
	return build.Config().GPUFlavor("h100", "H100").Cohort("research", "").
		Team(build.Team("vision").Owners("@ana", "@acme/vision").Cohort("research").GPUHoursBudget(500).
			Quota("h100", build.GPU("8").Borrow("4"))).
		Team(build.Team("nlp").Owners("@ben").Cohort("research").Quota("h100", build.GPU("8").Borrow("0"))).
		Workload(
			build.Workload("nlp", "serve").Service(1).GPUs(4).Priority("production"),
			build.Workload("nlp", "sweep").GPUs(4).Priority("low").MaxDuration("6h"),
			build.Workload("vision", "resnet").Training(1).GPUs(4).MaxDuration("24h").Image("ghcr.io/acme/resnet:2.3").
				Env("WANDB_API_KEY", secret).Env("LOG_LEVEL", "info"),
		)
}

func newScenario(edit func(*build.ConfigBuilder)) scenario {
	b := baseBuilder()
	base := b.Obj()
	base.Policy.Approvals.Admins = []string{"@acme/platform"}
	base.Policy.Approvals.LargeWorkload = berth.LargeWorkload{GPUs: 16, GPUHours: 200}
	hb := baseBuilder()
	if edit != nil {
		edit(hb)
	}
	head := hb.Obj()
	head.Policy = base.Policy
	for _, c := range []*berth.Config{base, head} {
		for id, w := range c.Workloads {
			w.Pos = berth.Pos{File: "workloads/" + w.Team + "/" + w.Name + ".cue", Line: 3, Col: 1}
			c.Workloads[id] = w
		}
	}
	snap := build.Snapshot().
		Node(build.Node("gpu-1").GPUs(8, "H100"), build.Node("gpu-2").GPUs(8, "H100")).
		Running(
			build.Running(build.Workload("nlp", "serve").Service(1).GPUs(4).Priority("production"), "h100", 1000).On("gpu-1", 0, 1, 2, 3),
			build.Running(build.Workload("nlp", "sweep").GPUs(4).Priority("low").MaxDuration("6h"), "h100", 10).On("gpu-1", 4, 5, 6, 7),
			build.Running(build.Workload("vision", "resnet").Training(1).GPUs(4).MaxDuration("24h"), "h100", 100).On("gpu-2", 0, 1, 2, 3),
		).Obj()
	return scenario{base: base, head: head, snap: snap, pr: status.PullRequest{Repo: "acme/gpu-platform", Number: 42,
		Author: "zoe", HeadSHA: "1111111111111111111111111111111111111111", BaseSHA: "2222222222222222222222222222222222222222", BaseRef: "main"}}
}

func (s scenario) view() status.PlanView {
	plan := func(cfg *berth.Config) *berth.Plan {
		return schedule.Schedule(schedule.Input{Config: cfg, Snapshot: s.snap}, schedule.Options{})
	}
	return status.NewPlanView(status.PlanInput{PR: s.pr, Cluster: "c1", Base: s.base, BasePlan: plan(s.base),
		Head: s.head, HeadPlan: plan(s.head)})
}

func (s scenario) review(approvers ...policy.Approver) *policy.Review {
	var changed []string
	r := policy.ReviewChange(policy.ReviewInput{Base: s.base, Head: s.head, Changed: changed, Author: s.pr.Author, Approvals: approvers})
	return &r
}

func scenarios() map[string]func() (status.PlanView, *policy.Review) {
	return map[string]func() (status.PlanView, *policy.Review){
		"admitted": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "llama-ft").Training(2).GPUs(2).MaxDuration("24h").
					Env("HF_TOKEN", "hf_abcdefghijklmnop").Env("EPOCHS", "3"))
			})
			return s.view(), s.review(policy.Approver{Login: "carl", Teams: []string{"acme/vision"}})
		},
		"mounts": func() (status.PlanView, *policy.Review) {
			// On Kubernetes: the run's checkpoint claim, a dataset's
			// existing claim (read-only), a team claim berth makes, and
			// scratch per pod.
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Backend(berth.BackendKubernetes)
				b.Workload(build.Workload("vision", "llama-ft").Training(2).GPUs(2).MaxDuration("24h").Checkpoint("/ckpt").
					Volume("imagenet", berth.VolumeDataset, "imagenet-2012", "").Volume("results", berth.VolumeTeam, "", "500Gi").
					Volume("tmp", berth.VolumeScratch, "", "100Gi"))
			})
			return s.view(), s.review(policy.Approver{Login: "carl", Teams: []string{"acme/vision"}})
		},
		"queued": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "big-train").Training(2).GPUs(4).MaxDuration("12h"))
			})
			return s.view(), s.review(policy.Approver{Login: "ana"})
		},
		"preempting": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("nlp", "urgent-eval").GPUs(4).Priority("normal").MaxDuration("2h"))
			})
			return s.view(), s.review(policy.Approver{Login: "ben"})
		},
		"rejected": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "huge").Training(3).GPUs(8).MaxDuration("72h"))
			})
			return s.view(), s.review()
		},
		"changed": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "resnet").Training(2).GPUs(4).MaxDuration("72h").Image("ghcr.io/acme/resnet:2.4").
					Env("WANDB_API_KEY", secret+"-rotated").Env("LOG_LEVEL", "info").Env("SEED", "7"))
			})
			return s.view(), s.review()
		},
		"missing-approvals": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "llama-ft").Training(2).GPUs(2).MaxDuration("24h"))
				b.Team(build.Team("vision").Owners("@ana", "@acme/vision").Cohort("research").
					Quota("h100", build.GPU("10").Borrow("4")))
			})
			return s.view(), s.review(policy.Approver{Login: "zoe"})
		},
		"blast-radius": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Team(build.Team("nlp").Owners("@ben").Cohort("research").Quota("h100", build.GPU("2").Borrow("2")))
				b.Workload(build.Workload("nlp", "later").GPUs(6).MaxDuration("1h"))
			})
			// nlp/later exists in the base too, so the pull request only
			// changes the quota.
			s.base.Workloads["nlp/later"] = build.Workload("nlp", "later").GPUs(6).MaxDuration("1h").Obj()
			return s.view(), s.review(policy.Approver{Login: "pat", Teams: []string{"acme/platform"}})
		},
		"fork": func() (status.PlanView, *policy.Review) {
			s := newScenario(func(b *build.ConfigBuilder) {
				b.Workload(build.Workload("vision", "from-fork").GPUs(1).MaxDuration("1h"))
			})
			s.pr.Fork = true
			return s.view(), s.review()
		},
		"autoscaled": func() (status.PlanView, *policy.Review) {
			// nlp/serve starts to autoscale (2 GPUs a replica, min 1, max
			// 6); its autoscaler asks for 3. nlp has 8 GPUs and may not
			// borrow: replica 2 fits beside what runs, replica 3 (a
			// production replica like any other) preempts nlp's low
			// sweep, and the plan says how far serve may scale.
			serve := build.Workload("nlp", "serve").Service(1).GPUs(2).Priority("production").Autoscale(1, 6)
			s := newScenario(func(b *build.ConfigBuilder) { b.Workload(serve) })
			s.snap.Running[0].Resources.GPU = 2
			s.snap.Running[0].Placements[0].GPUs = []int{0, 1}
			s.snap.Scale = []berth.ScaleWant{{Workload: "nlp/serve", RunID: "1", Replicas: 3}}
			return s.view(), s.review(policy.Approver{Login: "ben"})
		},
		"cluster-error": func() (status.PlanView, *policy.Review) {
			s := newScenario(nil)
			return status.NewPlanView(status.PlanInput{PR: s.pr, Cluster: "c1", Err: errors.New("cluster c1: observe: connection refused")}), nil
		},
	}
}

func TestPlanComments(t *testing.T) {
	for name, mk := range scenarios() {
		t.Run(name, func(t *testing.T) {
			v, rev := mk()
			c, err := status.PlanComment(v, rev, status.CommentOptions{Redact: redact.FromConfigs(baseBuilder().Obj())})
			if err != nil {
				t.Fatal(err)
			}
			body := strings.Join(c.Parts, "\n\n<!-- next comment -->\n\n")
			if strings.Contains(body, secret) || strings.Contains(body, "hf_abcdefghijklmnop") {
				t.Error("a secret env value appears in the comment")
			}
			golden(t, "comment-"+name+".golden", body)
		})
	}
}

func TestStatusDescriptions(t *testing.T) {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(scenarios())) {
		v, rev := scenarios()[name]()
		fmt.Fprintf(&b, "== %s\n", name)
		write := func(s status.CommitStatus) {
			if n := len(s.Description); n > status.MaxDescription {
				t.Errorf("%s: %s: description has %d characters", name, s.Context, n)
			}
			fmt.Fprintf(&b, "%-16s %-8s %s\n", s.Context, s.State, s.Description)
		}
		write(status.PlanStatus(v))
		if rev != nil {
			write(status.PolicyStatus(*rev))
		}
	}
	fmt.Fprintf(&b, "== validate\n")
	for _, err := range []error{nil, invalidErrors(), errors.New("source git https://git.example/acme/repo: fetch main: connection reset")} {
		var cfg *berth.Config
		if err == nil {
			cfg = baseBuilder().Obj()
		}
		s := status.ValidateStatus(cfg, err)
		fmt.Fprintf(&b, "%-16s %-8s %s\n", s.Context, s.State, s.Description)
	}
	fmt.Fprintf(&b, "== sync\n")
	for _, v := range syncViews() {
		s := status.SyncStatus(v)
		fmt.Fprintf(&b, "%-16s %-8s %s\n", s.Context, s.State, s.Description)
	}
	fmt.Fprintf(&b, "== long context\n")
	s := status.NewCommitStatus(status.PlanContext(strings.Repeat("c", 300)), status.StateSuccess, strings.Repeat("é", 200))
	fmt.Fprintf(&b, "%d %d %s\n", len(s.Context), len(s.Description), s.Description[len(s.Description)-5:])
	golden(t, "statuses.golden", b.String())
}

func invalidErrors() cue.Errors {
	return cue.Errors{
		{Path: "workloads.vision.llama-ft.resources.gpu", Message: `conflicting values "eight" and int (mismatched types string and int)`,
			Positions: []berth.Pos{{File: "workloads/vision/llama.cue", Line: 7, Col: 17}, {File: cue.SchemaPosFile, Line: 220, Col: 9}}},
		{Path: "workloads.vision.llama-ft.env.HF_TOKEN", Message: `conflicting values 12345678901234 and string (mismatched types int and string)`,
			Positions: []berth.Pos{{File: "workloads/vision/llama.cue", Line: 9, Col: 13}}},
		{Path: "teams.vision.owners.0", Message: `invalid value "ana" (out of bound =~"^@...")`,
			Positions: []berth.Pos{{File: "teams/vision.cue", Line: 3, Col: 11}}},
	}
}

func TestInvalidComment(t *testing.T) {
	s := newScenario(nil)
	rev := policy.ReviewChange(policy.ReviewInput{Base: s.base, Head: nil, Changed: []string{"workloads/vision/llama.cue"}, Author: "zoe"})
	c, err := status.InvalidComment(s.pr, "c1", invalidErrors(), &rev, status.CommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join(c.Parts, "\n")
	if strings.Contains(body, "12345678901234") {
		t.Error("an env value from a CUE error appears in the comment")
	}
	golden(t, "comment-invalid.golden", body)
}

func syncViews() []status.SyncView {
	at := func(m int) time.Time { return build.T0.Add(time.Duration(m) * time.Minute) }
	est := at(180)
	pr := status.PullRequest{Repo: "acme/gpu-platform", Number: 42, Author: "zoe"}
	return []status.SyncView{
		{PR: pr, Cluster: "c1", MergeSHA: "3333333333333333333333333333333333333333", Time: at(30), Workloads: []status.SyncWorkload{
			{ID: "vision/llama-ft", RunID: "1", Kind: berth.KindTraining, State: status.SyncRunning, Flavor: "h100", Nodes: []string{"gpu-1", "gpu-2"},
				History: []status.Transition{{State: status.SyncQueued, At: at(0)}, {State: status.SyncAdmitted, At: at(2)}, {State: status.SyncRunning, At: at(3)}}},
			{ID: "vision/big-train", RunID: "1", Kind: berth.KindTraining, State: status.SyncQueued, Position: 2, EstimatedStart: &est,
				Reason:  "insufficient unused h100 quota in team vision: it asks 8 GPUs; the team uses 4 of nominal 8 and has no cohort to borrow from, so it is short by 4 GPUs",
				History: []status.Transition{{State: status.SyncQueued, At: at(0)}}},
		}},
		{PR: pr, Cluster: "c1", MergeSHA: "3333333333333333333333333333333333333333", Time: at(600), Workloads: []status.SyncWorkload{
			{ID: "vision/llama-ft", RunID: "1", Kind: berth.KindTraining, State: status.SyncSucceeded,
				History: []status.Transition{{State: status.SyncQueued, At: at(0)}, {State: status.SyncAdmitted, At: at(2)}, {State: status.SyncRunning, At: at(3)}, {State: status.SyncSucceeded, At: at(400)}}},
			{ID: "nlp/serve", RunID: "1", Kind: berth.KindService, State: status.SyncRunning,
				History: []status.Transition{{State: status.SyncRunning, At: at(0)}}},
		}},
		// Services and a notebook once ready, with their URLs (each
		// once); an autoscaled service's replica waits for quota.
		{PR: pr, Cluster: "c1", MergeSHA: "3333333333333333333333333333333333333333", Time: at(600), Workloads: []status.SyncWorkload{
			{ID: "nlp/serve", RunID: "1", Kind: berth.KindService, State: status.SyncRunning, URL: "https://serve.acme.example/",
				History: []status.Transition{{State: status.SyncRunning, At: at(0)}}},
			{ID: "nlp/serve", RunID: berth.ScaleRunID("1", 2), Kind: berth.KindService, State: status.SyncRunning, URL: "https://serve.acme.example/",
				History: []status.Transition{{State: status.SyncRunning, At: at(10)}}},
			{ID: "nlp/serve", RunID: berth.ScaleRunID("1", 3), Kind: berth.KindService, State: status.SyncQueued, Position: 1,
				Reason:  "insufficient unused h100 quota in team nlp: it asks 1 GPU; the team uses 8 of nominal 8 and has no cohort to borrow from, so it is short by 1 GPU",
				History: []status.Transition{{State: status.SyncQueued, At: at(10)}}},
			{ID: "vision/explore", RunID: "1", Kind: berth.KindNotebook, State: status.SyncRunning, URL: "https://explore.acme.example/",
				History: []status.Transition{{State: status.SyncRunning, At: at(1)}}},
			{ID: "vision/stats", RunID: "1", Kind: berth.KindService, State: status.SyncAdmitted,
				History: []status.Transition{{State: status.SyncAdmitted, At: at(5)}}},
		}},
		{PR: pr, Cluster: "c1", MergeSHA: "3333333333333333333333333333333333333333", Time: at(600), Workloads: []status.SyncWorkload{
			{ID: "vision/llama-ft", RunID: "2", Kind: berth.KindTraining, State: status.SyncFailed, Reason: "OOMKilled (exit code 137)",
				History: []status.Transition{{State: status.SyncQueued, At: at(0)}, {State: status.SyncRunning, At: at(3)}, {State: status.SyncFailed, At: at(90), Note: "OOMKilled (exit code 137)"}}},
			{ID: "vision/sweep", RunID: "1", Kind: berth.KindBatch, State: status.SyncPreempted, PreemptedBy: "nlp/urgent-eval",
				Reason:  "preempted by nlp/urgent-eval: its team borrowed h100 quota that team nlp takes back",
				History: []status.Transition{{State: status.SyncRunning, At: at(0)}, {State: status.SyncPreempted, At: at(50), Note: "by nlp/urgent-eval: its team borrowed h100 quota that team nlp takes back"}}},
		}},
		{PR: pr, Cluster: "c1", MergeSHA: "3333333333333333333333333333333333333333", Err: errors.New("cluster c1: observe: connection refused")},
	}
}

func TestSyncComments(t *testing.T) {
	var parts []string
	for _, v := range syncViews() {
		c, err := status.SyncComment(v, status.CommentOptions{})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, c.Parts...)
	}
	golden(t, "comment-sync.golden", strings.Join(parts, "\n\n<!-- next comment -->\n\n"))
}

// TestLongComment plans a pull request that adds 700 workloads: the
// comment is split into parts below the limit, each with its marker, none
// cut inside a code block or a details block, tables with their header.
func TestLongComment(t *testing.T) {
	s := newScenario(func(b *build.ConfigBuilder) {
		for i := range 700 {
			b.Workload(build.Workload("vision", fmt.Sprintf("sweep-%04d", i)).GPUs(1).MaxDuration("1h").
				Env("RUN", fmt.Sprint(i)))
		}
	})
	v := s.view()
	c, err := status.PlanComment(v, s.review(), status.CommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Parts) < 3 {
		t.Fatalf("want at least 3 parts, got %d", len(c.Parts))
	}
	var heads []string
	for i, p := range c.Parts {
		if len(p) > status.MaxComment {
			t.Errorf("part %d has %d bytes", i+1, len(p))
		}
		cluster, part, ok := status.ParseMarker(p)
		if !ok || cluster != "c1" || part != i+1 {
			t.Errorf("part %d: marker %q %d %v", i+1, cluster, part, ok)
		}
		checkMarkdown(t, i+1, p)
		lines := strings.Split(p, "\n")
		heads = append(heads, fmt.Sprintf("part %d: %d bytes, %d lines; starts %q; ends %q", i+1, len(p), len(lines),
			strings.Join(lines[:min(4, len(lines))], " / "), lines[len(lines)-1]))
	}
	golden(t, "comment-long.golden", strings.Join(heads, "\n")+"\n")
}

// checkMarkdown fails when a part leaves a fence or a details block open,
// or has a table row without a header.
func checkMarkdown(t *testing.T, n int, p string) {
	t.Helper()
	fence, details, inTable := "", 0, false
	for _, line := range strings.Split(p, "\n") {
		tl := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(tl, fence) && strings.Trim(tl, "`") == "" {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(tl, "```") {
			fence = tl[:strings.LastIndex(tl, "`")+1]
			continue
		}
		details += strings.Count(tl, "<details") - strings.Count(tl, "</details>")
		if strings.HasPrefix(tl, "|") {
			if !inTable && !strings.HasPrefix(tl, "| ") && !strings.HasPrefix(tl, "|---") && !strings.Contains(tl, "|") {
				t.Errorf("part %d: table row without header: %q", n, tl)
			}
			inTable = true
		} else {
			inTable = false
		}
	}
	if fence != "" || details != 0 {
		t.Errorf("part %d ends inside a block (fence %q, details %d)", n, fence, details)
	}
}

func TestSplitForcedInsideBlock(t *testing.T) {
	var b strings.Builder
	b.WriteString("intro\n\n<details><summary>big</summary>\n\n```diff\n")
	for i := range 200 {
		fmt.Fprintf(&b, "+ line %03d with some text to make it longer\n", i)
	}
	b.WriteString("```\n</details>\n\n| a | b |\n|---|---|\n")
	for i := range 100 {
		fmt.Fprintf(&b, "| row %03d | x |\n", i)
	}
	parts := status.Split(b.String(), "c1", 2000)
	for i, p := range parts {
		if len(p) > 2000 {
			t.Errorf("part %d: %d bytes", i+1, len(p))
		}
		checkMarkdown(t, i+1, p)
		_, part, _ := status.ParseMarker(p)
		if part != i+1 {
			t.Errorf("part %d has marker part %d", i+1, part)
		}
	}
	// Every row survives, and every part with rows has the table header.
	all := strings.Join(parts, "")
	for i := range 100 {
		if !strings.Contains(all, fmt.Sprintf("| row %03d | x |", i)) {
			t.Fatalf("row %d lost", i)
		}
	}
	for i, p := range parts {
		if strings.Contains(p, "| row ") && !strings.Contains(p, "| a | b |\n|---|---|\n") {
			t.Errorf("part %d has rows without the header", i+1)
		}
	}
}

func TestParseMarker(t *testing.T) {
	for _, tt := range []struct {
		body    string
		cluster string
		part    int
		ok      bool
	}{
		{status.Marker("box", 1) + "\nhello", "box", 1, true},
		{status.Marker("box", 3) + "\n", "box", 3, true},
		{"hello " + status.Marker("box", 1), "", 0, false},
		{"<!-- berth:plan cluster= -->", "", 0, false},
	} {
		c, p, ok := status.ParseMarker(tt.body)
		if c != tt.cluster || p != tt.part || ok != tt.ok {
			t.Errorf("ParseMarker(%q) = %q, %d, %v", tt.body, c, p, ok)
		}
	}
}

func TestTemplatesParsedAtStart(t *testing.T) {
	// The templates are parsed when the package is initialised; rendering
	// an unknown view must fail with an error, not an empty comment.
	v := status.PlanView{Cluster: "c1"}
	if _, err := status.PlanComment(v, nil, status.CommentOptions{}); err != nil {
		t.Fatalf("an empty view renders: %v", err)
	}
}

// TestSyncWaitsNotForReplicas: a merged autoscaled service runs; one
// replica above its minimum waits for quota. The merge took: the status
// says so, and the replica is named, not waited for.
func TestSyncWaitsNotForReplicas(t *testing.T) {
	v := status.SyncView{Cluster: "c1", Workloads: []status.SyncWorkload{
		{ID: "nlp/serve", RunID: "1", Kind: berth.KindService, State: status.SyncRunning},
		{ID: "nlp/serve", RunID: berth.ScaleRunID("1", 2), Kind: berth.KindService, State: status.SyncQueued},
	}}
	got := status.SyncStatus(v)
	if got.State != status.StateSuccess || got.Description != "1 running, 1 autoscaled replica waiting for quota" {
		t.Errorf("%s %q, want success naming the waiting replica", got.State, got.Description)
	}
	for _, w := range v.Workloads {
		if !w.Final() {
			t.Errorf("%s run %s is followed until it runs", w.ID, w.RunID)
		}
	}
}
