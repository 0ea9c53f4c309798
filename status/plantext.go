package status

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
)

// actionOrder is the order plan text lists decisions in: what changes
// first, then what waits, then what stays.
var actionOrder = map[berth.Action]int{
	berth.ActionPreempt:   0,
	berth.ActionAdmit:     1,
	berth.ActionPreempted: 2,
	berth.ActionStop:      3,
	berth.ActionReject:    4,
	berth.ActionQueue:     5,
	berth.ActionWait:      6,
	berth.ActionKeep:      7,
	berth.ActionDone:      8,
}

// SortForPeople orders decisions as plan text shows them: by action, queue
// position, then workload.
func SortForPeople(ds []*berth.Decision) []*berth.Decision {
	out := slices.Clone(ds)
	slices.SortStableFunc(out, func(a, b *berth.Decision) int {
		return cmp.Or(
			cmp.Compare(actionOrder[a.Action], actionOrder[b.Action]),
			cmp.Compare(a.Position, b.Position),
			cmp.Compare(a.Workload, b.Workload),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
	return out
}

// WritePlanText writes plans as text for a terminal. It writes through a
// buffer: the table writer writes each cell and each run of padding on
// its own, which is a system call per write on a terminal or a pipe
// (a second of CPU for a plan of 50,000 lines).
func WritePlanText(w io.Writer, plans []*berth.Plan) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for i, p := range plans {
		if i > 0 {
			fmt.Fprintln(bw)
		}
		if err := writePlan(bw, p); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writePlan(w io.Writer, p *berth.Plan) error {
	counts := map[berth.Action]int{}
	for _, d := range p.Decisions {
		counts[d.Action]++
	}
	fmt.Fprintf(w, "cluster %s, as of %s (placement %s)\n", p.Cluster, FormatTime(p.Time), p.Placement)
	var summary []string
	for _, a := range []berth.Action{berth.ActionAdmit, berth.ActionPreempt, berth.ActionQueue, berth.ActionReject,
		berth.ActionWait, berth.ActionKeep, berth.ActionPreempted, berth.ActionStop, berth.ActionDone} {
		if counts[a] > 0 {
			summary = append(summary, fmt.Sprintf("%d %s", counts[a], ActionPhrase(a)))
		}
	}
	if len(summary) == 0 {
		summary = []string{"nothing to do"}
	}
	fmt.Fprintf(w, "  %s\n\n", strings.Join(summary, ", "))

	tab := newTable(5, len(p.Decisions))
	for _, dp := range SortForPeople(p.Decisions) {
		d := *dp
		id := string(d.Workload)
		if _, _, replica := berth.ParseScaleRunID(d.RunID); replica {
			id += RunSuffix(d.RunID)
		}
		tab.row("  "+actionLabel(d), id, string(d.Kind), DecisionGPUs(d), Detail(d))
		for _, v := range d.Victims {
			tab.row("  ", "  stops "+string(v.Workload), "", "", v.Reason.Message)
		}
		if showsMounts(d) {
			for _, m := range d.Mounts {
				tab.row("  ", "  mounts", "", "", fmt.Sprintf("%s (%s) at %s", m.Name, m.Kind, mountText(m)))
			}
		}
		if d.ScaleRoom != "" {
			tab.row("  ", "", "", "", d.ScaleRoom)
		}
	}
	if err := tab.flush(w); err != nil {
		return err
	}
	if len(p.Quota) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n  quota (used of nominal; borrowed), before -> after\n")
	tab = newTable(4, len(p.Quota))
	for _, q := range p.Quota {
		tab.row("  "+q.Team, q.Flavor, string(q.Resource), QuotaChange(q))
	}
	return tab.flush(w)
}

func actionLabel(d berth.Decision) string {
	if d.Action == berth.ActionQueue && d.Position > 0 {
		return fmt.Sprintf("queue #%d", d.Position)
	}
	return string(d.Action)
}

// ActionPhrase is how a count of decisions reads: "3 admitted".
func ActionPhrase(a berth.Action) string {
	switch a {
	case berth.ActionAdmit:
		return "admitted"
	case berth.ActionPreempt:
		return "admitted by preempting"
	case berth.ActionQueue:
		return "queued"
	case berth.ActionReject:
		return "rejected"
	case berth.ActionWait:
		return "waiting"
	case berth.ActionKeep:
		return "running"
	case berth.ActionPreempted:
		return "preempted"
	case berth.ActionStop:
		return "stopping"
	case berth.ActionDone:
		return "done"
	}
	return string(a)
}

// DecisionGPUs is what a run asks of GPUs, for a column: "2 GPUs", "0.5
// GPUs", a MIG slice as its profile ("1g.10gb", "3 x 1g.10gb"), "-" for
// none.
func DecisionGPUs(d berth.Decision) string {
	if d.MIG != "" && d.GPUs > 0 {
		if n := trimFloat(d.GPUs); n != "1" {
			return n + " x " + d.MIG
		}
		return d.MIG
	}
	return gpuText(d.GPUs)
}

func gpuText(g float64) string {
	if g == 0 {
		return "-"
	}
	s := trimFloat(g)
	if s == "1" {
		return "1 GPU"
	}
	return s + " GPUs"
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// FlavorText names where a run takes its resources: its flavor, or, for a
// team with resource groups, each group's flavor and what it gives ("h100
// for gpu, cpu-nodes for cpu and memory").
func FlavorText(d berth.Decision) string {
	if len(d.Flavors) == 0 {
		return d.Flavor
	}
	var order []string
	res := map[string][]string{}
	for _, r := range berth.ResourceNames {
		f, ok := d.Flavors[r]
		if !ok {
			continue
		}
		if _, seen := res[f]; !seen {
			order = append(order, f)
		}
		res[f] = append(res[f], string(r))
	}
	parts := make([]string, len(order))
	for i, f := range order {
		parts[i] = f + " for " + policy.JoinAnd(res[f])
	}
	return strings.Join(parts, ", ")
}

// Detail is the one-line explanation of a decision.
func Detail(d berth.Decision) string {
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt, berth.ActionKeep:
		s := fmt.Sprintf("%s, %s", FlavorText(d), Where(d))
		if len(d.Roles) > 0 {
			s = fmt.Sprintf("%s; %s", Roles(d), Where(d))
		}
		if d.Borrowed {
			s += ", borrowing"
		}
		if d.Backfilled {
			s += ", backfilled"
		}
		if d.Action == berth.ActionKeep && !d.Since.IsZero() {
			s += ", since " + FormatTime(d.Since)
		}
		return s
	case berth.ActionQueue:
		s := reasonText(d.Reason)
		if len(d.Roles) > 0 {
			s += "; asks " + Roles(d)
		}
		if d.EstimatedStart != nil {
			s += "; estimated start " + FormatTime(*d.EstimatedStart)
		}
		return s
	case berth.ActionPreempted:
		return preemptedBy(d, "preempted") + ": " + reasonText(d.Reason)
	case berth.ActionDone:
		if d.Reason != nil {
			return d.Reason.Message
		}
		return "run " + d.RunID + " succeeded; bump runId to run it again"
	}
	return reasonText(d.Reason)
}

func reasonText(r *berth.Reason) string {
	if r == nil {
		return ""
	}
	return r.Message
}

// Where says where a run goes: "2 workers on 1 node (gpu-3: GPUs 0,1)",
// or for a workload with a minimum, "25 of 50 workers, at least 20 on 4
// nodes (...)".
func Where(d berth.Decision) string {
	n := len(d.Placements)
	if n == 0 {
		return "no placement"
	}
	word := d.Kind.Pods(n)
	count := fmt.Sprintf("%d %s", n, word)
	if len(d.Roles) > 0 {
		// Roles says what each role asked and got.
		count = fmt.Sprintf("%d pods", n)
		if n == 1 {
			count = "1 pod"
		}
	} else if d.PodsAsked > 0 {
		// A workload with a minimum says what it asked and accepts.
		count = fmt.Sprintf("%d of %d %s, at least %d", n, d.PodsAsked, d.Kind.Pods(d.PodsAsked), d.MinPods)
	}
	nodes := d.Nodes()
	nodeWord := "node"
	if nodes != 1 {
		nodeWord = "nodes"
	}
	parts := NodePlacements(d.Placements)
	if len(parts) > 4 {
		parts = append(parts[:4], fmt.Sprintf("+%d more nodes", len(parts)-4))
	}
	return fmt.Sprintf("%s on %d %s (%s)", count, nodes, nodeWord, strings.Join(parts, "; "))
}

// Roles says what each role of a workload with roles gets (admit,
// preempt, keep) or asks (queue), in role order: "launcher 1 (cpu),
// worker 6 of 8, at least 4 x 1 GPU (h100)".
func Roles(d berth.Decision) string {
	parts := make([]string, 0, len(d.Roles))
	for _, r := range d.Roles {
		n := len(r.Placements)
		if n == 0 || !d.Starts() && d.Action != berth.ActionKeep {
			n = r.PodsAsked
		}
		s := fmt.Sprintf("%s %d", r.Role, n)
		if r.PodsAsked > 0 && r.MinPods > 0 {
			if n != r.PodsAsked {
				s += fmt.Sprintf(" of %d", r.PodsAsked)
			}
			s += fmt.Sprintf(", at least %d", r.MinPods)
		}
		if g := podGPUs(r.Resources); g != "" {
			s += " x " + g
		}
		if r.Flavor != "" {
			s += " (" + r.Flavor + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// podGPUs is what one pod asks of GPUs: "1 GPU", "MIG 1g.10gb", "0.5 of a
// GPU"; empty for a CPU-only pod.
func podGPUs(r berth.Resources) string {
	switch {
	case r.MIG != "":
		return "MIG " + r.MIG
	case r.GPUFraction > 0:
		return trimFloat(r.GPUFraction) + " of a GPU"
	case r.GPU == 1:
		return "1 GPU"
	case r.GPU > 1:
		return fmt.Sprintf("%d GPUs", r.GPU)
	}
	return ""
}

// NodePlacements merges placements per node, in order of first
// appearance: "gpu-1: GPUs 0,1,2,3", "box: 2 x 0.5 of GPU 0".
func NodePlacements(ps []berth.Placement) []string {
	var order []string
	byNode := map[string][]berth.Placement{}
	for _, p := range ps {
		if _, ok := byNode[p.Node]; !ok {
			order = append(order, p.Node)
		}
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	out := make([]string, 0, len(order))
	for _, n := range order {
		group := byNode[n]
		var gpus []string
		var frac []string
		var mig []string
		for _, p := range group {
			switch {
			case len(p.MIG) > 0:
				for _, m := range p.MIG {
					mig = append(mig, fmt.Sprintf("MIG %s on GPU %d", m.Profile, m.GPU))
				}
			case p.GPUFraction > 0 && len(p.GPUs) == 1:
				frac = append(frac, fmt.Sprintf("%s of GPU %d", trimFloat(p.GPUFraction), p.GPUs[0]))
			default:
				for _, g := range p.GPUs {
					gpus = append(gpus, fmt.Sprint(g))
				}
			}
		}
		var what []string
		if len(gpus) == 1 {
			what = append(what, "GPU "+gpus[0])
		} else if len(gpus) > 1 {
			what = append(what, "GPUs "+strings.Join(gpus, ","))
		}
		what = append(what, countSame(frac)...)
		what = append(what, countSame(mig)...)
		if len(what) == 0 {
			out = append(out, n)
		} else {
			out = append(out, n+": "+strings.Join(what, ", "))
		}
	}
	return out
}

// countSame merges equal entries, in order of first appearance: "0.5 of
// GPU 0", "0.5 of GPU 0" is "2 x 0.5 of GPU 0".
func countSame(xs []string) []string {
	var order []string
	n := map[string]int{}
	for _, x := range xs {
		if n[x] == 0 {
			order = append(order, x)
		}
		n[x]++
	}
	for i, x := range order {
		if n[x] > 1 {
			order[i] = fmt.Sprintf("%d x %s", n[x], x)
		}
	}
	return order
}

// PlacementText is "node: GPUs 0,1", "node: 0.5 of GPU 3", "node: MIG 1g.10gb on GPU 7".
func PlacementText(p berth.Placement) string {
	switch {
	case len(p.MIG) > 0:
		var s []string
		for _, m := range p.MIG {
			s = append(s, fmt.Sprintf("MIG %s on GPU %d", m.Profile, m.GPU))
		}
		return p.Node + ": " + strings.Join(s, ", ")
	case p.GPUFraction > 0 && len(p.GPUs) == 1:
		return fmt.Sprintf("%s: %s of GPU %d", p.Node, trimFloat(p.GPUFraction), p.GPUs[0])
	case len(p.GPUs) > 0:
		ids := make([]string, len(p.GPUs))
		for i, g := range p.GPUs {
			ids[i] = fmt.Sprint(g)
		}
		word := "GPUs"
		if len(ids) == 1 {
			word = "GPU"
		}
		return p.Node + ": " + word + " " + strings.Join(ids, ",")
	}
	return p.Node
}

// QuotaChange is "2 of 3 -> 3 of 3 (borrowed 0 -> 1)".
func QuotaChange(q berth.QuotaUse) string {
	f := func(n int64) string { return berth.FormatAmount(q.Resource, n) }
	s := fmt.Sprintf("%s of %s", f(q.UsedBefore), f(q.Nominal))
	if q.UsedAfter != q.UsedBefore {
		s += fmt.Sprintf(" -> %s of %s", f(q.UsedAfter), f(q.Nominal))
	}
	if q.BorrowedBefore > 0 || q.BorrowedAfter > 0 {
		if q.BorrowedBefore == q.BorrowedAfter {
			s += fmt.Sprintf(" (borrowed %s)", f(q.BorrowedAfter))
		} else {
			s += fmt.Sprintf(" (borrowed %s -> %s)", f(q.BorrowedBefore), f(q.BorrowedAfter))
		}
	}
	return s
}

// FormatTime is how times read in berth's output: UTC, to the minute.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// showsMounts reports whether plan text lists what the run mounts: for a
// run that starts, runs or waits to, not for one that stops or is done.
func showsMounts(d berth.Decision) bool {
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt, berth.ActionKeep, berth.ActionQueue, berth.ActionWait:
		return true
	}
	return false
}

// mountText is where one mount is and what backs it: "/data, read-only:
// claim imagenet".
func mountText(m berth.Mount) string {
	s := m.Path
	if m.ReadOnly {
		s += ", read-only"
	}
	return s + ": " + m.Source
}

// MountsText is what a run mounts, in a sentence: "checkpoints
// (checkpoint) at /ckpt: a 10Gi claim of the run, ...; imagenet
// (dataset) at /data, read-only: claim imagenet". Empty for none.
func MountsText(ms []berth.Mount) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s (%s) at %s", m.Name, m.Kind, mountText(m))
	}
	return strings.Join(parts, "; ")
}
