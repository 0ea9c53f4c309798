package status

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/redact"
)

// State is a commit status's state, as GitHub names them.
type State string

const (
	// StateSuccess: nothing to do.
	StateSuccess State = "success"
	// StatePending: waiting for something (approvals, capacity): neutral.
	StatePending State = "pending"
	// StateFailure: the commit is wrong; its author must act.
	StateFailure State = "failure"
	// StateError: berth or a cluster failed; berth retries.
	StateError State = "error"
)

// GitHub's limits for a commit status.
const (
	MaxDescription = 140
	MaxContext     = 255
)

// Status contexts.
const (
	ContextValidate   = "berth/validate"
	ContextPolicy     = "berth/policy"
	ContextPlanPrefix = "berth/plan: "
	ContextSyncPrefix = "berth/sync: "
)

// CommitStatus is one status on a commit.
type CommitStatus struct {
	Context     string `json:"context"`
	State       State  `json:"state"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// NewCommitStatus builds a status within GitHub's limits: the description
// is cut to 140 and the context to 255, ending with "..." when cut.
func NewCommitStatus(context string, state State, description string) CommitStatus {
	return CommitStatus{Context: Truncate(context, MaxContext), State: state, Description: Truncate(oneLine(description), MaxDescription)}
}

// Scrubbed is st with the env values in its description replaced, cut
// again to GitHub's limit. A value that the first cut left a prefix of
// (before the "...") is replaced too.
func (st CommitStatus) Scrubbed(s *redact.Scrubber) CommitStatus {
	st.Description = Truncate(s.StringCut(st.Description, "..."), MaxDescription)
	return st
}

// Truncate cuts s to at most n bytes (so at most n characters however they
// are counted), on a character boundary, ending with "..." when it cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " ,;:") + "..."
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// PlanContext is "berth/plan: <cluster>".
func PlanContext(cluster string) string { return ContextPlanPrefix + cluster }

// SyncContext is "berth/sync: <cluster>".
func SyncContext(cluster string) string { return ContextSyncPrefix + cluster }

// ValidateStatus is berth/validate for a revision: success with what it
// holds, failure with the first error's file:line:col and the count when
// the configuration is invalid (cue.Errors: the commit is wrong), error
// when berth could not load it at all.
func ValidateStatus(cfg *berth.Config, err error) CommitStatus {
	var errs cue.Errors
	switch {
	case err == nil && cfg != nil:
		return NewCommitStatus(ContextValidate, StateSuccess, fmt.Sprintf("valid: %s, %s, %s",
			count(len(cfg.Workloads), "workload"), count(len(cfg.Teams), "team"), count(len(cfg.Clusters), "cluster")))
	case errors.As(err, &errs) && len(errs) > 0:
		first := errs[0]
		where := first.Pos().String()
		msg := ErrorMessage(first)
		if first.Pos().IsValid() {
			msg = where + ": " + msg
		}
		return NewCommitStatus(ContextValidate, StateFailure, fmt.Sprintf("%s; first: %s", count(len(errs), "error"), msg))
	case err == nil:
		return NewCommitStatus(ContextValidate, StateError, "berth could not load the revision")
	}
	return NewCommitStatus(ContextValidate, StateError, "berth could not check the revision (retrying): "+err.Error())
}

// ErrorMessage is a CUE error's "path: message", with the message hidden
// when the path is an env value (the message may quote it, and env values
// may be secrets).
func ErrorMessage(e cue.Error) string {
	msg := e.Message
	if isEnvPath(e.Path) {
		msg = "invalid env value (not shown: env values may be secret)"
	}
	if e.Path != "" {
		return e.Path + ": " + msg
	}
	return msg
}

// isEnvPath reports whether a CUE path is, or is inside, a workload's env.
func isEnvPath(path string) bool {
	parts := strings.Split(path, ".")
	return len(parts) >= 4 && parts[0] == "workloads" && parts[3] == "env"
}

// PolicyStatus is berth/policy: success when every required approval is
// there, pending (waiting for reviews) naming the missing ones, failure
// when a requirement names nobody who could approve it.
func PolicyStatus(rev policy.Review) CommitStatus {
	missing := rev.Missing()
	if len(missing) == 0 {
		if len(rev.Requirements) == 0 {
			return NewCommitStatus(ContextPolicy, StateSuccess, "no approval needed")
		}
		var by []string
		for _, r := range rev.Requirements {
			by = appendUniq(by, r.ApprovedBy)
		}
		return NewCommitStatus(ContextPolicy, StateSuccess, "approved by "+policy.JoinAnd(by))
	}
	// Requirements that one approval may meet together are named
	// together, with who may give it once: where one requirement's people
	// are among another's (a lead who is also an owner), one approval from
	// the narrower set meets both.
	type group struct {
		owners []string
		roles  []string
	}
	var groups []*group
	state := StatePending
	for _, r := range missing {
		if len(r.Owners) == 0 {
			state = StateFailure
		}
		var into *group
		for _, g := range groups {
			switch {
			case len(r.Owners) == 0 || len(g.owners) == 0:
			case subset(g.owners, r.Owners):
				into = g
			case subset(r.Owners, g.owners):
				g.owners, into = r.Owners, g
			}
			if into != nil {
				break
			}
		}
		if into == nil {
			into = &group{owners: r.Owners}
			groups = append(groups, into)
		}
		into.roles = appendUniq(into.roles, requirementRole(r))
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		who := policy.JoinOr(g.owners)
		if who == "" {
			who = "none configured"
		}
		parts[i] = policy.JoinAnd(g.roles) + " (" + who + ")"
	}
	prefix := fmt.Sprintf("needs %s: ", count(len(groups), "approval"))
	if state == StateFailure {
		prefix = "nobody may approve: "
	}
	return NewCommitStatus(ContextPolicy, state, prefix+strings.Join(parts, "; "))
}

// subset reports whether every one of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			if strings.EqualFold(x, y) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// requirementRole is whose approval a requirement asks for: "platform
// admin", "team lead", "team vision owner", "code owner".
func requirementRole(r policy.Requirement) string {
	switch r.Kind {
	case policy.NeedAdmin:
		return "platform admin"
	case policy.NeedTeamLead:
		return "team lead"
	case policy.NeedTeamOwner:
		team := strings.TrimSuffix(strings.TrimPrefix(r.Subject, "team "), "'s workloads")
		return "team " + team + " owner"
	}
	return "code owner"
}

// PlanStatus is berth/plan: <cluster> for a pull request: failure when a
// workload would newly be rejected (it can never fit as written), pending
// with neutral wording when one of the pull request's workloads would
// queue (with the estimated wait), success when everything fits now,
// error when the cluster could not be planned.
func PlanStatus(v PlanView) CommitStatus {
	ctx := PlanContext(v.Cluster)
	if v.Err != nil {
		return NewCommitStatus(ctx, StateError, "could not plan (retrying): "+v.Err.Error())
	}
	g := groupRows(v.Rows)
	if st, ok := g.notFitting(ctx, v); ok {
		return st
	}
	parts := g.fitting()
	if len(parts) == 0 {
		if !v.Blast.Empty() {
			return NewCommitStatus(ctx, StateSuccess, "no workload of this pull request runs here; "+blastSummary(v.Blast))
		}
		return NewCommitStatus(ctx, StateSuccess, "no change on this cluster")
	}
	msg := "everything fits: " + strings.Join(parts, ", ")
	if !v.Blast.Empty() {
		msg += "; " + blastSummary(v.Blast)
	}
	return NewCommitStatus(ctx, StateSuccess, msg)
}

// planRows are a plan's rows by what their decision does.
type planRows struct {
	rejected, queued, waiting, admitted, preempting, kept, stopping []DecisionRow
}

func groupRows(rows []DecisionRow) planRows {
	var g planRows
	for _, r := range rows {
		switch r.Decision.Action {
		case berth.ActionReject:
			g.rejected = append(g.rejected, r)
		case berth.ActionQueue:
			g.queued = append(g.queued, r)
		case berth.ActionWait:
			g.waiting = append(g.waiting, r)
		case berth.ActionAdmit:
			g.admitted = append(g.admitted, r)
		case berth.ActionPreempt:
			g.preempting = append(g.preempting, r)
		case berth.ActionKeep, berth.ActionDone:
			g.kept = append(g.kept, r)
		case berth.ActionStop, berth.ActionPreempted:
			g.stopping = append(g.stopping, r)
		}
	}
	return g
}

// notFitting is the status of a plan where not everything fits: a
// failure when a workload can never fit (its own or one the change makes
// unadmittable), pending when one would queue or wait. ok is false when
// everything fits.
func (g planRows) notFitting(ctx string, v PlanView) (st CommitStatus, ok bool) {
	others := len(v.Blast.Unadmittable)
	switch {
	case len(g.rejected) > 0:
		r := g.rejected[0]
		msg := fmt.Sprintf("%s can never fit: %s", r.Decision.Workload, reasonText(r.Decision.Reason))
		if n := len(g.rejected) - 1 + others; n > 0 {
			msg = fmt.Sprintf("%s rejected; %s", count(len(g.rejected)+others, "workload"), msg)
		}
		return NewCommitStatus(ctx, StateFailure, msg), true
	case others > 0:
		return NewCommitStatus(ctx, StateFailure, fmt.Sprintf("would make %s unadmittable: %s",
			count(others, "other workload"), stripTicks(v.Blast.Unadmittable[0]))), true
	case len(g.queued) > 0:
		q := g.queued[0]
		wait := "no estimate yet"
		if q.Decision.EstimatedStart != nil {
			wait = "estimated start " + WaitText(*q.Decision.EstimatedStart, v.Time)
		}
		msg := fmt.Sprintf("%s would queue at #%d, %s", q.Decision.Workload, q.Decision.Position, wait)
		if len(g.queued) > 1 {
			msg = fmt.Sprintf("%s would queue; first: %s at #%d, %s", count(len(g.queued), "workload"), q.Decision.Workload, q.Decision.Position, wait)
		}
		if n := len(g.admitted) + len(g.preempting); n > 0 {
			msg = fmt.Sprintf("%d fit now; %s", n, msg)
		}
		return NewCommitStatus(ctx, StatePending, msg), true
	case len(g.waiting) > 0 && len(g.admitted)+len(g.preempting) == 0:
		w := g.waiting[0]
		return NewCommitStatus(ctx, StatePending, fmt.Sprintf("%s waits: %s", w.Decision.Workload, reasonText(w.Decision.Reason))), true
	}
	return CommitStatus{}, false
}

// fitting says what a plan where everything fits does, one part per
// kind of decision it has.
func (g planRows) fitting() []string {
	var parts []string
	if n := len(g.admitted); n > 0 {
		if gpus := sumGPUs(g.admitted); gpus > 0 {
			parts = append(parts, fmt.Sprintf("%d admitted now (%s)", n, gpuText(gpus)))
		} else {
			parts = append(parts, fmt.Sprintf("%d admitted now", n))
		}
	}
	if n := len(g.preempting); n > 0 {
		var victims []string
		for _, r := range g.preempting {
			for _, vic := range r.Decision.Victims {
				victims = appendUniq(victims, string(vic.Workload))
			}
		}
		parts = append(parts, fmt.Sprintf("%d admitted by preempting %s", n, policy.JoinAnd(policy.Abbrev(victims, 2))))
	}
	if n := len(g.waiting); n > 0 {
		parts = append(parts, fmt.Sprintf("%d waiting on dependencies or schedules", n))
	}
	if n := len(g.kept); n > 0 {
		parts = append(parts, fmt.Sprintf("%d running or done as before (a new spec applies to its next run)", n))
	}
	if n := len(g.stopping); n > 0 {
		parts = append(parts, fmt.Sprintf("%d stopping", n))
	}
	return parts
}

func blastSummary(b Blast) string {
	var parts []string
	if n := len(b.Preempted); n > 0 {
		parts = append(parts, count(n, "running workload")+" preempted")
	}
	if n := len(b.OverQuota); n > 0 {
		parts = append(parts, count(n, "team")+" over quota")
	}
	if n := len(b.Displaced); n > 0 {
		parts = append(parts, count(n, "other decision")+" changed")
	}
	if n := len(b.Exposed); n > 0 {
		parts = append(parts, count(n, "team")+" newly borrowing")
	}
	return strings.Join(parts, ", ")
}

func stripTicks(s string) string { return strings.ReplaceAll(s, "`", "") }

func sumGPUs(rows []DecisionRow) float64 {
	var g float64
	for _, r := range rows {
		g += r.Decision.GPUs
	}
	return g
}

// SyncStatus is berth/sync: <cluster> on a merged commit: pending while
// its workloads wait or run, success when they all succeeded (or, for
// services, run), failure when one failed or was rejected, error when the
// cluster failed.
func SyncStatus(v SyncView) CommitStatus {
	ctx := SyncContext(v.Cluster)
	if v.Err != nil {
		return NewCommitStatus(ctx, StateError, "cluster failed (retrying): "+v.Err.Error())
	}
	counts := map[string]int{}
	var failed []SyncWorkload
	replicasWaiting := 0
	for _, w := range v.Workloads {
		if w.Replica() {
			// Its service's run decides the status; a replica that
			// waits for quota is said, not waited for.
			if w.State == SyncQueued {
				replicasWaiting++
			}
			continue
		}
		counts[w.State]++
		if w.State == SyncRunning && !w.Kind.RunsOnce() {
			counts[SyncServing]++
		}
		if w.State == SyncFailed || w.State == SyncRejected {
			failed = append(failed, w)
		}
	}
	var parts []string
	for _, s := range syncStateOrder {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if replicasWaiting > 0 {
		parts = append(parts, fmt.Sprintf("%d autoscaled %s waiting for quota", replicasWaiting, map[bool]string{true: "replica", false: "replicas"}[replicasWaiting == 1]))
	}
	summary := strings.Join(parts, ", ")
	if summary == "" {
		summary = "nothing of this commit runs here"
	}
	switch {
	case len(failed) > 0:
		f := failed[0]
		return NewCommitStatus(ctx, StateFailure, fmt.Sprintf("%s %s: %s (%s)", f.ID, f.State, f.Reason, summary))
	case counts[SyncQueued]+counts[SyncAdmitted]+counts[SyncPreempted]+counts[SyncWaiting] > 0 ||
		counts[SyncRunning] > counts[SyncServing]:
		for _, w := range v.Workloads {
			if w.State == SyncQueued && w.EstimatedStart != nil {
				summary += fmt.Sprintf("; %s estimated start %s", w.ID, WaitText(*w.EstimatedStart, v.Time))
				break
			}
		}
		return NewCommitStatus(ctx, StatePending, summary)
	}
	return NewCommitStatus(ctx, StateSuccess, summary)
}

func count(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%s %ss", commas(n), word)
}

// commas prints 1000 as "1,000".
func commas(n int) string {
	s := fmt.Sprint(n)
	if n < 0 || len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func appendUniq(xs []string, x string) []string {
	if x == "" {
		return xs
	}
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}
