package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile/schedule"
	"github.com/berth-gpu/berth/status"
)

// planOptions are plan's flags.
type planOptions struct {
	output    *outputFlag
	snapshots []string
	placement string
	noBackfil bool
	server    string
	team      *string
	ghPlan    planGitHubOptions // --github-pr: see github.go
}

func newPlanCmd() *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan [DIR] (--snapshot FILE | --server URL)",
		Short: "Decide what the repository would do on each cluster: admit, queue, preempt or reject",
		Long: `plan loads the repository in DIR (default: the current directory) and,
for each cluster snapshot given, decides every workload: admitted now (on
which flavor and nodes), queued (position, the named reason, an estimated
start), admitted by preempting (whom, and why), or rejected (why it can
never fit). It prints the quota of every team before and after.

A snapshot is a cluster's observed state ('berth snapshot' writes one; the
format is #Snapshot in schema.cue and can be written by hand for what-if
planning). --server URL plans against every cluster a running 'berth
serve' runs, as its engine last observed them (a single machine
included). The decision is the one the engine makes: the same step
prepares what is pending (periodic ticks due, retries past their
backoff, pipeline steps whose dependencies finished) and decides it.
Nothing is changed anywhere: plan only reads.

--team T shows only team T's decisions and quota; they are decided as
without it, against every team's workloads.

Output: text for people, or -o json or yaml (an array of plans; see the
README).
Exit status: 0 planned, 1 invalid repository or snapshot, 2 usage or
internal error.

CI mode: --github-pr N fetches pull request N (--repo owner/name, default
$GITHUB_REPOSITORY; token from $GITHUB_TOKEN) and its base, plans both
against the snapshots, and posts the statuses (berth/validate,
berth/policy, berth/plan: CLUSTER) and one comment per cluster, as
'berth serve --github' does; a cluster without a snapshot is not planned.
DIR is not read. Exit status: 0 when no
status failed (pending included), 1 when one did, 2 when berth failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, dirArg(cmd, args)) },
	}
	o.output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	cmd.Flags().StringArrayVar(&o.snapshots, "snapshot", nil, "a cluster snapshot, JSON or YAML, to plan against (repeat for several clusters)")
	cmd.Flags().StringVar(&o.server, "server", "", "plan against the clusters a running 'berth serve' at this address runs (http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&o.placement, "placement", "", "override policy.placement: berth, firstFit or tightestFit")
	cmd.Flags().BoolVar(&o.noBackfil, "no-backfill", false, "turn backfill off whatever the policy says")
	o.team = addTeamFlag(cmd, dirArg)
	o.ghPlan.register(cmd.Flags())
	evalBounds.register(cmd.Flags())
	return withProfile(cmd)
}

// run plans the repository in dir against every snapshot, or plans a pull
// request with --github-pr.
func (o *planOptions) run(cmd *cobra.Command, dir string) error {
	switch o.placement {
	case "", berth.PlacementBerth, berth.PlacementFirstFit, berth.PlacementTightestFit:
	default:
		return usageError{fmt.Errorf("--placement %s: want berth, firstFit or tightestFit", o.placement)}
	}
	opts := schedule.Options{Placement: o.placement, NoBackfill: o.noBackfil}
	if o.ghPlan.pr > 0 {
		return runGitHubPlan(cmd.Context(), cmd.OutOrStdout(), o.ghPlan, o.snapshots, opts)
	}
	if len(o.snapshots) == 0 && o.server == "" {
		return usageError{fmt.Errorf("plan needs --snapshot FILE (write one with 'berth snapshot', or by hand: #Snapshot in schema.cue) or --server URL (a running 'berth serve')")}
	}
	// The snapshots are read while the repository loads: checking one
	// against the schema (or decoding it from the evaluation cache) is
	// work of its own, on the other core.
	l := commandLoader()
	var srcs []snapshotSource
	var srcErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		srcs, srcErr = o.sources(l)
	}()
	res, err := l.LoadResult(os.DirFS(dir))
	<-done
	cfg := res.Config
	if err != nil {
		return printLoadError(cmd, err)
	}
	if err := checkTeam(cfg, *o.team); err != nil {
		return err
	}
	if srcErr != nil {
		return printLoadError(cmd, srcErr)
	}
	var plans []*berth.Plan
	for _, src := range srcs {
		if _, ok := cfg.Clusters[src.snap.Cluster]; !ok {
			return invalidError{fmt.Errorf("%s: cluster %q is not in the repository (clusters: %v)", src.name, src.snap.Cluster, cfg.ClusterNames())}
		}
		p := schedule.Schedule(schedule.Input{Config: cfg, Snapshot: src.snap}, opts)
		if *o.team != "" {
			p = planOfTeam(p, *o.team)
		}
		plans = append(plans, p)
	}
	out := cmd.OutOrStdout()
	if !o.output.text() {
		return o.output.write(out, plans)
	}
	return status.WritePlanText(out, plans)
}

// snapshotSource is a snapshot to plan against, and where it came from.
type snapshotSource struct {
	name string
	snap *berth.Snapshot
}

// sources reads the snapshot files through l (and its evaluation cache),
// then asks the berth serve for its clusters'. A snapshot's errors are
// returned for the caller to print.
func (o *planOptions) sources(l *cue.Loader) ([]snapshotSource, error) {
	var srcs []snapshotSource
	for _, file := range o.snapshots {
		snap, err := readSnapshot(l, file)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, snapshotSource{"snapshot " + file, snap})
	}
	if o.server != "" {
		snaps, err := serverSnapshots(&clientOptions{server: o.server}, "")
		if err != nil {
			return nil, err
		}
		for i := range snaps {
			srcs = append(srcs, snapshotSource{"berth serve at " + o.server, &snaps[i]})
		}
	}
	return srcs, nil
}

// readSnapshot reads the snapshot file through l's evaluation cache: a
// file it cannot read is a usage error; a snapshot with errors returns
// them (cue.Errors) for the caller to print.
func readSnapshot(l *cue.Loader, file string) (*berth.Snapshot, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageError{err}
	}
	return l.LoadSnapshot(filepath.ToSlash(file), data)
}

// printLoadError prints CUE errors one per line with their positions and
// returns the exit code for invalid input.
func printLoadError(cmd *cobra.Command, err error) error {
	var errs cue.Errors
	if !asErrors(err, &errs) {
		return err
	}
	w := cmd.ErrOrStderr()
	for _, e := range errs {
		fmt.Fprintln(w, e.Error())
	}
	fmt.Fprintf(w, "%d %s\n", len(errs), plural(len(errs), "error", "errors"))
	return reportedError{exitInvalid}
}
