package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/reconcile/schedule/sim"
)

// simulateOptions are simulate's flags.
type simulateOptions struct {
	nodesFile, podsFile string
	policy, mode        string
	seeds               string
	output              *outputFlag
	speedup             int64
	nodeShare           float64
	teams               int
	teamQuota           float64
	qosPriority         bool
	fairSharing         bool
	sample              time.Duration
	inflation           int64
	workers             int
}

func newSimulateCmd() *cobra.Command {
	var o simulateOptions
	cmd := &cobra.Command{
		Use:   "simulate --nodes NODES.csv --pods PODS.csv",
		Short: "Replay a GPU cluster trace through the scheduler and compare placement policies",
		Long: `simulate reads a trace in the Alibaba 2023 GPU trace's format (a node list:
sn,cpu_milli,memory_mib,gpu,model; a pod list: name,cpu_milli,memory_mib,
num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,
scheduled_time) and runs it through berth's scheduler, the same code that
plans pull requests, once per placement policy, side by side.

--mode replay (the default) replays the trace in simulated time: pods arrive
at their creation time, wait in the queue until a cycle admits them, run for
their trace duration and leave. It reports GPU allocation over time, the
unallocated GPUs while demand is at or above capacity, queue-wait
percentiles and per-team fairness (teams are synthetic: a hash of the pod
name). --speedup and --node-share make a contended cluster out of a trace
that does not contend for its own.

--mode paper runs the experiment of Weng et al., "Beware of Fragmentation"
(USENIX ATC '23) as the trace's README specifies (seeds, inflation to 130%,
one pod at a time, nothing departs) and reports the unallocated GPU % at
100% arrived beside the paper's published numbers.

--policy is a comma-separated list, or all. berth's own: berth (the
default placement), firstFit (the first node that fits) and tightestFit (the
node with the least GPU, then cpu, left: not the paper's BestFit). The
paper's baselines, scored as its artifact scores them: paperRandom,
paperDotProd, paperClustering, paperPacking, paperBestFit and paperFGD. All
is firstFit, tightestFit and berth in replay mode, and every policy in paper
mode, so one run prints the paper's whole table.

Output: text for people, or -o json or yaml for programs. The same input gives the
same output, byte for byte. Exit status: 0 done, 1 a trace file is invalid
(the message names file:line), 2 usage or internal error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	o.register(cmd)
	return withProfile(cmd)
}

func (o *simulateOptions) register(cmd *cobra.Command) {
	o.output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	f := cmd.Flags()
	f.StringVar(&o.nodesFile, "nodes", "", "the node list (CSV)")
	f.StringVar(&o.podsFile, "pods", "", "the pod list (CSV)")
	f.StringVar(&o.policy, "policy", "all", "berth, firstFit, tightestFit, paperRandom, paperDotProd, paperClustering, paperPacking, paperBestFit, paperFGD; a comma-separated list, or all")
	f.StringVar(&o.mode, "mode", "replay", "replay (simulated time) or paper (the FGD paper's experiment)")
	f.StringVar(&o.seeds, "seeds", "42-51", "paper mode: the seeds, as a range or a comma-separated list")
	f.Int64Var(&o.inflation, "inflation", 130, "paper mode: inflate the pods to this % of the cluster's GPUs")
	f.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "paper mode: seeds run at once (the result does not depend on it)")
	f.Int64Var(&o.speedup, "speedup", 1, "replay: pods arrive this many times faster (run times unchanged)")
	f.Float64Var(&o.nodeShare, "node-share", 1, "replay: keep this evenly spread share of the nodes")
	f.IntVar(&o.teams, "teams", sim.DefaultTeams, "replay: synthetic teams, assigned by a hash of the pod name")
	f.Float64Var(&o.teamQuota, "team-quota", 0, "replay: cap each team at this share of the GPUs (0: no cap)")
	f.BoolVar(&o.qosPriority, "qos-priority", false, "replay: order the queue by qos (Guaranteed, LS, Burstable, BE)")
	f.BoolVar(&o.fairSharing, "fair-sharing", false, "replay: between equal priorities, the team using less goes first")
	f.DurationVar(&o.sample, "sample", 0, "replay: interval between GPU allocation samples (0: a day divided by --speedup)")
}

// run checks the flags, reads the trace and runs the mode asked for.
func (o *simulateOptions) run(cmd *cobra.Command) error {
	if o.mode != "replay" && o.mode != "paper" {
		return usageError{fmt.Errorf("--mode %s: want replay or paper", o.mode)}
	}
	if o.nodesFile == "" || o.podsFile == "" {
		return usageError{errors.New("simulate needs --nodes NODES.csv and --pods PODS.csv")}
	}
	var policies []string
	if o.policy != "all" {
		policies = strings.Split(o.policy, ",")
	}
	seeds, err := parseSeeds(o.seeds)
	if err != nil {
		return usageError{fmt.Errorf("--seeds %s: %w", o.seeds, err)}
	}
	p := newProgress(cmd)
	defer p.done()
	p.show("simulate: reading the trace...")
	tr, err := readTrace(o.nodesFile, o.podsFile)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.mode == "paper" {
		rep, err := o.paper(tr, policies, seeds, p)
		if err != nil {
			return err
		}
		p.done()
		if !o.output.text() {
			return o.output.write(out, rep)
		}
		return sim.WritePaperText(out, rep)
	}
	rep, err := o.replay(tr, policies, p)
	if err != nil {
		return err
	}
	p.done()
	if !o.output.text() {
		return o.output.write(out, rep)
	}
	return sim.WriteReplayText(out, rep)
}

// paper runs the FGD paper's experiment.
func (o *simulateOptions) paper(tr *sim.Trace, policies []string, seeds []uint64, p *progress) (*sim.PaperReport, error) {
	rep, err := sim.Paper(tr, sim.PaperOptions{Policies: policies, Seeds: seeds, InflationPct: o.inflation, Workers: o.workers,
		Progress: func(done, total int) {
			p.show("simulate: %d of %d seeds done (%d pods, %d nodes)", done, total, len(tr.Pods), len(tr.Nodes))
		}})
	if err != nil {
		return nil, usageError{err}
	}
	return rep, nil
}

// replay replays the trace in simulated time.
func (o *simulateOptions) replay(tr *sim.Trace, policies []string, p *progress) (*sim.ReplayReport, error) {
	if o.sample != 0 && o.sample < time.Second {
		return nil, usageError{fmt.Errorf("--sample %s: want at least 1s", o.sample)}
	}
	rep, err := sim.Replay(tr, sim.ReplayOptions{
		Setup:    sim.Setup{Teams: o.teams, TeamQuota: o.teamQuota, QoSPriority: o.qosPriority, FairSharing: o.fairSharing},
		Policies: policies, SampleEvery: int64(o.sample / time.Second), Speedup: o.speedup, NodeShare: o.nodeShare,
		Progress: func(policy string, i, n int) {
			p.show("simulate: replaying %d pods with %s (%d of %d)", len(tr.Pods), policy, i, n)
		},
	})
	if err != nil {
		return nil, usageError{err}
	}
	return rep, nil
}

// readTrace reads the two CSV files; a bad row is the user's to fix.
func readTrace(nodesFile, podsFile string) (*sim.Trace, error) {
	nf, err := os.Open(nodesFile)
	if err != nil {
		return nil, usageError{err}
	}
	defer nf.Close()
	nodes, err := sim.ReadNodes(nodesFile, nf)
	if err != nil {
		return nil, invalidError{err}
	}
	pf, err := os.Open(podsFile)
	if err != nil {
		return nil, usageError{err}
	}
	defer pf.Close()
	pods, err := sim.ReadPods(podsFile, pf)
	if err != nil {
		return nil, invalidError{err}
	}
	return &sim.Trace{Nodes: nodes, Pods: pods}, nil
}

// parseSeeds parses "42-51" or "1,2,7-9".
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a seed or a range of seeds", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a range of seeds (from-to)", part)
			}
			if b-a >= 10000 {
				return nil, fmt.Errorf("%q: more than 10,000 seeds", part)
			}
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}
