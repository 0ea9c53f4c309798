package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/local"
)

type ledgerOptions struct {
	stateDir string
	clusters []string
	force    bool
	// repo, with --cluster naming clusters of backend kubernetes: their
	// ledgers live in the cluster (kube.go).
	repo string
	kf   kubeFlags
}

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Check or rebuild the run ledger (which run of which workload already happened)",
		Long: `The run ledger records what berth serve did: which runs of which
workloads started, how often, and how they ended, so a restarted serve
never runs a finished job again.

On a machine (clusters of backend local) each cluster's ledger is
STATE-DIR/clusters/NAME/berth.db. berth serve refuses to start on a damaged
one (a torn write, a garbled disk) and says so; 'berth ledger check' says
what is damaged, and 'berth ledger rebuild' rebuilds it from the run
directories beside it. Stop berth serve first: the ledger is open in one
process at a time.

On Kubernetes (--repo DIR --cluster NAME, a cluster of backend
kubernetes) each team's ledger is the ConfigMap berth-ledger of its
namespace; 'check' names the entries that do not decode, and 'rebuild'
re-derives them from the Jobs and Deployments berth owns.`,
	}
	cmd.AddCommand(newLedgerCheckCmd(), newLedgerRebuildCmd())
	return cmd
}

func (o *ledgerOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "berth serve's state directory")
	f.StringArrayVar(&o.clusters, "cluster", nil, "a cluster (repeat; default: every local cluster in the state directory)")
	f.StringVar(&o.repo, "repo", "", "the repository that defines --cluster: for clusters of backend kubernetes; for local ones, rebuild also reads run directories from before the record files with it")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(repoFlag))
	o.kf.register(f, false)
}

func newLedgerCheckCmd() *cobra.Command {
	o := ledgerOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check every cluster's run ledger; exit 1 if one is damaged",
		Long: `check reads each local cluster's ledger without changing it: bbolt's
file structure, its consistency check, and every record. It prints one
line per cluster, and what is damaged.

Exit status: 0 every ledger is sound, 1 one is damaged, 2 one could not be
read (berth serve holds it, or the state directory has no clusters).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.repo != "" {
				return kubeLedger(cmd, o, false)
			}
			return ledgerCheck(o, cmd.OutOrStdout())
		},
	}
	o.register(cmd)
	return cmd
}

func newLedgerRebuildCmd() *cobra.Command {
	o := ledgerOptions{}
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild a damaged run ledger from the run directories",
		Long: `rebuild makes a new ledger for each local cluster whose ledger is damaged
(or missing), from the record file (run.json) that berth keeps in every
run's directory, STATE-DIR/clusters/NAME/runs/TEAM/NAME/RUN/. The old file
is kept as berth.db.damaged-TIME.

Runs that finished stay finished, so berth serve never starts them again;
runs that still run are adopted. Runs that were only waiting come from
the cluster's queue file (queue.json), queued since when they were. Run
directories without a record file (left by a berth older than the record
files) are rebuilt from their latest attempt's pod files and the
workload's spec when --repo DIR gives the repository (its kind, priority,
retries, resources and digest as DIR has them now); otherwise, or when
DIR lacks the workload, they are listed and left out.

With --force, a sound ledger is rebuilt too.

With --repo DIR --cluster NAME (backend kubernetes), each team's ledger
ConfigMap is re-derived from the Jobs and Deployments berth owns; a
damaged one is first copied to berth-ledger-damaged-TIME, and entries
nothing in the cluster can restore are listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.repo == "" {
				return ledgerRebuild(o, nil, cmd.OutOrStdout())
			}
			res, err := loadDir(o.repo)
			if err != nil {
				return printLoadError(cmd, err)
			}
			if !localClusters(res.Config, o.clusters) {
				return kubeLedger(cmd, o, true)
			}
			return ledgerRebuild(o, res.Config, cmd.OutOrStdout())
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&o.force, "force", false, "rebuild a ledger that is sound")
	return cmd
}

// localClusterDirs returns the state directories of the local clusters:
// the ones named, or every one under STATE-DIR/clusters.
func localClusterDirs(o ledgerOptions) ([]string, []string, error) {
	root := filepath.Join(o.stateDir, "clusters")
	names := o.clusters
	if len(names) == 0 {
		ents, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			return nil, nil, usageError{fmt.Errorf("%s holds no cluster: is --state-dir berth serve's?", root)}
		}
	}
	slices.Sort(names)
	dirs := make([]string, len(names))
	for i, n := range names {
		dirs[i] = filepath.Join(root, n)
		if _, err := os.Stat(dirs[i]); err != nil {
			return nil, nil, usageError{fmt.Errorf("--cluster %s: %w", n, err)}
		}
	}
	return names, dirs, nil
}

func ledgerCheck(o ledgerOptions, w io.Writer) error {
	names, dirs, err := localClusterDirs(o)
	if err != nil {
		return err
	}
	damaged := 0
	var errs []error
	for i, n := range names {
		res, err := local.CheckLedger(dirs[i])
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("cluster %s: %w", n, err))
		case res.Missing:
			fmt.Fprintf(w, "cluster %s: no ledger yet (%s)\n", n, res.Path)
		case res.Damaged != nil:
			damaged++
			fmt.Fprintf(w, "cluster %s: %s\n", n, res.Damaged.Error())
			for _, p := range res.Damaged.Problems {
				fmt.Fprintf(w, "  %s\n", p)
			}
			fmt.Fprintf(w, "  to rebuild it from the run directories: berth ledger rebuild --state-dir %s --cluster %s\n", o.stateDir, n)
		default:
			fmt.Fprintf(w, "cluster %s: ledger %s is sound (%d runs)\n", n, res.Path, res.Runs)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if damaged > 0 {
		return reportedError{exitInvalid}
	}
	return nil
}

// localClusters reports whether the clusters named (every one in the
// state directory when none is) are of backend local in cfg.
func localClusters(cfg *berth.Config, names []string) bool {
	for _, n := range names {
		if c, ok := cfg.Clusters[n]; !ok || c.Backend != berth.BackendLocal {
			return false
		}
	}
	return true
}

// ledgerRebuild rebuilds the local clusters' ledgers; cfg, when set, is
// the repository, for run directories without a record file.
func ledgerRebuild(o ledgerOptions, cfg *berth.Config, w io.Writer) error {
	names, dirs, err := localClusterDirs(o)
	if err != nil {
		return err
	}
	var errs []error
	for i, n := range names {
		res, err := local.RebuildLedger(dirs[i], local.RebuildOptions{Force: o.force, Config: cfg})
		switch {
		case errors.Is(err, local.ErrLedgerSound):
			fmt.Fprintf(w, "cluster %s: ledger %s is sound: nothing to rebuild (--force rebuilds it anyway)\n", n, res.Path)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("cluster %s: %w", n, err))
			continue
		}
		waiting := 0
		for _, r := range res.Runs {
			if !r.QueuedSince.IsZero() {
				waiting++
			}
		}
		fmt.Fprintf(w, "cluster %s: rebuilt ledger %s from %d run records and %d waiting runs", n, res.Path, len(res.Runs)-waiting, waiting)
		if res.Kept != "" {
			fmt.Fprintf(w, "; the old file is kept as %s", res.Kept)
		}
		fmt.Fprintln(w)
		if len(res.FromPods) > 0 {
			fmt.Fprintf(w, "  %d run directories without a record file were rebuilt from their pods' files and %s:\n", len(res.FromPods), o.repo)
			for _, u := range res.FromPods {
				fmt.Fprintf(w, "    %s\n", filepath.Join(dirs[i], u))
			}
		}
		if len(res.Unrecorded) > 0 {
			fmt.Fprintf(w, "  %d run directories have no record file and are not in the ledger (a berth older than record files ran them):\n", len(res.Unrecorded))
			for _, u := range res.Unrecorded {
				fmt.Fprintf(w, "    %s\n", filepath.Join(dirs[i], u))
			}
		}
	}
	return errors.Join(errs...)
}

// damagedLedgerError is serve's one line for a damaged ledger: what is
// wrong and the two commands that deal with it.
func damagedLedgerError(d *local.DamagedError, stateDir, cluster string) error {
	return fmt.Errorf("%s: run 'berth ledger check --state-dir %s' and 'berth ledger rebuild --state-dir %s --cluster %s'",
		d.Error(), stateDir, stateDir, cluster)
}

// kubeLedger checks or rebuilds the ledgers of the repository's clusters
// of backend kubernetes named with --cluster.
func kubeLedger(cmd *cobra.Command, o ledgerOptions, rebuild bool) error {
	if len(o.clusters) == 0 {
		return usageError{errors.New("with --repo, name the kubernetes clusters with --cluster")}
	}
	res, err := loadDir(o.repo)
	if err != nil {
		return printLoadError(cmd, err)
	}
	cfg := res.Config
	w := cmd.OutOrStdout()
	damaged := 0
	for _, n := range o.clusters {
		c, ok := cfg.Clusters[n]
		if !ok || c.Backend != berth.BackendKubernetes {
			return usageError{fmt.Errorf("--cluster %s: not a cluster of backend kubernetes in %s (its ledger is in --state-dir: leave --repo out)", n, o.repo)}
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
		defer cancel()
		kc, err := o.kf.open(n, c, o.repo, slog.New(slog.DiscardHandler), false)
		if err != nil {
			return err
		}
		defer kc.Close()
		if rebuild {
			res, err := kc.RebuildLedger(ctx, time.Now())
			if err != nil {
				return fmt.Errorf("cluster %s: %w", n, err)
			}
			for _, r := range res {
				fmt.Fprintf(w, "cluster %s: namespace %s: ledger rebuilt: %d runs from their objects, %d kept", n, r.Namespace, r.Derived, r.Kept)
				if r.Copy != "" {
					fmt.Fprintf(w, "; the damaged ledger is kept as ConfigMap %s", r.Copy)
				}
				fmt.Fprintln(w)
				for _, l := range r.Lost {
					fmt.Fprintf(w, "  lost: entry %s was damaged and no object says what it was\n", l)
				}
			}
			continue
		}
		checks, err := kc.CheckLedger(ctx)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", n, err)
		}
		for _, c := range checks {
			if len(c.Problems) == 0 {
				fmt.Fprintf(w, "cluster %s: namespace %s: ledger is sound (%d runs)\n", n, c.Namespace, c.Runs)
				continue
			}
			damaged++
			fmt.Fprintf(w, "cluster %s: namespace %s: ledger is damaged (%d entries):\n", n, c.Namespace, len(c.Problems))
			for _, p := range c.Problems {
				fmt.Fprintf(w, "  %s\n", p)
			}
			fmt.Fprintf(w, "  to rebuild it from the cluster's objects: berth ledger rebuild --repo %s --cluster %s\n", o.repo, n)
		}
	}
	if damaged > 0 {
		return reportedError{exitInvalid}
	}
	return nil
}
