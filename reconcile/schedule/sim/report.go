package sim

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// PolicyText says what a policy of the simulator is, so a table does not
// leave berth's heuristics to be mistaken for the paper's baselines.
func PolicyText(policy string) string {
	switch policy {
	case berth.PlacementFirstFit:
		return "berth: the first node that fits"
	case berth.PlacementTightestFit:
		return "berth: the node with the least GPU, then cpu, left"
	case berth.PlacementBerth:
		return "berth's default: FGD, refined"
	case schedule.PlacementPaperRandom:
		return "paper: Random"
	case schedule.PlacementPaperDotProd:
		return "paper: DotProd (Tetris)"
	case schedule.PlacementPaperClustering:
		return "paper: Clustering"
	case schedule.PlacementPaperPacking:
		return "paper: Packing"
	case schedule.PlacementPaperBestFit:
		return "paper: BestFit"
	case schedule.PlacementPaperFGD:
		return "paper: FGD"
	}
	return policy
}

// WritePaperText writes the paper experiment's report for people.
func WritePaperText(w io.Writer, r *PaperReport) error {
	p := &printer{w: w}
	p.f("The paper's experiment (Weng et al., USENIX ATC '23), as the trace README specifies\n")
	p.f("trace: %d nodes, %d GPUs; %d pods asking for %.1f GPUs (%.1f%% of capacity)\n",
		r.Nodes, r.GPUs, r.Pods, r.PodsGPUs, 100*r.PodsGPUs/float64(r.GPUs))
	p.f("pods shuffled and inflated to %d%% of capacity, nodes shuffled (SplitMix64, seeds %s); %d typical shapes\n\n",
		r.InflationPct, seedRange(r.Seeds), r.TypicalShapes)

	p.f("Unallocated GPUs at 100%% arrived, mean of %d seeds", len(r.Seeds))
	if len(r.Published) > 0 {
		p.f("; published: the paper artifact's cached results")
	}
	p.f("\n")
	t := p.table()
	fmt.Fprintf(t, "  policy\twhat it is\tunallocated\tGPUs\tbest seed\tworst seed\tdropped pods (mean)\tpublished\n")
	for _, x := range r.Policies {
		lo, hi := x.Seeds[0].Unallocated, x.Seeds[0].Unallocated
		dropped := 0
		for _, s := range x.Seeds {
			lo, hi = min(lo, s.Unallocated), max(hi, s.Unallocated)
			dropped += s.Dropped
		}
		pub := "-"
		for _, y := range r.Published {
			if y.As == x.Policy {
				pub = fmt.Sprintf("%.2f%%", y.Unallocated)
			}
		}
		fmt.Fprintf(t, "  %s\t%s\t%.2f%%\t%.1f\t%.2f%%\t%.2f%%\t%.0f\t%s\n", x.Policy, PolicyText(x.Policy), x.Unallocated,
			x.UnallocatedGPUs, lo, hi, float64(dropped)/float64(len(x.Seeds)), pub)
	}
	t.Flush()
	if berth, ok := r.policy("berth"); ok {
		if bf, ok := r.policy(schedule.PlacementPaperBestFit); ok && bf.Unallocated > 0 {
			p.f("\nberth leaves %.1f%% fewer unallocated GPUs than the paper's BestFit in this run", 100*(1-berth.Unallocated/bf.Unallocated))
			if fgd, ok := r.policy(schedule.PlacementPaperFGD); ok && fgd.Unallocated > 0 {
				p.f(", and %.1f%% fewer than its FGD", 100*(1-berth.Unallocated/fgd.Unallocated))
			}
			p.f(".\n")
		}
	}
	if len(r.Policies) > 0 && len(r.Policies[0].Levels) > 0 {
		p.f("\nUnallocated GPU %% by arrived level, mean over seeds\n")
		t = p.table()
		fmt.Fprintf(t, "  arrived\t")
		for _, x := range r.Policies {
			fmt.Fprintf(t, "%s\t", x.Policy)
		}
		fmt.Fprintf(t, "\n")
		for k, l := range r.Policies[0].Levels {
			fmt.Fprintf(t, "  %d%%\t", l.Level)
			for _, x := range r.Policies {
				if k < len(x.Levels) {
					fmt.Fprintf(t, "%.2f%%\t", x.Levels[k].Unallocated)
				}
			}
			fmt.Fprintf(t, "\n")
		}
		t.Flush()
	}
	p.f("\nPer seed: unallocated GPU %% at 100%% arrived (pods dropped of all that arrived)\n")
	t = p.table()
	fmt.Fprintf(t, "  seed\tpods\t")
	for _, x := range r.Policies {
		fmt.Fprintf(t, "%s\t", x.Policy)
	}
	fmt.Fprintf(t, "\n")
	for k, seed := range r.Seeds {
		fmt.Fprintf(t, "  %d\t%d\t", seed, r.Policies[0].Seeds[k].Pods)
		for _, x := range r.Policies {
			s := x.Seeds[k]
			fmt.Fprintf(t, "%.2f%% (%d)\t", s.Unallocated, s.Dropped)
		}
		fmt.Fprintf(t, "\n")
	}
	t.Flush()
	return p.err
}

func (r *PaperReport) policy(name string) (PaperPolicy, bool) {
	for _, x := range r.Policies {
		if x.Policy == name {
			return x, true
		}
	}
	return PaperPolicy{}, false
}

// WriteReplayText writes a replay's report for people.
func WriteReplayText(w io.Writer, r *ReplayReport) error {
	p := &printer{w: w}
	replayHeader(p, r)
	replayTotals(p, r)
	if r.PeakDemandGPUs < float64(r.GPUs) {
		p.f("\nDemand never reaches capacity here, so the policies are hardly put to the test:\n" +
			"try --speedup (e.g. 100) and --node-share (e.g. 0.1) for a contended cluster.\n")
	}
	if len(r.Policies) > 0 && len(r.Policies[0].Fairness.Teams) > 0 {
		replayTeams(p, r)
	}
	if len(r.Policies) > 0 && len(r.Policies[0].Samples) > 0 {
		replaySamples(p, r)
	}
	return p.err
}

// replayHeader says what was replayed: the cluster, the pods, the teams.
func replayHeader(p *printer, r *ReplayReport) {
	p.f("Replay of the trace in simulated time\n")
	p.f("cluster: %d nodes, %d GPUs", r.Nodes, r.GPUs)
	if r.NodeShare > 0 && r.NodeShare < 1 {
		p.f(" (a %g share of the trace's nodes)", r.NodeShare)
	}
	p.f("; %d pods", r.Pods)
	if r.Speedup > 1 {
		p.f(" arriving %dx faster than in the trace", r.Speedup)
	}
	p.f("\n%d teams", r.Teams)
	if r.TeamQuota > 0 {
		p.f(", each capped at %g of the GPUs", r.TeamQuota)
	} else {
		p.f(" whose quota does not limit")
	}
	if r.QoSPriority {
		p.f("; priority by qos")
	}
	if r.FairSharing {
		p.f("; fair sharing")
	}
	p.f("; peak demand %.1f GPUs (%.1f%% of capacity) if every pod ran on arrival\n\n",
		r.PeakDemandGPUs, 100*r.PeakDemandGPUs/float64(r.GPUs))
}

// replayTotals is the table of each policy's totals, one column a policy.
func replayTotals(p *printer, r *ReplayReport) {
	t := p.table()
	row := func(label string, f func(x ReplayPolicy) string) {
		fmt.Fprintf(t, "  %s\t", label)
		for _, x := range r.Policies {
			fmt.Fprintf(t, "%s\t", f(x))
		}
		fmt.Fprintf(t, "\n")
	}
	row("", func(x ReplayPolicy) string { return x.Policy })
	row("scheduling cycles", func(x ReplayPolicy) string { return fmt.Sprint(x.Cycles) })
	row("pods started", func(x ReplayPolicy) string { return fmt.Sprint(x.Started) })
	row("rejected (can never fit)", func(x ReplayPolicy) string { return fmt.Sprint(x.Rejected) })
	row("abandoned (deleted while waiting)", func(x ReplayPolicy) string { return fmt.Sprint(x.Abandoned) })
	row("still waiting at the end", func(x ReplayPolicy) string { return fmt.Sprint(x.Unfinished) })
	row("mean GPU allocation while pods arrive", func(x ReplayPolicy) string { return fmt.Sprintf("%.3f%%", x.AllocatedPct) })
	row("time demand >= capacity", func(x ReplayPolicy) string { return duration(x.Saturated.Seconds) })
	row("  unallocated GPUs then (mean)", func(x ReplayPolicy) string {
		if x.Saturated.Seconds == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f (%.2f%%)", x.Saturated.UnallocatedGPUs, x.Saturated.UnallocatedPct)
	})
	row("pods that waited", func(x ReplayPolicy) string { return fmt.Sprint(x.Wait.Waited) })
	row("queue wait p50 / p90 / p99", func(x ReplayPolicy) string {
		return fmt.Sprintf("%s / %s / %s", duration(x.Wait.P50), duration(x.Wait.P90), duration(x.Wait.P99))
	})
	row("queue wait max", func(x ReplayPolicy) string { return duration(x.Wait.Max) })
	row("GPU pods' wait p99", func(x ReplayPolicy) string { return duration(x.Wait.GPUP99) })
	row("fairness (Jain's index)", func(x ReplayPolicy) string { return fmt.Sprintf("%.4f", x.Fairness.Jain) })
	t.Flush()
}

// replayTeams is the table of each team's GPU-hours and wait per policy.
func replayTeams(p *printer, r *ReplayReport) {
	p.f("\nPer team: GPU-hours allocated / wanted (running or waiting), and p90 queue wait\n")
	t := p.table()
	fmt.Fprintf(t, "  team\tpods\t")
	for _, x := range r.Policies {
		fmt.Fprintf(t, "%s\t", x.Policy)
	}
	fmt.Fprintf(t, "\n")
	for k, ts := range r.Policies[0].Fairness.Teams {
		fmt.Fprintf(t, "  %s\t%d\t", ts.Team, ts.Pods)
		for _, x := range r.Policies {
			y := x.Fairness.Teams[k]
			fmt.Fprintf(t, "%.4f, p90 %s\t", y.Ratio, duration(y.WaitP90))
		}
		fmt.Fprintf(t, "\n")
	}
	t.Flush()
}

// replaySamples is the allocation over time, at most about 30 rows.
func replaySamples(p *printer, r *ReplayReport) {
	n := len(r.Policies[0].Samples)
	stride := (n + 29) / 30
	p.f("\nGPU allocation over time (%% of GPUs allocated; waiting pods), every %s", duration(r.SampleEvery*int64(stride)))
	if stride > 1 {
		p.f(" (-o json has every %s)", duration(r.SampleEvery))
	}
	p.f("\n")
	t := p.table()
	fmt.Fprintf(t, "  time\t")
	for _, x := range r.Policies {
		fmt.Fprintf(t, "%s\t", x.Policy)
	}
	fmt.Fprintf(t, "\n")
	for k := 0; k < n; k += stride {
		fmt.Fprintf(t, "  %s\t", duration(r.Policies[0].Samples[k].Time))
		for _, x := range r.Policies {
			if k < len(x.Samples) {
				s := x.Samples[k]
				fmt.Fprintf(t, "%.2f%% (%d)\t", s.AllocatedPct, s.WaitingPods)
			}
		}
		fmt.Fprintf(t, "\n")
	}
	t.Flush()
}

// printer writes and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// table is a tabwriter whose lines lose their trailing blanks when it is
// flushed into the printer.
type table struct {
	*tabwriter.Writer
	buf *bytes.Buffer
	p   *printer
}

func (p *printer) table() *table {
	buf := &bytes.Buffer{}
	return &table{Writer: tabwriter.NewWriter(buf, 0, 0, 2, ' ', 0), buf: buf, p: p}
}

func (t *table) Flush() {
	if err := t.Writer.Flush(); err != nil && t.p.err == nil {
		t.p.err = err
	}
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line != "" {
			t.p.f("%s\n", strings.TrimRight(line, " \n"))
		}
	}
	t.buf.Reset()
}

// duration prints seconds as the two largest units: "3d4h", "2h5m",
// "4m10s", "12s".
func duration(s int64) string {
	if s == 0 {
		return "0s"
	}
	units := []struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}
	var b strings.Builder
	parts := 0
	for _, u := range units {
		if s >= u.n && parts < 2 {
			fmt.Fprintf(&b, "%d%s", s/u.n, u.name)
			s %= u.n
			parts++
		} else if parts > 0 {
			parts = 2
		}
	}
	return b.String()
}

// seedRange prints seeds as "42-51" when consecutive, else as a list.
func seedRange(seeds []uint64) string {
	if len(seeds) == 0 {
		return ""
	}
	consecutive := true
	for i := 1; i < len(seeds); i++ {
		if seeds[i] != seeds[i-1]+1 {
			consecutive = false
		}
	}
	if consecutive && len(seeds) > 1 {
		return fmt.Sprintf("%d-%d", seeds[0], seeds[len(seeds)-1])
	}
	s := make([]string, len(seeds))
	for i, x := range seeds {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}
