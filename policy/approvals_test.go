package policy_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/policy"
)

// baseConfig is the rules every case starts from: team vision owned by
// @ana and @acme/vision with lead @ana, team nlp owned by @ben, admins
// @acme/platform, and large workloads from 16 GPUs or 100 GPU-hours.
func baseConfig() *berth.Config {
	c := build.Config().GPUFlavor("h100", "H100").
		Team(build.Team("vision").Owners("@ana", "@acme/vision").Quota("h100", build.GPU("8"))).
		Team(build.Team("nlp").Owners("@ben").Quota("h100", build.GPU("8"))).
		Workload(build.Workload("vision", "train").Training(1).GPUs(1).MaxDuration("2h")).
		Workload(build.Workload("nlp", "eval").GPUs(1)).
		Obj()
	v := c.Teams["vision"]
	v.Leads = []string{"@ana"}
	c.Teams["vision"] = v
	c.Policy.Approvals.Admins = []string{"@acme/platform"}
	c.Policy.Approvals.LargeWorkload = berth.LargeWorkload{GPUs: 16, GPUHours: 100}
	return c
}

// clone copies a configuration deeply enough for the edits tests make.
func clone(c *berth.Config) *berth.Config {
	out := *c
	out.Teams = map[string]berth.Team{}
	for k, v := range c.Teams {
		out.Teams[k] = v
	}
	out.Workloads = map[berth.WorkloadID]berth.Workload{}
	for k, v := range c.Workloads {
		out.Workloads[k] = v
	}
	out.Cohorts = map[string]berth.Cohort{}
	for k, v := range c.Cohorts {
		out.Cohorts[k] = v
	}
	out.Policy.Approvals.Admins = append([]string(nil), c.Policy.Approvals.Admins...)
	return &out
}

func withWorkload(c *berth.Config, w *build.WorkloadBuilder) *berth.Config {
	c = clone(c)
	o := w.Obj()
	c.Workloads[o.ID()] = o
	return c
}

// requirementCase is a change and the requirements it should have.
type requirementCase struct {
	name      string
	head      func() *berth.Config
	changed   []string
	author    string
	approvals []policy.Approver
	want      []req
}

// req is a requirement as a person reads it.
type req struct {
	Kind   policy.RequirementKind
	Msg    string
	Met    string
	Author bool
}

// TestRequirements: changes to workloads need their team's owners, and
// large ones a lead.
func TestRequirements(t *testing.T) {
	base := baseConfig()
	checkRequirements(t, base, []requirementCase{{
		name: "nothing changed needs nothing",
		head: func() *berth.Config { return clone(base) },
	}, {
		name: "a new workload needs a team owner",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "llama").Training(2).GPUs(1).MaxDuration("4h"))
		},
		author: "zoe",
		want: []req{{Kind: policy.NeedTeamOwner,
			Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"}},
	}, {
		name: "an edited workload needs a team owner",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("nlp", "eval").GPUs(2))
		},
		author: "zoe",
		want: []req{{Kind: policy.NeedTeamOwner,
			Msg: "a change to team nlp's workloads needs an approval from @ben"}},
	}, {
		name: "an owner's approval meets it",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "llama").Training(2).GPUs(1).MaxDuration("4h"))
		},
		author:    "zoe",
		approvals: []policy.Approver{{Login: "Ana"}},
		want: []req{{Kind: policy.NeedTeamOwner, Met: "@Ana",
			Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"}},
	}, {
		name: "a member of the owning team meets it",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "llama").Training(2).GPUs(1).MaxDuration("4h"))
		},
		author:    "zoe",
		approvals: []policy.Approver{{Login: "carl", Teams: []string{"acme/vision"}}, {Login: "dan", Teams: []string{"acme/nlp"}}},
		want: []req{{Kind: policy.NeedTeamOwner, Met: "@carl",
			Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"}},
	}, {
		name: "the author's own approval does not count",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "llama").Training(2).GPUs(1).MaxDuration("4h"))
		},
		author:    "ana",
		approvals: []policy.Approver{{Login: "ana"}},
		want: []req{{Kind: policy.NeedTeamOwner, Author: true,
			Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"}},
	}, {
		name: "removing a workload needs its team's owner",
		head: func() *berth.Config {
			c := clone(base)
			delete(c.Workloads, "nlp/eval")
			return c
		},
		want: []req{{Kind: policy.NeedTeamOwner, Msg: "a change to team nlp's workloads needs an approval from @ben"}},
	}, {
		name: "a workload at the GPU threshold needs a lead",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "big").Training(2).GPUs(8))
		},
		want: []req{
			{Kind: policy.NeedTeamLead, Msg: "a workload at or above 16 GPUs or 100 GPU-hours (vision/big (16 GPUs)) needs an approval from a team lead: @ana"},
			{Kind: policy.NeedTeamOwner, Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"},
		},
	}, {
		name: "a workload at the GPU-hours threshold needs a lead",
		head: func() *berth.Config {
			return withWorkload(base, build.Workload("vision", "long").Training(2).GPUs(2).MaxDuration("25h"))
		},
		want: []req{
			{Kind: policy.NeedTeamLead, Msg: "a workload at or above 16 GPUs or 100 GPU-hours (vision/long (100 GPU-hours)) needs an approval from a team lead: @ana"},
			{Kind: policy.NeedTeamOwner, Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"},
		},
	}})
}

// TestRequirementsPlatform: changes to quotas, cohorts, teams and the
// policy need an admin, judged by the base revision's policy.
func TestRequirementsPlatform(t *testing.T) {
	base := baseConfig()
	checkRequirements(t, base, []requirementCase{{
		name: "a quota change needs an admin",
		head: func() *berth.Config {
			c := clone(base)
			v := c.Teams["vision"]
			v.Quota = []berth.FlavorQuota{{Flavor: "h100", GPU: &berth.ResourceQuota{Nominal: berth.MustQuantity("16")}}}
			c.Teams["vision"] = v
			return c
		},
		approvals: []policy.Approver{{Login: "ana"}},
		want:      []req{{Kind: policy.NeedAdmin, Msg: "a change to team vision needs an approval from a platform admin: @acme/platform"}},
	}, {
		name: "cohorts and policy need an admin, met by a member of the admin team",
		head: func() *berth.Config {
			c := clone(base)
			c.Cohorts["research"] = berth.Cohort{Name: "research"}
			c.Policy.FairSharing = !c.Policy.FairSharing
			return c
		},
		approvals: []policy.Approver{{Login: "pat", Teams: []string{"ACME/Platform"}}},
		want:      []req{{Kind: policy.NeedAdmin, Met: "@pat", Msg: "a change to cohort research and policy needs an approval from a platform admin: @acme/platform"}},
	}, {
		name: "a pull request that makes its author an admin is judged by the base policy",
		head: func() *berth.Config {
			c := clone(base)
			c.Policy.Approvals.Admins = []string{"@mallory"}
			c.Policy.Approvals.RequireTeamOwner = false
			return withWorkload(c, build.Workload("vision", "llama").GPUs(1))
		},
		author:    "mallory",
		approvals: []policy.Approver{{Login: "mallory"}},
		want: []req{
			{Kind: policy.NeedAdmin, Msg: "a change to policy needs an approval from a platform admin: @acme/platform"},
			{Kind: policy.NeedTeamOwner, Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"},
		},
	}, {
		name: "a pull request that makes itself an owner is judged by the base owners",
		head: func() *berth.Config {
			c := clone(base)
			v := c.Teams["vision"]
			v.Owners = []string{"@mallory"}
			c.Teams["vision"] = v
			return withWorkload(c, build.Workload("vision", "llama").GPUs(1))
		},
		author:    "eve",
		approvals: []policy.Approver{{Login: "mallory"}},
		want: []req{
			{Kind: policy.NeedAdmin, Msg: "a change to team vision needs an approval from a platform admin: @acme/platform"},
			{Kind: policy.NeedTeamOwner, Msg: "a change to team vision's workloads needs an approval from @ana or @acme/vision"},
		},
	}, {
		name: "a new team's workloads need an admin",
		head: func() *berth.Config {
			c := clone(base)
			c.Teams["speech"] = build.Team("speech").Owners("@sam").Obj()
			return withWorkload(c, build.Workload("speech", "asr").GPUs(1))
		},
		want: []req{
			{Kind: policy.NeedAdmin, Msg: "a change to team speech needs an approval from a platform admin: @acme/platform"},
			{Kind: policy.NeedAdmin, Msg: "a change to team speech's workloads (a team the base does not define) needs an approval from a platform admin: @acme/platform"},
		},
	}, {
		name: "a new cohort needs an admin",
		head: func() *berth.Config {
			c := clone(base)
			c.Cohorts["research"] = berth.Cohort{Name: "research"}
			return c
		},
		want: []req{{Kind: policy.NeedAdmin, Msg: "a change to cohort research needs an approval from a platform admin: @acme/platform"}},
	}})
}

// checkRequirements reviews each case's change against base, both as
// plain configurations and as loaded revisions (with package digests,
// compared package by package): the same requirements either way.
func checkRequirements(t *testing.T, base *berth.Config, tests []requirementCase) {
	t.Helper()
	for _, tt := range tests {
		for _, packages := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/packages=%v", tt.name, packages), func(t *testing.T) {
				b, head := base, tt.head()
				if packages {
					b, head = withPackages(base), withPackages(head)
				}
				rev := policy.ReviewChange(policy.ReviewInput{Base: b, Head: head, Changed: tt.changed,
					Author: tt.author, Approvals: tt.approvals})
				var got []req
				for _, r := range rev.Requirements {
					got = append(got, req{Kind: r.Kind, Msg: r.Message(), Met: r.ApprovedBy, Author: r.AuthorIsOwner})
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("requirements (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// withPackages is a copy of c with a package per team, as the loader
// gives a repository with a directory per team: its digest is the hash of
// its workloads.
func withPackages(c *berth.Config) *berth.Config {
	out := *c
	out.Packages = map[string]berth.Package{}
	for _, id := range c.WorkloadIDs() {
		p := out.Packages[id.Team()]
		p.Workloads = append(p.Workloads, id)
		out.Packages[id.Team()] = p
	}
	for dir, p := range out.Packages {
		ws := make([]berth.Workload, len(p.Workloads))
		for i, id := range p.Workloads {
			ws[i] = c.Workloads[id]
		}
		b, err := json.Marshal(ws)
		if err != nil {
			panic(err)
		}
		p.Digest = sha256.Sum256(b)
		out.Packages[dir] = p
	}
	return &out
}

func TestRequirementsWithoutAdmins(t *testing.T) {
	base := baseConfig()
	base.Policy.Approvals.Admins = nil
	head := clone(base)
	head.Cohorts["research"] = berth.Cohort{Name: "research"}
	reqs := policy.Requirements(policy.ReviewInput{Base: base, Head: head})
	if len(reqs) != 1 || !strings.Contains(reqs[0].Message(), "nobody") {
		t.Fatalf("want one requirement nobody can meet, got %+v", reqs)
	}
	if policy.ReviewChange(policy.ReviewInput{Base: base, Head: head, Approvals: []policy.Approver{{Login: "anyone"}}}).Approved() {
		t.Error("a requirement without owners was met")
	}
}

func TestRequirementsInvalidHead(t *testing.T) {
	base := baseConfig()
	base.Workloads["vision/train"] = func() berth.Workload {
		w := base.Workloads["vision/train"]
		w.Pos = berth.Pos{File: "teams/vision/train.cue", Line: 3, Col: 1}
		return w
	}()
	base.Positions["teams.vision"] = berth.Pos{File: "teams/vision/team.cue", Line: 1, Col: 1}
	reqs := policy.Requirements(policy.ReviewInput{Base: base, Head: nil,
		Changed: []string{"teams/vision/train.cue", "teams/vision/team.cue", "teams/new.cue", "README.md"}})
	var got []string
	for _, r := range reqs {
		got = append(got, r.Message())
	}
	want := []string{
		"a change to file teams/new.cue (the head does not validate, so what it changes is unknown) and team vision needs an approval from a platform admin: @acme/platform",
		"a change to team vision's workloads needs an approval from @ana or @acme/vision",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCodeOwners(t *testing.T) {
	co, err := policy.ParseCodeOwners("CODEOWNERS", []byte(`
# everything defaults to the platform team
*                   @acme/platform
/teams/vision/      @ana @acme/vision
teams/nlp/*.cue     @ben
docs/               # no owners
**/secrets/**       @sec
*.md                @writers   # trailing comment
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
		ok   bool
	}{
		{"platform/policy.cue", []string{"@acme/platform"}, true},
		{"teams/vision/train.cue", []string{"@ana", "@acme/vision"}, true},
		{"teams/vision/sub/x.cue", []string{"@ana", "@acme/vision"}, true},
		{"x/teams/vision/train.cue", []string{"@acme/platform"}, true},
		{"teams/nlp/a.cue", []string{"@ben"}, true},
		{"teams/nlp/sub/a.cue", []string{"@acme/platform"}, true},
		{"docs/guide.txt", nil, true},
		{"a/secrets/b/c", []string{"@sec"}, true},
		{"teams/vision/README.md", []string{"@writers"}, true},
	}
	for _, tt := range tests {
		got, ok := co.Owners(tt.path)
		if ok != tt.ok || !cmp.Equal(got, tt.want, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") })) {
			t.Errorf("Owners(%q) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}

	base := baseConfig()
	reqs := policy.Requirements(policy.ReviewInput{Base: base, Head: clone(base), CodeOwners: co,
		Changed: []string{"teams/vision/train.cue", "teams/vision/b.cue", "docs/x", "platform/policy.cue"}})
	var got []string
	for _, r := range reqs {
		got = append(got, r.Message())
	}
	want := []string{
		"a change to platform/policy.cue needs an approval from a code owner: @acme/platform",
		"a change to teams/vision/b.cue and teams/vision/train.cue needs an approval from a code owner: @ana or @acme/vision",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCodeOwnersErrors(t *testing.T) {
	for _, text := range []string{"!negated @a", "[ab].cue @a"} {
		if _, err := policy.ParseCodeOwners("CODEOWNERS", []byte(text)); err == nil || !strings.Contains(err.Error(), "CODEOWNERS:1:") {
			t.Errorf("%q: want an error at CODEOWNERS:1, got %v", text, err)
		}
	}
}

// TestCodeOwnersEdgePatterns: the cases that keep berth's own parser
// rather than hmarr/codeowners (see CodeOwners): "/" parses and owns no
// path (hmarr's panics), and an empty path segment is an error at its line
// (hmarr's accepts it and then matches nothing).
func TestCodeOwnersEdgePatterns(t *testing.T) {
	co, err := policy.ParseCodeOwners("CODEOWNERS", []byte("/ @a\n"))
	if err != nil {
		t.Fatalf(`"/": %v`, err)
	}
	for _, path := range []string{"x", "teams/vision/train.cue"} {
		if owners, ok := co.Owners(path); ok {
			t.Errorf(`"/" owns %s: %v`, path, owners)
		}
	}
	_, err = policy.ParseCodeOwners("CODEOWNERS", []byte("* @b\nteams//vision @a\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "CODEOWNERS:2: ") {
		t.Errorf("an empty segment: want an error at CODEOWNERS:2, got %v", err)
	}
}

func TestTeamHandles(t *testing.T) {
	reqs := []policy.Requirement{{Owners: []string{"@ana", "@Acme/Vision"}}, {Owners: []string{"@acme/platform", "@acme/vision"}}}
	if diff := cmp.Diff([]string{"acme/platform", "acme/vision"}, policy.TeamHandles(reqs)); diff != "" {
		t.Error(diff)
	}
}
