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

func newPlanCmd() *cobra.Command {
	var (
		output    *outputFlag
		snapshots []string
		placement string
		noBackfil bool
		server    string
		ghPlan    planGitHubOptions // --github-pr: see github.go
	)
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
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			switch placement {
			case "", berth.PlacementBerth, berth.PlacementFirstFit, berth.PlacementTightestFit:
			default:
				return usageError{fmt.Errorf("--placement %s: want berth, firstFit or tightestFit", placement)}
			}
			if ghPlan.pr > 0 {
				return runGitHubPlan(cmd.Context(), cmd.OutOrStdout(), ghPlan, snapshots,
					schedule.Options{Placement: placement, NoBackfill: noBackfil})
			}
			if len(snapshots) == 0 && server == "" {
				return usageError{fmt.Errorf("plan needs --snapshot FILE (write one with 'berth snapshot', or by hand: #Snapshot in schema.cue) or --server URL (a running 'berth serve')")}
			}
			res, err := loadDir(dir)
			cfg := res.Config
			if err != nil {
				return printLoadError(cmd, err)
			}
			type source struct {
				name string
				snap *berth.Snapshot
			}
			var srcs []source
			for _, file := range snapshots {
				data, err := os.ReadFile(file)
				if err != nil {
					return usageError{err}
				}
				snap, err := cue.LoadSnapshot(filepath.ToSlash(file), data)
				if err != nil {
					return printLoadError(cmd, err)
				}
				srcs = append(srcs, source{"snapshot " + file, snap})
			}
			if server != "" {
				snaps, err := serverSnapshots(&clientOptions{server: server}, "")
				if err != nil {
					return err
				}
				for i := range snaps {
					srcs = append(srcs, source{"berth serve at " + server, &snaps[i]})
				}
			}
			var plans []*berth.Plan
			for _, src := range srcs {
				if _, ok := cfg.Clusters[src.snap.Cluster]; !ok {
					return invalidError{fmt.Errorf("%s: cluster %q is not in the repository (clusters: %v)", src.name, src.snap.Cluster, cfg.ClusterNames())}
				}
				plans = append(plans, schedule.Schedule(schedule.Input{Config: cfg, Snapshot: src.snap},
					schedule.Options{Placement: placement, NoBackfill: noBackfil}))
			}
			out := cmd.OutOrStdout()
			if !output.text() {
				return output.write(out, plans)
			}
			return status.WritePlanText(out, plans)
		},
	}
	output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	cmd.Flags().StringArrayVar(&snapshots, "snapshot", nil, "a cluster snapshot to plan against (repeat for several clusters)")
	cmd.Flags().StringVar(&server, "server", "", "plan against the clusters a running 'berth serve' at this address runs (http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&placement, "placement", "", "override policy.placement: berth, firstFit or tightestFit")
	cmd.Flags().BoolVar(&noBackfil, "no-backfill", false, "turn backfill off whatever the policy says")
	ghPlan.register(cmd.Flags())
	evalBounds.register(cmd.Flags())
	return withProfile(cmd)
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
