package status

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// WorkloadStatus is one line of `berth status`: a workload run, where it is
// in its life, and why.
type WorkloadStatus struct {
	Cluster  string           `json:"cluster"`
	Workload berth.WorkloadID `json:"workload"`
	RunID    string           `json:"runId"`
	Team     string           `json:"team"`
	Kind     berth.Kind       `json:"kind"`
	// State is queued, admitted, running, succeeded, failed, preempted,
	// stopping, stopped, rejected or waiting.
	State    string     `json:"state"`
	GPUs     float64    `json:"gpus"`
	MIG      string     `json:"mig,omitempty"` // GPUs counts slices of this profile
	Flavor   string     `json:"flavor,omitempty"`
	Nodes    []string   `json:"nodes,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Position int        `json:"position,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	// URL is where a running service or notebook is reached, without a
	// token ('berth open' adds a notebook's for its owner).
	URL string `json:"url,omitempty"`
}

// Key is the run the status is of.
func (ws WorkloadStatus) Key() berth.RunKey {
	return berth.RunKey{Workload: ws.Workload, RunID: ws.RunID}
}

// Workloads merges a cluster's plan with its observed runs into one status
// per workload run, sorted by workload.
func Workloads(cluster string, plan *berth.Plan, runs []reconcile.RunState) []WorkloadStatus {
	byRun := map[berth.RunKey]reconcile.RunState{}
	for _, r := range runs {
		byRun[r.Key()] = r
	}
	var out []WorkloadStatus
	seen := map[berth.RunKey]bool{}
	if plan != nil {
		for _, d := range plan.Decisions {
			k := d.Key()
			seen[k] = true
			run, known := byRun[k]
			out = append(out, decisionStatus(cluster, *d, run, known))
		}
	}
	// Runs the plan does not mention: history (finished ticks, superseded runs).
	for _, r := range runs {
		if seen[r.Key()] {
			continue
		}
		out = append(out, WorkloadStatus{Cluster: cluster, Workload: r.Workload, RunID: r.RunID, Team: r.Workload.Team(),
			Kind: r.Kind, State: string(r.Phase), Flavor: r.Flavor, Since: timePtr(r.FinishedAt), Attempts: r.Attempts,
			Reason: r.Reason, GPUs: float64(r.Resources.GPUMilli()) / 1000 * float64(max(1, len(r.Placements))), MIG: r.Resources.MIG})
	}
	slices.SortStableFunc(out, func(a, b WorkloadStatus) int {
		return cmp.Or(
			cmp.Compare(a.Workload, b.Workload),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
	return out
}

// decisionStatus is the status of the run a decision is about, what the
// backend observed of it (known) overriding the plan where it knows
// better: why an admitted run did not start, how a run ended.
func decisionStatus(cluster string, d berth.Decision, run reconcile.RunState, known bool) WorkloadStatus {
	ws := WorkloadStatus{Cluster: cluster, Workload: d.Workload, RunID: d.RunID, Team: d.Team, Kind: d.Kind,
		GPUs: d.GPUs, MIG: d.MIG, Flavor: d.Flavor, Position: d.Position, Nodes: NodePlacementNames(d.Placements)}
	if d.Reason != nil {
		ws.Reason = d.Reason.Message
	}
	if known {
		ws.Attempts = run.Attempts
		if run.Phase.Holds() {
			ws.URL = run.URL
		}
	}
	switch d.Action {
	case berth.ActionAdmit, berth.ActionPreempt:
		ws.State = "admitted"
		if known && run.Phase == reconcile.PhaseQueued && run.Reason != "" {
			// admitted, and the backend says why it did not start
			// (a Secret its env needs is missing)
			ws.Reason = run.Reason
		}
		if d.Action == berth.ActionPreempt {
			var vs []string
			for _, v := range d.Victims {
				vs = append(vs, string(v.Workload))
			}
			ws.Reason = "preempting " + strings.Join(vs, ", ")
		}
	case berth.ActionKeep:
		ws.State = "running"
		ws.Since = timePtr(d.Since)
	case berth.ActionQueue:
		ws.State = "queued"
		ws.Since = timePtr(d.Since)
		if d.EstimatedStart != nil {
			ws.Reason += "; estimated start " + FormatTime(*d.EstimatedStart)
		}
	case berth.ActionReject:
		ws.State = "rejected"
	case berth.ActionWait:
		ws.State = "waiting"
	case berth.ActionPreempted:
		ws.State = "preempted"
	case berth.ActionStop:
		ws.State = "stopping"
	case berth.ActionDone:
		ws.State = "succeeded"
		if d.Reason != nil {
			ws.State = "failed"
		}
		ws.Since = timePtr(d.Since)
	}
	if known && run.Phase.Final() && (d.Action == berth.ActionDone || d.Action == berth.ActionStop) {
		ws.State = string(run.Phase)
		ws.Since = timePtr(run.FinishedAt)
		if run.Reason != "" {
			ws.Reason = run.Reason
		}
	}
	return ws
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NodePlacementNames lists the distinct nodes of placements in order.
func NodePlacementNames(ps []berth.Placement) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.Node] {
			seen[p.Node] = true
			out = append(out, p.Node)
		}
	}
	return out
}

// WriteWorkloadsText writes statuses as a table. now, when set, shows
// times as ages ("3m ago"); otherwise as UTC times. It writes through a
// buffer, as WritePlanText does: the table writer writes each cell and
// run of padding on its own, a system call each on a terminal or a pipe.
func WriteWorkloadsText(w io.Writer, ws []WorkloadStatus, now time.Time) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := writeWorkloadsTable(bw, ws, now); err != nil {
		return err
	}
	if err := writeURLs(bw, ws); err != nil {
		return err
	}
	return bw.Flush()
}

// writeWorkloadsTable writes one line per workload's run.
func writeWorkloadsTable(w io.Writer, ws []WorkloadStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tRUN\tKIND\tSTATE\tGPUS\tSINCE\tREASON")
	for _, s := range ws {
		since := "-"
		if s.Since != nil {
			if now.IsZero() {
				since = FormatTime(*s.Since)
			} else {
				since = Age(now.Sub(*s.Since)) + " ago"
			}
		}
		state := s.State
		if s.State == "queued" && s.Position > 0 {
			state = fmt.Sprintf("queued #%d", s.Position)
		}
		gpus := "-"
		switch {
		case s.MIG != "" && s.GPUs > 0:
			gpus = DecisionGPUs(berth.Decision{GPUs: s.GPUs, MIG: s.MIG})
		case s.GPUs > 0:
			gpus = trimFloat(s.GPUs)
		}
		reason := s.Reason
		if reason == "" && len(s.Nodes) > 0 {
			reason = "on " + strings.Join(s.Nodes, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Workload, s.RunID, s.Kind, state, gpus, since, reason)
	}
	return tw.Flush()
}

// writeURLs lists where the running services and notebooks are reached,
// after the table, when any is.
func writeURLs(w io.Writer, ws []WorkloadStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	n := 0
	for _, s := range ws {
		if s.URL == "" {
			continue
		}
		if n == 0 {
			fmt.Fprintln(tw, "\nWORKLOAD\tURL")
		}
		n++
		note := ""
		if s.Kind == berth.KindNotebook {
			note = "\t(berth open " + string(s.Workload) + " adds its token)"
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", s.Workload, s.URL, note)
	}
	return tw.Flush()
}

// Age prints a duration the way kubectl does: 45s, 12m, 3h, 2d.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
