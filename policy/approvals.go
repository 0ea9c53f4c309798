package policy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/berth-gpu/berth"
)

// A pull request's policy review, in two pure steps:
//
//  1. Requirements(in) says which approvals the change needs: read from the
//     BASE configuration (and the base tree's CODEOWNERS), so a pull request
//     that edits the rules is judged by the rules it wants to change.
//  2. Judge(reqs, author, approvals) says which of them are met by the
//     approving reviews, with the approvers' team memberships resolved by
//     the caller (TeamHandles lists the teams worth asking about).
//
// Review does both.

// RequirementKind names what kind of approval a change needs.
type RequirementKind string

const (
	// NeedTeamOwner: a change to a team's workloads needs one of the team's
	// owners (policy.approvals.requireTeamOwner).
	NeedTeamOwner RequirementKind = "TeamOwner"
	// NeedTeamLead: a workload at or above policy.approvals.largeWorkload
	// needs one of its team's leads.
	NeedTeamLead RequirementKind = "TeamLead"
	// NeedAdmin: a change to quotas, teams, cohorts, flavors, clusters or
	// policy needs a platform admin (policy.approvals.admins).
	NeedAdmin RequirementKind = "PlatformAdmin"
	// NeedCodeOwner: a changed file has code owners in the base tree's
	// CODEOWNERS.
	NeedCodeOwner RequirementKind = "CodeOwner"
)

// kindOrder is the order requirements are listed in.
var kindOrder = map[RequirementKind]int{NeedAdmin: 0, NeedTeamLead: 1, NeedTeamOwner: 2, NeedCodeOwner: 3}

// Requirement is one approval a change needs.
type Requirement struct {
	Kind RequirementKind `json:"kind"`
	// Subject is what the requirement is about, as a phrase: "team vision's
	// workloads", "quotas and policy", "teams/vision/train.cue".
	Subject string `json:"subject"`
	// Objects are the changed objects or files behind it, sorted.
	Objects []string `json:"objects"`
	// Owners may approve: "@ana" (a user) or "@acme/vision" (a team). Empty
	// means nobody can: the base configuration names no one.
	Owners []string `json:"owners"`
	// ApprovedBy is the approver that meets it ("@ana"), empty while missing.
	ApprovedBy string `json:"approvedBy,omitempty"`
	// Author is set when the pull request's author is one of Owners: their
	// own approval does not count.
	AuthorIsOwner bool `json:"authorIsOwner,omitempty"`
}

// Met reports whether an approval meets the requirement.
func (r Requirement) Met() bool { return r.ApprovedBy != "" }

// Message says what is needed: "a change to team vision's workloads needs
// an approval from @ana or @acme/vision".
func (r Requirement) Message() string {
	who := "nobody (the base configuration names no one who may approve it)"
	if len(r.Owners) > 0 {
		who = JoinOr(r.Owners)
	}
	switch r.Kind {
	case NeedTeamLead:
		return fmt.Sprintf("%s needs an approval from a team lead: %s", r.Subject, who)
	case NeedAdmin:
		return fmt.Sprintf("a change to %s needs an approval from a platform admin: %s", r.Subject, who)
	case NeedCodeOwner:
		return fmt.Sprintf("a change to %s needs an approval from a code owner: %s", r.Subject, who)
	}
	return fmt.Sprintf("a change to %s needs an approval from %s", r.Subject, who)
}

// Approver is a person whose latest review approves the pull request, with
// the teams ("org/slug", no @) they belong to among those asked about.
type Approver struct {
	Login string   `json:"login"`
	Teams []string `json:"teams"`
}

// ReviewInput is what a review decides from.
type ReviewInput struct {
	// Base is the configuration of the pull request's base: the rules.
	Base *berth.Config
	// Head is the configuration the pull request proposes; nil when it does
	// not validate, in which case changes are attributed by file through
	// Base's positions.
	Head *berth.Config
	// Changed are the paths the pull request changes (slash-separated,
	// relative to the repository root; renames list both paths).
	Changed []string
	// CodeOwners is the base tree's CODEOWNERS, nil when it has none.
	CodeOwners *CodeOwners
	// Author is the pull request author's login (no @).
	Author string
	// Approvals are the approving reviewers.
	Approvals []Approver
}

// Review is the outcome: every requirement, met or missing, sorted.
type Review struct {
	Requirements []Requirement `json:"requirements"`
}

// Missing returns the requirements no approval meets yet.
func (r Review) Missing() []Requirement {
	var out []Requirement
	for _, q := range r.Requirements {
		if !q.Met() {
			out = append(out, q)
		}
	}
	return out
}

// Approved reports whether every requirement is met.
func (r Review) Approved() bool { return len(r.Missing()) == 0 }

// ReviewChange computes the requirements and judges them against the
// approvals.
func ReviewChange(in ReviewInput) Review {
	return Review{Requirements: Judge(Requirements(in), in.Author, in.Approvals)}
}

// Requirements lists the approvals the change needs, from the base
// configuration's rules and CODEOWNERS. Approvals are not looked at.
func Requirements(in ReviewInput) []Requirement {
	base := in.Base
	if base == nil {
		base = &berth.Config{}
	}
	ap := base.Policy.Approvals
	var out []Requirement

	ch := diffConfigs(base, in.Head, in.Changed)

	// Platform objects: one requirement for all of them.
	if len(ch.platform) > 0 {
		out = append(out, Requirement{Kind: NeedAdmin, Subject: platformSubject(ch.platform),
			Objects: slices.Sorted(maps.Keys(ch.platform)), Owners: normOwners(ap.Admins)})
	}
	if ap.RequireTeamOwner {
		out = append(out, teamOwnerRequirements(base, ch)...)
	}
	if in.Head != nil {
		out = append(out, largeWorkloadRequirements(base, in.Head, ch)...)
	}
	if in.CodeOwners != nil {
		out = append(out, codeOwnerRequirements(in.CodeOwners, in.Changed)...)
	}

	slices.SortStableFunc(out, func(a, b Requirement) int {
		return cmp.Or(
			cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]),
			cmp.Compare(a.Subject, b.Subject),
		)
	})
	return out
}

// teamOwnerRequirements are the workloads changed, per team: the team's
// owners; a team the base does not know has no owners yet, so its
// workloads need an admin.
func teamOwnerRequirements(base *berth.Config, ch change) []Requirement {
	var out []Requirement
	for _, team := range slices.Sorted(maps.Keys(ch.workloads)) {
		ids := slices.Sorted(maps.Keys(ch.workloads[team]))
		if t, ok := base.Teams[team]; ok {
			out = append(out, Requirement{Kind: NeedTeamOwner, Subject: "team " + team + "'s workloads",
				Objects: ids, Owners: normOwners(t.Owners)})
		} else {
			out = append(out, Requirement{Kind: NeedAdmin, Subject: "team " + team + "'s workloads (a team the base does not define)",
				Objects: ids, Owners: normOwners(base.Policy.Approvals.Admins)})
		}
	}
	return out
}

// largeWorkloadRequirements are the large workloads changed, per team: a
// lead (an admin for a team the base does not define).
func largeWorkloadRequirements(base, head *berth.Config, ch change) []Requirement {
	ap := base.Policy.Approvals
	large := map[string][]string{}
	var sizes []string
	for _, id := range slices.Sorted(maps.Keys(ch.changedWorkload)) {
		w := head.Workloads[id]
		gpus, hours := WorkloadSize(w)
		if over, what := isLarge(ap.LargeWorkload, gpus, hours); over {
			large[w.Team] = append(large[w.Team], string(id))
			sizes = append(sizes, string(id)+" ("+what+")")
		}
	}
	var out []Requirement
	for _, team := range slices.Sorted(maps.Keys(large)) {
		ids := large[team]
		var subj []string
		for _, s := range sizes {
			if strings.HasPrefix(s, team+"/") {
				subj = append(subj, s)
			}
		}
		threshold := thresholdText(ap.LargeWorkload)
		owners := []string(nil)
		if t, ok := base.Teams[team]; ok {
			owners = t.Leads
			if len(owners) == 0 {
				owners = t.Owners
			}
		} else {
			owners = ap.Admins
		}
		out = append(out, Requirement{Kind: NeedTeamLead,
			Subject: "a workload at or above " + threshold + " (" + strings.Join(subj, ", ") + ")",
			Objects: ids, Owners: normOwners(owners)})
	}
	return out
}

// codeOwnerRequirements are the changed files CODEOWNERS names: one
// requirement per distinct set of owners.
func codeOwnerRequirements(co *CodeOwners, changed []string) []Requirement {
	byOwners := map[string][]string{}
	owners := map[string][]string{}
	for _, p := range uniq(changed) {
		who, ok := co.Owners(p)
		if !ok || len(who) == 0 {
			continue
		}
		who = normOwners(who)
		key := strings.Join(who, " ")
		byOwners[key] = append(byOwners[key], p)
		owners[key] = who
	}
	var out []Requirement
	for _, key := range slices.Sorted(maps.Keys(byOwners)) {
		files := byOwners[key]
		slices.Sort(files)
		out = append(out, Requirement{Kind: NeedCodeOwner, Subject: JoinAnd(Abbrev(files, 3)),
			Objects: files, Owners: owners[key]})
	}
	return out
}

// Judge marks each requirement met by the first approver (in login order)
// who is one of its owners, or a member of one of its teams. The author's
// own approval never counts: a pull request cannot approve itself.
func Judge(reqs []Requirement, author string, approvals []Approver) []Requirement {
	apps := append([]Approver(nil), approvals...)
	slices.SortFunc(apps, func(a, b Approver) int {
		return cmp.Compare(strings.ToLower(a.Login), strings.ToLower(b.Login))
	})
	out := make([]Requirement, len(reqs))
	for i, r := range reqs {
		r.ApprovedBy = ""
		r.AuthorIsOwner = author != "" && isOwner(r.Owners, Approver{Login: author})
		for _, a := range apps {
			if a.Login == "" || strings.EqualFold(a.Login, author) {
				continue
			}
			if isOwner(r.Owners, a) {
				r.ApprovedBy = "@" + a.Login
				break
			}
		}
		out[i] = r
	}
	return out
}

// TeamHandles lists the teams ("org/slug", no @) the requirements name,
// sorted: the memberships the caller must resolve for each approver.
func TeamHandles(reqs []Requirement) []string {
	set := map[string]bool{}
	for _, r := range reqs {
		for _, o := range r.Owners {
			if h := strings.TrimPrefix(o, "@"); strings.Contains(h, "/") {
				set[strings.ToLower(h)] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func isOwner(owners []string, a Approver) bool {
	for _, o := range owners {
		h := strings.TrimPrefix(o, "@")
		if strings.Contains(h, "/") {
			for _, t := range a.Teams {
				if strings.EqualFold(strings.TrimPrefix(t, "@"), h) {
					return true
				}
			}
			continue
		}
		if strings.EqualFold(h, a.Login) {
			return true
		}
	}
	return false
}

// WorkloadSize is the GPUs a workload's run holds at once (pods x GPUs per
// pod, fractions and MIG slices counted as they are) and its GPU-hours
// (GPUs x maxDuration; 0 without a maxDuration).
func WorkloadSize(w berth.Workload) (gpus, gpuHours float64) {
	gpus = float64(w.GPUMilli()) / 1000
	return gpus, gpus * w.MaxDuration.D().Hours()
}

func isLarge(l berth.LargeWorkload, gpus, hours float64) (bool, string) {
	var what []string
	if l.GPUs > 0 && gpus >= float64(l.GPUs) {
		what = append(what, FormatNumber(gpus)+" GPUs")
	}
	if l.GPUHours > 0 && hours >= l.GPUHours {
		what = append(what, FormatNumber(hours)+" GPU-hours")
	}
	return len(what) > 0, strings.Join(what, ", ")
}

func thresholdText(l berth.LargeWorkload) string {
	var parts []string
	if l.GPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d GPUs", l.GPUs))
	}
	if l.GPUHours > 0 {
		parts = append(parts, FormatNumber(l.GPUHours)+" GPU-hours")
	}
	return strings.Join(parts, " or ")
}

// FormatNumber prints a number without trailing zeros: 16, 1.5, 0.25.
func FormatNumber(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// change is what a pull request changes, as policy sees it.
type change struct {
	// platform: "quota of team vision", "cohort research", "policy", ...
	platform map[string]bool
	// workloads: team -> changed workload ids (added, removed or edited).
	workloads map[string]map[string]bool
	// changedWorkload: head workloads that are new or edited.
	changedWorkload map[berth.WorkloadID]bool
}

func diffConfigs(base, head *berth.Config, changed []string) change {
	ch := change{platform: map[string]bool{}, workloads: map[string]map[string]bool{}, changedWorkload: map[berth.WorkloadID]bool{}}
	addWorkload := func(id berth.WorkloadID) {
		t := id.Team()
		if ch.workloads[t] == nil {
			ch.workloads[t] = map[string]bool{}
		}
		ch.workloads[t][string(id)] = true
	}
	if head == nil {
		attributeByFile(base, changed, &ch, addWorkload)
		return ch
	}
	diffMap(base.Clusters, head.Clusters, func(name string) { ch.platform["cluster "+name] = true })
	diffMap(base.Flavors, head.Flavors, func(name string) { ch.platform["flavor "+name] = true })
	diffMap(base.Cohorts, head.Cohorts, func(name string) { ch.platform["cohort "+name] = true })
	diffMap(base.Teams, head.Teams, func(name string) { ch.platform["team "+name] = true })
	if !sameJSON(base.Policy, head.Policy) {
		ch.platform["policy"] = true
	}
	// Two loaded revisions are compared package by package: a 50,000
	// workload repository's every workload encoded twice was most of a
	// pull request's review.
	for _, id := range head.MayDiffer(base) {
		hw, inHead := head.Workloads[id]
		bw, inBase := base.Workloads[id]
		switch {
		case inHead && (!inBase || !sameJSON(bw, hw)):
			addWorkload(id)
			ch.changedWorkload[id] = true
		case inBase && !inHead:
			addWorkload(id)
		}
	}
	return ch
}

// attributeByFile maps changed files to what the base defines in them,
// for a head that does not validate. A file the base defines nothing in
// (a new file) could hold anything, so it needs an admin.
func attributeByFile(base *berth.Config, changed []string, ch *change, addWorkload func(berth.WorkloadID)) {
	files := map[string]bool{}
	for _, p := range changed {
		if strings.HasSuffix(p, ".cue") {
			files[p] = true
		}
	}
	if len(files) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, id := range base.WorkloadIDs() {
		if f := base.Workloads[id].Pos.File; files[f] {
			addWorkload(id)
			seen[f] = true
		}
	}
	for path, pos := range base.AllPositions() {
		if !files[pos.File] {
			continue
		}
		top, rest, _ := strings.Cut(path, ".")
		name, _, _ := strings.Cut(rest, ".")
		switch top {
		case "clusters", "flavors", "cohorts", "teams":
			if name != "" {
				ch.platform[strings.TrimSuffix(top, "s")+" "+name] = true
				seen[pos.File] = true
			}
		case "policy":
			ch.platform["policy"] = true
			seen[pos.File] = true
		case "workloads":
			seen[pos.File] = true
		}
	}
	for f := range files {
		if !seen[f] {
			ch.platform["file "+f+" (the head does not validate, so what it changes is unknown)"] = true
		}
	}
}

func diffMap[V any](base, head map[string]V, changed func(string)) {
	for name, h := range head {
		if b, ok := base[name]; !ok || !sameJSON(b, h) {
			changed(name)
		}
	}
	for name := range base {
		if _, ok := head[name]; !ok {
			changed(name)
		}
	}
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// platformSubject is "team vision, cohort research and policy".
func platformSubject(objs map[string]bool) string {
	return JoinAnd(Abbrev(slices.Sorted(maps.Keys(objs)), 4))
}

// Abbrev keeps the first n items and says how many more there are.
func Abbrev(xs []string, n int) []string {
	if len(xs) <= n {
		return xs
	}
	out := append([]string(nil), xs[:n]...)
	return append(out, fmt.Sprintf("%d more", len(xs)-n))
}

// JoinAnd joins "a", "a and b", "a, b and c".
func JoinAnd(xs []string) string { return join(xs, "and") }

// JoinOr joins "a", "a or b", "a, b or c".
func JoinOr(xs []string) string { return join(xs, "or") }

func join(xs []string, word string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " " + word + " " + xs[len(xs)-1]
}

// normOwners writes every owner with one leading @ and drops duplicates
// (case-insensitively), keeping the order the configuration lists them in.
func normOwners(owners []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range owners {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if !strings.HasPrefix(o, "@") && !strings.Contains(o, "@") {
			o = "@" + o
		}
		if seen[strings.ToLower(o)] {
			continue
		}
		seen[strings.ToLower(o)] = true
		out = append(out, o)
	}
	return out
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
