package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/local"
)

func newLogsCmd() *cobra.Command {
	var (
		stateDir string
		runID    string
		attempt  int
		pod      int
		stderr   bool
		follow   bool
	)
	cmd := &cobra.Command{
		Use:   "logs WORKLOAD",
		Short: "Print a workload's output on this machine (its latest run, or --run)",
		Long: `logs prints what a workload's processes wrote, from the log files the
local backend keeps under the state directory: the latest attempt of the
latest run unless --run and --attempt say otherwise, every pod (replica or
worker) unless --pod picks one. WORKLOAD is "team/name".

Kubernetes workloads' logs are read with kubectl; berth's annotations name
the run.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeWorkloads(currentDir),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.Contains(args[0], "/") {
				return usageError{fmt.Errorf("name the workload as team/name, not %q", args[0])}
			}
			id := berth.WorkloadID(args[0])
			logs, err := findLogs(stateDir, id, runID, attempt)
			if err != nil {
				if errors.Is(err, local.ErrNoRuns) {
					return invalidError{err}
				}
				return err
			}
			w := cmd.OutOrStdout()
			var files []string
			for _, p := range logs.Pods {
				if pod >= 0 && p.Pod != pod {
					continue
				}
				if len(logs.Pods) > 1 && !follow {
					fmt.Fprintf(w, "==> %s run %s attempt %d pod %d <==\n", id, logs.RunID, logs.Attempt, p.Pod)
				}
				stream := p.Stdout
				if stderr {
					stream = p.Stderr
				}
				for _, f := range stream {
					if err := copyFile(w, f); err != nil {
						return err
					}
				}
				if len(stream) > 0 {
					files = append(files, stream[len(stream)-1])
				}
				if p.Exit != nil && !follow && len(logs.Pods) > 1 {
					fmt.Fprintf(w, "==> %s <==\n", p.Exit.Reason)
				}
			}
			if !follow {
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return followFiles(ctx, w, files)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", defaultStateDir(), "the state directory of 'berth serve'")
	f.StringVar(&runID, "run", "", "the run (default: the latest)")
	f.IntVar(&attempt, "attempt", 0, "the attempt of the run (default: the latest)")
	f.IntVar(&pod, "pod", -1, "one pod (replica or worker) by index (default: all)")
	f.BoolVar(&stderr, "stderr", false, "print standard error instead of standard output")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing what is written")
	return cmd
}

// findLogs looks for the workload in every local cluster's state directory.
func findLogs(stateDir string, id berth.WorkloadID, runID string, attempt int) (*local.RunLogs, error) {
	dirs, _ := filepath.Glob(filepath.Join(stateDir, "clusters", "*"))
	slices.Sort(dirs)
	var firstErr error
	for _, d := range dirs {
		var logs *local.RunLogs
		var err error
		if runID != "" {
			logs, err = local.Logs(d, id, runID, attempt)
		} else {
			logs, err = local.LatestLogs(d, id)
		}
		if err == nil {
			return logs, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("workload %s: %w: no local cluster has state under %s", id, local.ErrNoRuns, stateDir)
	}
	return nil, firstErr
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// followFiles prints what is appended to files until ctx is done.
func followFiles(ctx context.Context, w io.Writer, files []string) error {
	offsets := map[string]int64{}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			offsets[f] = fi.Size()
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, p := range files {
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			off := offsets[p]
			if fi.Size() < off {
				off = 0 // rotated
			}
			if fi.Size() == off {
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			f.Seek(off, io.SeekStart)
			n, _ := io.Copy(w, f)
			f.Close()
			offsets[p] = off + n
		}
	}
}
