package status

import (
	"fmt"
	"io"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Explain writes why a workload is where it is: its decision and reason,
// what it asks for, its team's quota, where it is defined, and what a
// person can do about it.
func Explain(w io.Writer, cfg *berth.Config, plan *berth.Plan, runs []reconcile.RunState, id berth.WorkloadID) error {
	var ds []berth.Decision
	for _, d := range plan.Decisions {
		if d.Workload == id {
			ds = append(ds, *d)
		}
	}
	wl, inGit := cfg.Workloads[id]
	if len(ds) == 0 {
		if !inGit {
			return fmt.Errorf("workload %s is not in the repository and not on cluster %s", id, plan.Cluster)
		}
		return fmt.Errorf("workload %s runs on another cluster, not %s", id, plan.Cluster)
	}
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s run %s: %s, team %s, priority %s, cluster %s\n", id, d.RunID, d.Kind, d.Team,
			berth.PriorityText(d.PriorityTier, d.Priority), d.Cluster)
		if inGit && wl.Pos.IsValid() {
			fmt.Fprintf(w, "  defined at   %s\n", wl.Pos)
		}
		fmt.Fprintf(w, "  decision     %s\n", describeAction(d))
		if d.Reason != nil {
			fmt.Fprintf(w, "  why          %s [%s]\n", d.Reason.Message, d.Reason.Code)
		}
		if d.EstimatedStart != nil {
			fmt.Fprintf(w, "  estimate     starts by %s if running jobs end at their maxDuration\n", FormatTime(*d.EstimatedStart))
		}
		for _, v := range d.Victims {
			fmt.Fprintf(w, "  preempts     %s (%s): %s\n", v.Workload, berth.PriorityText(v.PriorityTier, v.Priority), v.Reason.Message)
		}
		for _, r := range runs {
			if r.Workload == id && r.RunID == d.RunID {
				fmt.Fprintf(w, "  ledger       %s, attempt %d", r.Phase, r.Attempts)
				if r.Reason != "" {
					fmt.Fprintf(w, ", %s", r.Reason)
				}
				if r.Note != "" {
					fmt.Fprintf(w, " (%s)", r.Note)
				}
				fmt.Fprintln(w)
			}
		}
		if inGit {
			fmt.Fprintf(w, "  asks for     %s\n", asks(wl))
			for _, q := range plan.Quota {
				if q.Team == d.Team && (q.Resource == berth.ResourceGPU || d.Reason != nil && strings.Contains(d.Reason.Message, string(q.Resource))) {
					fmt.Fprintf(w, "  quota        team %s, %s %s: %s\n", q.Team, q.Flavor, q.Resource, QuotaChange(q))
				}
			}
		}
		if hint := Hint(cfg, d); hint != "" {
			fmt.Fprintf(w, "  to change it %s\n", hint)
		}
	}
	return nil
}

func describeAction(d berth.Decision) string {
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt, berth.ActionKeep:
		verb := map[berth.Action]string{berth.ActionAdmit: "admitted", berth.ActionPreempt: "admitted by preempting", berth.ActionKeep: "running"}[d.Action]
		return fmt.Sprintf("%s on %s, %s", verb, FlavorText(d), Where(d))
	case berth.ActionQueue:
		return fmt.Sprintf("queued at position %d", d.Position)
	case berth.ActionPreempted:
		return preemptedBy(d, "preempted")
	}
	return ActionPhrase(d.Action)
}

func asks(w berth.Workload) string {
	if len(w.Roles) > 0 {
		var roles []string
		for _, ps := range w.PodSets() {
			roles = append(roles, fmt.Sprintf("%s %d x (%s)", ps.Role, ps.Count, podAsks(ps.Resources)))
		}
		s := strings.Join(roles, " + ")
		if w.MaxDuration > 0 {
			s += ", for at most " + w.MaxDuration.String()
		}
		return s
	}
	r := w.Resources
	s := fmt.Sprintf("%d %s x (%s)", w.Pods(), w.Kind.Pods(w.Pods()), podAsks(r))
	if w.MaxDuration > 0 {
		s += ", for at most " + w.MaxDuration.String()
	}
	if r.Flavor != "" {
		s += ", on flavor " + r.Flavor
	}
	return s
}

// podAsks is what one pod asks: "1 GPU, 8 cpu, 64Gi memory" (with its
// flavor when it names one and is one role of several).
func podAsks(r berth.Resources) string {
	var what []string
	switch {
	case r.MIG != "":
		what = append(what, "MIG "+r.MIG)
	case r.GPUFraction > 0:
		what = append(what, trimFloat(r.GPUFraction)+" of a GPU")
	case r.GPU > 0:
		what = append(what, fmt.Sprintf("%d GPU", r.GPU)+map[bool]string{true: "s", false: ""}[r.GPU > 1])
	}
	what = append(what, r.CPU.String()+" cpu", r.Memory.String()+" memory")
	return strings.Join(what, ", ")
}

// Hint says what a person can do about a decision, with the place in Git
// to do it where one applies.
func Hint(cfg *berth.Config, d berth.Decision) string {
	if d.Reason == nil {
		return ""
	}
	teamAt := ""
	if p := cfg.Pos("teams." + d.Team); p.IsValid() {
		teamAt = " (" + p.String() + ")"
	}
	switch d.Reason.Code {
	case berth.ReasonQuota:
		return "wait for the team's runs to finish, ask for less, or raise team " + d.Team + "'s nominal quota or borrowing limit" + teamAt
	case berth.ReasonCohort:
		return "wait for other teams of the cohort to finish, or raise team " + d.Team + "'s nominal quota" + teamAt
	case berth.ReasonCapacity, berth.ReasonGang:
		return "wait for running jobs to finish; a smaller request or fewer workers may fit sooner"
	case berth.ReasonBehindHead:
		return "set a shorter maxDuration: a job that ends before the first in line starts may run now"
	case berth.ReasonExceedsQuota:
		return "ask for less, or raise team " + d.Team + "'s quota" + teamAt
	case berth.ReasonNoQuota:
		return "add the flavor to team " + d.Team + "'s quota" + teamAt + ", or ask for a flavor it has"
	case berth.ReasonNoMatchingNodes:
		return "check the flavor's gpuModel, mig and nodeLabels against the cluster's nodes"
	case berth.ReasonPodTooLarge, berth.ReasonExceedsCapacity:
		return "split the job into more, smaller workers, or ask for fewer"
	case berth.ReasonDependencyFailed:
		return "fix the failed step and bump its runId to run it again"
	case berth.ReasonRunFailed:
		return "read its logs ('berth logs " + string(d.Workload) + "'), fix it, and bump its runId to run it again (or raise retries)"
	case berth.ReasonBackoff:
		return "wait: it is retried by itself once its backoff has passed"
	}
	return ""
}

// preemptedBy is verb and who preempts the run: "preempted by
// serving/chat-api", or the verb alone for a run preempted by nobody (its
// node was lost: the reason says which).
func preemptedBy(d berth.Decision, verb string) string {
	if d.PreemptedBy == "" {
		return verb
	}
	return verb + " by " + string(d.PreemptedBy)
}
